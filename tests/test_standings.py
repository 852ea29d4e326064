"""Provisional standings through the CLI: the network's own plugins, on both databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from click.testing import CliRunner

from partnerledger import Ledger
from partnerledger.cli.main import cli
from partnerledger.commands import decode_command

START = datetime(2025, 1, 7, 7, 0, tzinfo=UTC)  # a Tuesday
#: A business-time cut: the end of 30 June, so June's standings (its six-month window:
#: January to June) from the log as of then.
AS_OF = "2025-06-30"
#: When the plugins are switched on (business time): before the history they score.
ENABLED_AT = "2025-01-02T00:00:00Z"


def cmd(network: str, type_: str, at: datetime, **fields: object) -> bytes:
    record = {"type": type_, "network": network, "actor": "coord", "occurred_at": at.isoformat()}
    return msgspec.json.encode({**record, **fields})


def chapter(network: str) -> list[bytes]:
    """26 weekly meetings; 'ana' has a known traffic-light record, 'ben' does little."""
    lines = [
        cmd(network, "network.created", START - timedelta(days=7), name=network, currency="USD")
    ]
    for slug, category in (("ana", "lawyer"), ("ben", "accountant"), ("cy", "florist")):
        lines.append(
            cmd(
                network,
                "member.joined",
                START - timedelta(days=6),
                member=slug,
                name=slug,
                category=category,
            )
        )
    for week in range(26):
        at = START + timedelta(weeks=week)
        ana = "absent" if week == 3 else "present"  # one absence → 10
        lines.append(
            cmd(network, "meeting.attended", at, meeting=f"m{week}", member="ana", status=ana)
        )
        ben = "late" if week % 2 else "absent"  # 13 absences → 0, late → 0
        lines.append(
            cmd(network, "meeting.attended", at, meeting=f"m{week}", member="ben", status=ben)
        )
    for n in range(20):  # 20 / 26 = 0.769 a week → 10
        at = START + timedelta(weeks=n, hours=2)
        lines.append(
            cmd(
                network,
                "referral.sent",
                at,
                referral=f"r{n}",
                from_member="ana",
                to_member="cy",
                customer=f"c{n}",
            )
        )
    lines.append(
        cmd(
            network,
            "tyfcb.reported",
            START + timedelta(days=30),
            member="cy",
            thanked_member="ana",
            amount="3000.00",
            currency="USD",
        )
    )  # → 10
    for n in range(5):  # 5 / 26 = 0.192 → 10
        lines.append(
            cmd(
                network,
                "visitor.brought",
                START + timedelta(weeks=n, hours=3),
                member="ana",
                visitor=f"v{n}",
            )
        )
    for n in range(2):  # 2 / 26 = 0.077 → 10
        lines.append(
            cmd(
                network,
                "testimonial.given",
                START + timedelta(weeks=n, hours=4),
                member="ana",
                about_member="cy",
            )
        )
    for n in range(2):  # → 10
        lines.append(
            cmd(
                network,
                "training.completed",
                START + timedelta(weeks=n, hours=5),
                member="ana",
                training=f"t{n}",
            )
        )
    return lines


def test_each_network_computes_with_its_own_plugins(database_url: str, ledger: Ledger) -> None:
    ledger.execute(*(decode_command(x) for x in chapter("north") + chapter("south")))
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, ["--database", database_url, *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    run("plugin", "enable", "north", "traffic-lights", "--at", ENABLED_AT)
    run("plugin", "enable", "north", "threshold-tiers", "--at", ENABLED_AT)
    run("plugin", "enable", "south", "points", "--set", "referral_given=2", "--at", ENABLED_AT)

    north = {
        row["member"]: row
        for row in json.loads(run("standings", "--network", "north", "--as-of", AS_OF, "--json"))
    }
    ana = north["ana"]
    assert ana["period"] == "2025-06"
    assert ana["scoring_plugin"] == {"name": "traffic-lights", "version": "1.0.0"}
    assert ana["breakdown"] == {
        "absences": "10",
        "referrals": "10",
        "tyfcb": "10",
        "visitors": "10",
        "testimonials": "10",
        "on_time": "5",
        "trainings": "10",
    }
    assert ana["score"] == "65"
    assert ana["label"] == "amber"
    assert ana["tier"] == "silver"
    assert north["ben"]["breakdown"]["absences"] == "0"
    assert north["ben"]["label"] == "grey"
    assert ana["window"] == {"start": "2025-01-01T00:00:00Z", "end": "2025-07-01T00:00:00Z"}

    south = {
        row["member"]: row
        for row in json.loads(run("standings", "--network", "south", "--as-of", AS_OF, "--json"))
    }
    assert south["ana"]["scoring_plugin"]["name"] == "points"
    assert south["ana"]["tier"] is None  # no tiering plugin enabled there
    assert "absences" not in south["ana"]["breakdown"]

    # Cut before the plugins were switched on: no scoring plugin as of then.
    before = json.loads(
        run("standings", "--network", "north", "--as-of", "2025-01-01T12:00:00Z", "--json")
    )
    assert before and all(row["score"] is None for row in before)


def test_standings_without_a_scoring_plugin_and_errors(database_url: str, ledger: Ledger) -> None:
    ledger.execute(*(decode_command(x) for x in chapter("north")))
    runner = CliRunner()
    result = runner.invoke(
        cli, ["--database", database_url, "standings", "--network", "north", "--as-of", AS_OF]
    )
    assert result.exit_code == 0
    assert "No scoring plugin is enabled" in result.output

    missing = runner.invoke(cli, ["--database", database_url, "standings", "--network", "nowhere"])
    assert missing.exit_code == 1
    assert "Error: network: no network 'nowhere'" in missing.output

    nobody = runner.invoke(
        cli, ["--database", database_url, "standings", "--network", "north", "--member", "zed"]
    )
    assert nobody.exit_code == 1
    assert "Error: member: no member 'zed'" in nobody.output


@pytest.mark.parametrize("as_of", ["2025-07-01T00:00:00", "soon"])
def test_standings_refuses_a_bad_time(tmp_path: object, as_of: str) -> None:
    result = CliRunner().invoke(
        cli, ["--database", f"{tmp_path}/x.db", "standings", "--network", "north", "--as-of", as_of]
    )
    assert result.exit_code == 2
