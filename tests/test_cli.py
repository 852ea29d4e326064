"""The command line, as a user runs it: on SQLite and PostgreSQL, exit codes, help, reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from partnerledger import Database, Store
from partnerledger.cli.main import cli
from partnerledger.commands import COMMAND_TYPES

HISTORY = Path(__file__).parent / "data" / "riverside.jsonl"
AT = "--at"

Run = Callable[..., Result]


@pytest.fixture
def run(database_url: str) -> Run:
    """Invoke the CLI against the test database; returns click's Result."""
    runner = CliRunner()

    def invoke(*args: str, input: str | bytes | None = None) -> Result:
        return runner.invoke(
            cli,
            ["--database", database_url, *args],
            input=input,
            env={"PARTNERLEDGER_ACTOR": "coord@riverside.example"},
            catch_exceptions=False,
        )

    return invoke


def walk(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from walk(command, (*prefix, name))


def test_every_command_has_help(tmp_path: Path) -> None:
    runner = CliRunner()
    paths = list(walk(cli))
    assert ("referral", "convert") in paths
    assert ("agreement", "amend") in paths
    for path in paths:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, path
        assert "Usage:" in result.output
        assert "Show this message and exit" in result.output


def test_a_network_history_from_the_command_line(run: Run) -> None:
    steps = [
        [
            "network",
            "create",
            "riverside",
            "--name",
            "Riverside Chamber",
            "--currency",
            "USD",
            "--period",
            "quarter",
            "--tier",
            "bronze:0",
            "--tier",
            "silver:40:Newsletter;Badge",
        ],
        [
            "member",
            "add",
            "riverside",
            "lee-law",
            "--name",
            "Lee & Co. Law",
            "--category",
            "lawyer",
            "--email",
            "ana@lee-law.example",
        ],
        [
            "member",
            "add",
            "riverside",
            "park-cpa",
            "--name",
            "Park CPA",
            "--category",
            "accountant",
        ],
        [
            "member",
            "add",
            "riverside",
            "bloom",
            "--name",
            "Bloom",
            "--category",
            "florist",
            "--invite",
        ],
        ["member", "add", "riverside", "bloom"],
        [
            "introduction",
            "make",
            "riverside",
            "i-1",
            "--introducer",
            "park-cpa",
            "--introduced",
            "lee-law",
            "--to-business",
            "Harbor Bank",
        ],
        [
            "referral",
            "send",
            "riverside",
            "r-1",
            "--from",
            "lee-law",
            "--to",
            "park-cpa",
            "--customer",
            "Dana Whitfield",
        ],
        ["referral", "accept", "riverside", "r-1"],
        ["referral", "convert", "riverside", "r-1", "--value", "10000.00", "--currency", "USD"],
        ["referral", "reverse", "riverside", "r-1", "--amount", "2500", "--reason", "refund"],
        [
            "agreement",
            "propose",
            "riverside",
            "a-1",
            "--kind",
            "referral",
            "--party",
            "lee-law",
            "--party",
            "park-cpa",
            "--scope",
            "Estate clients",
            "--fee",
            "250",
            "--referrals-per-month",
            "5",
            "--conversion-rate",
            "0.40",
            "--pilot-days",
            "90",
            "--goal",
            "3 referrals each way",
        ],
        ["agreement", "accept", "riverside", "a-1", "--party", "lee-law"],
        ["agreement", "accept", "riverside", "a-1", "--party", "park-cpa"],
        ["agreement", "activate", "riverside", "a-1"],
        [
            "agreement",
            "amend",
            "riverside",
            "a-1",
            "--scope",
            "Estate and tax clients",
            "--revenue-share",
            "0.05",
            "--duration-days",
            "365",
            "--accepted-by",
            "lee-law",
            "--accepted-by",
            "park-cpa",
        ],
        ["agreement", "renew", "riverside", "a-1"],
        ["agreement", "terminate", "riverside", "a-1", "--reason", "retiring"],
        ["chapter", "attend", "riverside", "2025-01-14", "lee-law", "--status", "present"],
        [
            "chapter",
            "attend",
            "riverside",
            "2025-01-14",
            "park-cpa",
            "--status",
            "substitute",
            "--substitute",
            "Jo Park",
        ],
        ["chapter", "one-to-one", "riverside", "lee-law", "park-cpa"],
        ["chapter", "visitor", "riverside", "bloom", "Chris Lane", "--business", "Lane Photo"],
        ["chapter", "testimonial", "riverside", "park-cpa", "lee-law", "--text", "Great work"],
        ["chapter", "training", "riverside", "bloom", "Member Success Program"],
        [
            "chapter",
            "tyfcb",
            "riverside",
            "park-cpa",
            "lee-law",
            "--amount",
            "10000.00",
            "--currency",
            "USD",
            "--referral",
            "r-1",
        ],
        ["member", "update", "riverside", "bloom", "--service-area", "Downtown"],
        ["member", "suspend", "riverside", "bloom", "--reason", "dues"],
        ["member", "reinstate", "riverside", "bloom"],
        ["member", "leave", "riverside", "bloom"],
        ["network", "tiers", "riverside", "--tier", "bronze:0", "--tier", "gold:100"],
    ]
    for step in steps:
        result = run(*step)
        assert result.exit_code == 0, (step, result.output)
        assert result.output.startswith("Recorded ")

    listed = run("events", "--json")
    events = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(events) == len(steps)
    assert all(e["command"]["actor"] == "coord@riverside.example" for e in events)
    assert events[8]["command"]["deal_value"] == "10000.00"
    assert {e["type"] for e in events} >= {"agreement.amended", "tyfcb.reported", "member.left"}


def test_exit_codes_and_messages(run: Run) -> None:
    run("import", str(HISTORY))

    refused = run(
        "referral", "convert", "riverside", "r-0002", "--value", "10", "--currency", "USD"
    )
    assert refused.exit_code == 1
    assert "Error: referral: referral 'r-0002' is declined" in refused.output

    to_self = run(
        "referral",
        "send",
        "riverside",
        "r-9",
        "--from",
        "lee-law",
        "--to",
        "lee-law",
        "--customer",
        "X",
    )
    assert to_self.exit_code == 1
    assert "Error: to_member:" in to_self.output

    unknown = run(
        "referral",
        "send",
        "riverside",
        "r-9",
        "--from",
        "lee-law",
        "--to",
        "nobody",
        "--customer",
        "X",
    )
    assert unknown.exit_code == 1
    assert "Error: to_member: no member 'nobody'" in unknown.output

    currency = run(
        "referral",
        "send",
        "riverside",
        "r-10",
        "--from",
        "lee-law",
        "--to",
        "park-cpa",
        "--customer",
        "Y",
    )
    assert currency.exit_code == 0
    run("referral", "accept", "riverside", "r-10")
    wrong = run("referral", "convert", "riverside", "r-10", "--value", "5", "--currency", "EUR")
    assert wrong.exit_code == 1
    assert "Error: currency: EUR is not the network's currency (USD)" in wrong.output

    naive = run("referral", "lose", "riverside", "r-10", AT, "2025-05-01T10:00:00")
    assert naive.exit_code == 1
    assert "Error: occurred_at:" in naive.output

    amend = run(
        "agreement",
        "amend",
        "riverside",
        "a-lee-park",
        "--scope",
        "Less",
        "--accepted-by",
        "lee-law",
    )
    assert amend.exit_code == 1
    assert "accepted_by" in amend.output and "park-cpa" in amend.output

    usage = run("referral", "convert", "riverside", "r-10")
    assert usage.exit_code == 2
    assert "Missing option '--value'" in usage.output

    no_such = run("referral", "explode")
    assert no_such.exit_code == 2

    after = run("events", "--json").stdout.splitlines()
    assert len(after) == 37 + 2  # only the two accepted commands were written


def test_text_and_times_the_store_cannot_hold_are_refused(run: Run) -> None:
    """A command line's bytes that are not UTF-8 arrive as lone surrogates; times far off."""
    run("import", str(HISTORY))
    before = len(run("events", "--json").stdout.splitlines())
    lone = run("member", "suspend", "riverside", "park-cpa", "--reason", "dues \udcff")
    assert lone.exit_code == 1
    assert "Error: reason: is not valid Unicode text" in lone.output
    for moment in ("0185-03-08T22:08:28Z", "0001-01-01T00:00:00+01:00", "0", "1700000000"):
        far = run("member", "suspend", "riverside", "park-cpa", AT, moment)
        assert far.exit_code == 1, moment
        assert "Error: occurred_at:" in far.output, far.output
    assert len(run("events", "--json").stdout.splitlines()) == before


def test_import_bad_file_reports_lines_and_writes_nothing(run: Run, tmp_path: Path) -> None:
    lines = HISTORY.read_text().splitlines()
    lines[9] = lines[9].replace('"USD"', '"EUR"')
    lines[15] = "not json"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")

    result = run("import", str(bad))

    assert result.exit_code == 1
    assert "Nothing imported: 4 of 37 lines are invalid." in result.output
    assert "line 10: currency: EUR is not the network's currency (USD)" in result.output
    assert "line 16: -: not valid JSON" in result.output
    assert "line 11: referral:" in result.output  # reverses the conversion refused on line 10
    assert "line 34: referral: referral 'r-0001' is accepted, not converted" in result.output
    assert run("events", "--json").stdout == ""

    as_json = run("import", str(bad), "--json")
    report = json.loads(as_json.stdout)
    assert report["rejected"] == 4 and report["written"] is False
    assert report["errors"][0] == {
        "line": 10,
        "field": "currency",
        "reason": "EUR is not the network's currency (USD)",
        "code": "invalid",
        "text": lines[9],
    }

    skipped = run("import", str(bad), "--skip-invalid", "--rejected", str(tmp_path / "rej.jsonl"))
    assert skipped.exit_code == 0
    assert "Imported 33 events" in skipped.output
    rejected = [json.loads(x) for x in (tmp_path / "rej.jsonl").read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in rejected] == [
        (10, "currency"),
        (11, "referral"),
        (16, "-"),
        (34, "referral"),
    ]


def test_import_export_round_trip_and_progress(run: Run, tmp_path: Path) -> None:
    first = run("import", str(HISTORY), "--progress")
    assert first.exit_code == 0
    assert "Imported 37 events (0 already recorded, 0 rejected)" in first.output
    assert "events/s" in first.output  # the progress bar's rate column

    again = run("import", str(HISTORY))
    assert "Imported 0 events (37 already recorded" in again.output

    exported = tmp_path / "export.jsonl"
    assert run("export", "-o", str(exported), "--progress").exit_code == 0
    copy = tmp_path / "copy.db"
    runner = CliRunner()
    assert runner.invoke(cli, ["--database", str(copy), "import", str(exported)]).exit_code == 0
    second = runner.invoke(cli, ["--database", str(copy), "export"])
    assert second.stdout_bytes == exported.read_bytes()


def test_events_filters(run: Run) -> None:
    run("import", str(HISTORY))

    def types(*args: str) -> list[str]:
        result = run("events", "--json", *args)
        assert result.exit_code == 0, result.output
        return [json.loads(line)["type"] for line in result.stdout.splitlines()]

    assert len(types()) == 37
    assert types("--type", "referral.sent") == ["referral.sent"] * 3
    assert set(types("--member", "bloom")) >= {"member.invited", "member.left", "one_to_one.held"}
    assert "referral.sent" not in types("--member", "bloom", "--type", "member.left")
    # A referral's later events name only the referral, yet concern both its members.
    park = types("--member", "park-cpa", "--since", "2025-01-11", "--until", "2025-03-02")
    assert park == [
        "referral.accepted",
        "referral.converted",
        "referral.reversed",
        "referral.sent",
        "referral.declined",
        "agreement.proposed",
        "agreement.accepted",
        "agreement.accepted",
        "meeting.attended",
        "testimonial.given",
        "tyfcb.reported",
    ]
    assert "referral.lost" not in park  # r-0003 went from bloom to lee-law
    assert types("--member", "park-cpa", "--type", "agreement.renewed") == ["agreement.renewed"]
    assert types("--since", "2025-12-01", "--network", "riverside") == [
        "agreement.renewed",
        "member.left",
    ]
    assert types("--until", "2025-01-06T09:06:00Z") == ["network.created", "member.joined"]
    assert types("--network", "elsewhere") == []
    assert len(types("--limit", "5")) == 5

    table = run("events", "--type", "referral.converted")
    assert "referral.converted" in table.output
    assert "deal_value=10000.00" in table.output

    bad = run("events", "--type", "referral.exploded")
    assert bad.exit_code == 2


def test_schema_covers_every_command_type(run: Run) -> None:
    result = run("schema")
    schema = json.loads(result.stdout)
    listed = {ref["$ref"].rsplit("/", 1)[-1] for ref in schema["anyOf"]}
    tags = {schema["$defs"][name]["properties"]["type"]["enum"][0] for name in listed}
    assert tags == set(COMMAND_TYPES)


def test_init_creates_the_store(run: Run) -> None:
    result = run("init")
    assert result.exit_code == 0
    assert "Event store ready" in result.output
    assert "(0 events)" in result.output


def test_unreachable_postgresql_is_a_clear_error() -> None:
    result = CliRunner().invoke(
        cli, ["--database", "postgresql://postgres@127.0.0.1:1/none", "events"]
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: database: PostgreSQL postgres@127.0.0.1:1/none")
    assert "Traceback" not in result.output


def test_console_script_in_a_subprocess(database_url: str, tmp_path: Path) -> None:
    """The installed entry point, with the database from the environment."""
    env = {**os.environ, "PARTNERLEDGER_DATABASE": database_url}
    script = Path(sys.executable).with_name("partnerledger")
    done = subprocess.run(
        [str(script), "import", str(HISTORY)], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "Imported 37 events" in done.stdout
    with Store(Database.parse(database_url)) as store:
        assert sum(1 for _ in store.read()) == 37
