"""Bad input everywhere: every command type and the import, fed invalid and edge values.

Property (hypothesis, bounded and deterministic): a command or an import
line built from a valid example of ``docs/import-format.md`` with one field
replaced by an edge value (huge amounts, NaN, wrong currencies, times
without offsets, far past and future, NUL, lone surrogates, right-to-left
marks, emoji, empty and very long strings, ids of other records) is either
accepted, or refused with an error whose ``field`` names the field at
fault and whose reason is not empty; a refusal writes nothing: the log's
last position and every view are unchanged. Accepted commands must be
taken by the views without error.

Also: duplicate ids, request bodies over the size limit (413, problem+json
in the API), and import lines over 1 MiB (refused, naming the line).
"""

from __future__ import annotations

import copy
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from partnerledger import Database, DomainError, Ledger, Store
from partnerledger.accounts import Accounts
from partnerledger.cli.main import cli
from partnerledger.commands import COMMAND_TYPES, convert_command
from partnerledger.errors import from_validation_error
from partnerledger.jsonl import MAX_LINE_BYTES, import_lines
from partnerledger.projection import Projector
from partnerledger.web.app import MAX_BODY, create_app
from webkit import Browser, build_world, last_position
from webkit import World as WebWorld

DOC = Path(__file__).parent.parent / "docs" / "import-format.md"


def _doc_examples() -> list[dict[str, Any]]:
    """Every command example of the import format's page, in page order (they import cleanly)."""
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    lines = [json.loads(line) for block in blocks for line in block.splitlines() if line.strip()]
    return [line for line in lines if "type" in line]


EXAMPLES = _doc_examples()
#: Per field name, the values the examples give it (to reuse ids of other records).
SEEN: dict[str, list[Any]] = {}
for _example in EXAMPLES:
    for _name, _value in _example.items():
        if _value not in SEEN.setdefault(_name, []):
            SEEN[_name].append(_value)

AMOUNTS = ["1" + "0" * 30, 10**30, "1e400", "-1e400", "1E+999999", "NaN", "-nan", "Infinity",
           "sNaN", "-0", "-1", "-0.01", "0", "1e-400", "0.000000000000000000000000001",
           "12.345678901234567890123", 1e308, "1,000.00", "$10", " 10 "]  # fmt: skip
CURRENCIES = ["usd", "XXX", "EURO", "US", "€", "", "ZZZ", "EUR", "GBP", "U$D"]
TIMES = ["2025-01-01T00:00:00", "2025-01-01", "1899-12-31T23:59:59Z", "2200-01-01T00:00:00Z",
         "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-12:00", "2025-02-30T00:00:00Z",
         "2025-01-01T00:00:00+25:00", "1900-01-01T00:00:00+01:00", "2199-12-31T23:59:59-14:00",
         "now", 0, 1700000000]  # fmt: skip
TEXTS = ["", " ", "x" * 100_000, "\x00", "a\x00b", "\ud800", "x\udfff", "\u202eevil\u202c",
         "مرحبا بالعالم", "💸" * 1000, "a\nb", "<script>alert(1)</script>", "Ω" * 300,
         "\ufeff", "e\u0301", "r-1 ", "R-0001"]  # fmt: skip
OTHERS = [None, True, False, [], {}, [1], {"a": 1}, -1, 0, 2**64, 1.5]

EDGE = st.one_of(
    st.sampled_from(AMOUNTS),
    st.sampled_from(CURRENCIES),
    st.sampled_from(TIMES),
    st.sampled_from(TEXTS),
    st.sampled_from(OTHERS),
    st.text(max_size=20),
    st.integers(min_value=-(2**70), max_value=2**70),
)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A doc example with one field replaced (or removed): (data, the field)."""
    data = copy.deepcopy(draw(st.sampled_from(EXAMPLES)))
    field = draw(st.sampled_from(sorted(data)))
    how = draw(st.sampled_from(["edge", "edge", "other", "remove"]))
    if how == "remove":
        del data[field]
    elif how == "other":  # a value another example gives the same field: duplicate ids...
        data[field] = copy.deepcopy(draw(st.sampled_from(SEEN[field])))
    else:
        data[field] = draw(EDGE)
    return data, field


def _top(field: str) -> str:
    """The top-level field of a path: ``terms`` of ``terms.fee``, ``parties`` of ``parties[1]``."""
    return re.split(r"[.\[]", field, maxsplit=1)[0]


def _known_fields(data: dict[str, Any]) -> set[str]:
    kind = COMMAND_TYPES.get(str(data.get("type")))
    names = {f.encode_name for f in msgspec.structs.fields(kind)} if kind else set()
    return names | {"type", "subject"}


class World:
    """A store holding every doc example, its views, and a way to snapshot both."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.ledger = Ledger(store)
        self.ledger.execute_all(convert_command(e) for e in EXAMPLES)
        self.projector = Projector(store)
        self.projector.catch_up()

    def snapshot(self) -> tuple[int, dict[str, int], list[list[tuple[str, ...]]]]:
        views = [view.dump() for view in self.projector.projections.values()]
        return self.store.last_position(), self.projector.positions(), views


@pytest.fixture
def world(store: Store) -> Iterator[World]:
    opened = World(store)
    try:
        yield opened
    finally:
        opened.projector.close()


BOUNDED = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def test_every_command_type_has_an_example() -> None:
    assert {e["type"] for e in EXAMPLES} == set(COMMAND_TYPES)


def test_a_command_with_an_edge_value_is_accepted_or_refused_naming_the_field(
    world: World,
) -> None:
    @BOUNDED
    @given(case=mutated())
    def check(case: tuple[dict[str, Any], str]) -> None:
        data, changed = case
        before = world.snapshot()
        try:
            command = convert_command(data)
        except msgspec.ValidationError as error:  # the shape: always the changed field
            problem = from_validation_error(error)
            event("refused: shape")
            assert problem.reason.strip()
            if changed == "type":  # another type: its own fields are missing or unknown
                assert problem.field, problem
            else:
                assert _top(problem.field) == changed, (problem.field, problem.reason, changed)
            return
        try:
            world.ledger.execute(command)
        except DomainError as error:
            # The changed field, or the field whose record or state refuses it.
            named, reason = error.field, error.reason
        else:
            event("accepted")
            world.projector.catch_up()  # accepted: every view takes it
            assert world.projector.lag() == 0
            return
        event("refused: domain")
        assert reason.strip()
        assert _top(named) in _known_fields(data) | {changed}, (named, reason, changed)
        world.projector.catch_up()
        assert world.snapshot() == before  # nothing written, no view changed

    check()


def test_an_import_with_edge_values_is_all_or_nothing_and_names_each_line(world: World) -> None:
    @BOUNDED
    @given(cases=st.lists(mutated(), min_size=1, max_size=4))
    def check(cases: list[tuple[dict[str, Any], str]]) -> None:
        lines = [json.dumps(data).encode() for data, _ in cases]  # lone surrogates escaped
        before = world.snapshot()
        report = import_lines(world.ledger, lines)
        event("written" if report.written else "refused")
        if report.written:
            assert report.rejected == []
            world.projector.catch_up()
            assert world.projector.lag() == 0
            return
        assert report.rejected
        for error in report.rejected:
            assert 1 <= error.line <= len(lines)
            assert error.field and error.reason.strip()
            changed = cases[error.line - 1][1]
            data = cases[error.line - 1][0]
            assert _top(error.field) in _known_fields(data) | set(data) | {changed}, (
                error.field,
                error.reason,
                changed,
            )
        world.projector.catch_up()
        assert world.snapshot() == before

    check()


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        ("2025-03-01T09:00:00", "timezone"),
        ("1899-12-31T23:59:59Z", "1900"),
        ("2200-01-01T00:00:00Z", "2200"),
        ("0001-01-01T00:00:00+01:00", ""),
    ],
)
def test_times_without_offset_or_out_of_range_are_refused_on_occurred_at(
    world: World, when: str, reason: str
) -> None:
    data = {**EXAMPLES[0], "occurred_at": when, "network": "elsewhere"}
    before = world.snapshot()
    report = import_lines(world.ledger, [msgspec.json.encode(data)])
    [error] = report.rejected
    assert error.field == "occurred_at" and reason in error.reason, error
    assert world.snapshot() == before


def test_duplicate_ids_are_refused_naming_the_field(world: World) -> None:
    first = next(e for e in EXAMPLES if e["type"] == "referral.sent")
    before = world.snapshot()
    # The same referral id again, for another customer: the id is taken.
    again = {**first, "customer": "Somebody Else", "occurred_at": "2025-12-01T09:00:00Z"}
    with pytest.raises(DomainError) as caught:
        world.ledger.execute(convert_command(again))
    assert (caught.value.field, caught.value.code) == ("referral", "already_exists")
    # One command id for two different commands of one referral: the second line is refused.
    lines = [
        {**first, "referral": "dup-1", "command_id": "same-id"},
        {"type": "referral.accepted", "network": first["network"], "referral": "dup-1",
         "actor": "x", "occurred_at": first["occurred_at"], "command_id": "same-id"},
    ]  # fmt: skip
    report = import_lines(world.ledger, [msgspec.json.encode(x) for x in lines])
    assert [(e.line, e.field) for e in report.rejected] == [(2, "command_id")]
    assert "already used for a different command" in report.rejected[0].reason
    assert world.snapshot() == before


def test_unicode_text_is_kept_exactly_or_refused_naming_the_field(world: World) -> None:
    member = next(e for e in EXAMPLES if e["type"] == "member.joined" and "name" in e)
    kept = ["مرحبا \u202eRTL\u202c", "💸 Money Inc. 💸", "e\u0301 Ltd", "a\x00b", "Ω" * 200]
    for n, name in enumerate(kept):
        data = {**member, "member": f"uni-{n}", "name": name}
        world.ledger.execute(convert_command(data))
        recorded = world.store.last_position()
        [event] = [e for p, e in world.store.read() if p == recorded]
        assert event.command.name == name  # type: ignore[attr-defined]
    world.projector.catch_up()
    assert world.projector.lag() == 0
    before = world.snapshot()
    for bad in ("\ud800", "x\udfff", "", "x" * 201):
        with pytest.raises(msgspec.ValidationError) as caught:
            convert_command({**member, "member": "uni-bad", "name": bad})
        problem = from_validation_error(caught.value)
        assert problem.field == "name" and problem.reason, (bad[:20], problem)
        line = json.dumps({**member, "member": "uni-bad", "name": bad}).encode()
        [error] = import_lines(world.ledger, [line]).rejected
        assert error.field == "name" and error.reason, (bad[:20], error)
    assert world.snapshot() == before


# ------------------------------------------------------------------ limits


def test_an_import_line_over_the_limit_is_refused_naming_it(store: Store, tmp_path: Path) -> None:
    ledger = Ledger(store)
    good = msgspec.json.encode(EXAMPLES[0])
    huge = msgspec.json.encode({**EXAMPLES[1], "name": "x" * (MAX_LINE_BYTES + 10)})
    report = import_lines(ledger, io.BytesIO(good + b"\n" + huge + b"\n" + good + b"\n"))
    assert not report.written and store.last_position() == 0
    [error] = report.rejected
    assert (error.line, error.field) == (2, "-")
    assert "longer than 1,048,576 bytes (1 MiB)" in error.reason
    assert len(error.text) < 2000  # the report keeps the start of the line only
    assert report.lines == 3

    # The command line says the same, and writes nothing.
    path = tmp_path / "big.jsonl"
    path.write_bytes(good + b"\n" + huge)  # the last line without a newline
    database = store.database
    url = database.path if database.kind == "sqlite" else None
    if url is not None:
        result = CliRunner().invoke(cli, ["--database", url, "import", str(path)])
        assert result.exit_code == 1
        assert "line 2: -: the line is longer than 1,048,576 bytes" in result.output
        assert store.last_position() == 0


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient[Any], str, str]]:
    url = str(tmp_path / "api.db")
    world = build_world(url)
    with Accounts(Database.parse(url)) as accounts:
        user = accounts.by_email(world.coordinator)
        assert user is not None
        token = accounts.create_token(user.id, "limits")[0]
    app = create_app(url, secret="s", sessions=tmp_path / "sessions", inline=True)
    with TestClient(app) as client:
        yield client, token, url


def test_a_body_over_one_mib_is_413_and_writes_nothing(
    api: tuple[TestClient[Any], str, str],
) -> None:
    client, token, url = api
    before = last_position(WebWorld(url))
    path = "/api/v1/networks/riverside/referrals"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = json.dumps({"to_member": "bob-tax", "customer": "C", "note": "x" * MAX_BODY})
    for content in (body.encode(), iter([body.encode()[:MAX_BODY], body.encode()[MAX_BODY:]])):
        response = client.post(path, content=content, headers=headers)  # sized, then streamed
        assert response.status_code == 413, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["errors"] == [{"field": "body", "reason": "too large", "code": "invalid"}]
        assert "larger than 1,048,576 bytes (1 MiB)" in problem["detail"]
    assert last_position(WebWorld(url)) == before
    # Just under the limit is read, and judged on its content (the note is too long: 422).
    small = json.dumps({"to_member": "bob-tax", "customer": "C", "note": "x" * 2000})
    assert client.post(path, content=small, headers=headers).status_code == 422
    # A web form over the limit: a 413 page saying so.
    form = Browser(client).post("/login", {"email": "x" * MAX_BODY, "password": "p"})
    assert form.status_code == 413
    assert form.headers["content-type"].startswith("text/html")
    assert "larger than 1,048,576 bytes (1 MiB)" in form.text


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["referral", "convert", "n1", "r-1", "--value", "1e400", "--currency", "USD"],
         "deal_value"),
        (["referral", "convert", "n1", "r-1", "--value", "NaN", "--currency", "USD"],
         "deal_value"),
        (["referral", "convert", "n1", "r-1", "--value", "10", "--currency", "usd"], "currency"),
        (["referral", "convert", "n1", "r-1", "--value", "10", "--currency", "EUR"], "currency"),
        (["member", "add", "n1", "m-2", "--name", "M", "--category", "c",
          "--at", "2300-01-01T00:00:00Z"], "occurred_at"),
        (["member", "add", "n1", "m-2", "--name", "M", "--category", "c",
          "--at", "2025-01-01T00:00:00"], "occurred_at"),
        (["member", "add", "n1", "m-2", "--name", "", "--category", "c"], "name"),
        (["member", "add", "n1", "m-1", "--name", "M", "--category", "c"], "member"),
    ],
)  # fmt: skip
def test_the_cli_refuses_edge_values_naming_the_field(
    cli_db: list[str], args: list[str], field: str
) -> None:
    result = CliRunner().invoke(cli, [*cli_db, *args])
    assert result.exit_code == 1, result.output
    assert f"Error: {field}: " in result.output, result.output


@pytest.fixture(scope="module")
def cli_db(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A SQLite store with network n1, members m-1 and m-3, and an accepted referral r-1."""
    database = ["--database", str(tmp_path_factory.mktemp("cli") / "cli.db")]
    runner = CliRunner()
    for args in (
        ["network", "create", "n1", "--name", "N", "--currency", "USD"],
        ["member", "add", "n1", "m-1", "--name", "M", "--category", "c"],
        ["member", "add", "n1", "m-3", "--name", "M3", "--category", "d"],
        ["referral", "send", "n1", "r-1", "--from", "m-1", "--to", "m-3", "--customer", "C"],
        ["referral", "accept", "n1", "r-1"],
    ):
        result = runner.invoke(cli, [*database, *args])
        assert result.exit_code == 0, result.output
    return database
