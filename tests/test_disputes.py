"""Disputes: raised, commented, resolved by compensating events; evidence by content hash.

On SQLite and PostgreSQL: the domain's rules (each refusal names its field
and writes nothing), the effect of ``credit.reassigned`` and
``ledger.adjusted`` on standings, incentives, scorecards, statements and the
period close, the trail, views rebuilt equal to views kept incrementally
(hand-made and generated histories), the evidence store, the CLI and the web.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from partnerledger import Database, DomainError, Ledger, Store
from partnerledger.activity import member_activities
from partnerledger.cli.main import cli
from partnerledger.closing import close_period
from partnerledger.commands import Command, convert_command, decode_command, encode_command
from partnerledger.disputes import (
    DisputeService,
    Upload,
    dispute_record,
    dispute_records,
    entry_ref,
    parse_subject,
)
from partnerledger.domain import Dispute, dispute_id
from partnerledger.errors import AlreadyExists, InvalidCommand, InvalidTransition, NotFound
from partnerledger.evidence import MAX_BYTES, EvidenceStore, digest
from partnerledger.jsonl import export_lines, import_lines
from partnerledger.projection import Projector
from partnerledger.replay import attributions, incentive_entries
from partnerledger.rules import Window
from partnerledger.views import ledger as ledger_view
from partnerledger.views import standings as standings_view
from partnerledger.views.scorecards import scorecards
from partnerledger.views.trail import trail
from test_projections import (
    Plan,
    assert_same_views,
    beginnings,
    cut,
    examples,
    execute_items,
    follow_plan,
    fresh_database,
    moments,
    operations,
    pairs,
    people,
    rebuilt_views,
)
from test_projections import line as pier_line
from webkit import World, browser, build_world, command, events, last_position, record

NET = "riv"
START = datetime(2025, 1, 6, 9, tzinfo=UTC)
Q1 = Window(start=datetime(2025, 1, 1, tzinfo=UTC), end=datetime(2025, 4, 1, tzinfo=UTC))


def at(days: int) -> datetime:
    return START + timedelta(days=days)


def c(kind: str, when: datetime = START, **fields: Any) -> Command:
    return convert_command(
        {"type": kind, "network": NET, "actor": "coord@riv.example", "occurred_at": when, **fields}
    )


def setup(ledger: Ledger, *extra: Command) -> None:
    """A network paying a 100 USD referral fee, ann → bob converted, cat and dan besides."""
    ledger.execute(
        c("network.created", name="Riverside", currency="USD", period="quarter",
          tiers=[{"name": "bronze", "threshold": "0"}]),
        c("plugin.enabled", plugin="fees",
          settings={"default_kind": "referral_fee", "default_fee": "100"}),
        c("plugin.enabled", plugin="points"),
        *(c("member.joined", member=m, name=m.title(), category=f"trade-{m}")
          for m in ("ann", "bob", "cat", "dan")),
        c("referral.sent", referral="r1", from_member="ann", to_member="bob", customer="Dana"),
        c("referral.accepted", at(1), referral="r1"),
        c("referral.converted", at(2), referral="r1", deal_value="1000", currency="USD"),
        c("referral.sent", at(3), referral="r2", from_member="ann", to_member="bob",
          customer="Eve"),
        c("referral.accepted", at(3), referral="r2"),
        *extra,
    )  # fmt: skip


def raised(dispute: str = "d1", **fields: Any) -> Command:
    base: dict[str, Any] = {
        "dispute": dispute,
        "subject_kind": "referral",
        "subject": "r2",
        "statement": "Cat found Eve, not Ann",
        "raised_by": "ann",
    }
    return c("dispute.raised", at(4), **{**base, **fields})


def log_length(store: Store) -> int:
    return store.last_position()


def refused(ledger: Ledger, field: str, *commands: Command) -> DomainError:
    before = log_length(ledger.store)
    with pytest.raises(DomainError) as caught:
        ledger.execute(*commands)
    assert caught.value.field == field, caught.value
    assert log_length(ledger.store) == before, "a refused command wrote something"
    return caught.value


@pytest.fixture
def files(store: Store) -> Iterator[EvidenceStore]:
    with EvidenceStore(store.database) as opened:
        yield opened


@pytest.fixture
def service(ledger: Ledger, projector: Projector, files: EvidenceStore) -> DisputeService:
    return DisputeService(ledger, projector, files)


# ------------------------------------------------------------------ the domain


def test_a_dispute_is_raised_commented_and_resolved_with_its_compensations(
    ledger: Ledger,
) -> None:
    setup(ledger)
    ledger.execute(
        raised(evidence=[{"text": "Cat's email of 6 January"}]),
        c("dispute.commented", at(5), dispute="d1", author="bob", text="Cat called me first"),
        c("dispute.commented", at(5), dispute="d1", text="Checking the emails"),
    )
    outcome = ledger.execute(
        c("credit.reassigned", at(6), referral="r2", from_member="ann", to_member="cat",
          dispute="d1", reason="Cat found the lead", command_id="d1/1"),
        c("ledger.adjusted", at(6), dispute="d1", member="cat", amount="25.50", currency="USD",
          reason="Goodwill", command_id="d1/2"),
        c("dispute.resolved", at(6), dispute="d1", outcome="upheld", reason="Cat found the lead",
          compensations=["d1/1", "d1/2"]),
    )  # fmt: skip
    assert [e.type for e in outcome.recorded] == [
        "credit.reassigned",
        "ledger.adjusted",
        "dispute.resolved",
    ]
    work = ledger.unit_of_work()
    dispute = work.load(Dispute, dispute_id(NET, "d1"))
    assert dispute is not None
    assert (dispute.status, dispute.outcome, dispute.comments) == ("resolved", "upheld", 2)
    assert dispute.compensations == ("d1/1", "d1/2")
    referral = work.referral(NET, "r2", "referral")
    assert (referral.from_member, referral.credited) == ("ann", "cat")
    # Once resolved: no comment, no second resolution, no compensation.
    refused(ledger, "dispute", c("dispute.commented", at(7), dispute="d1", text="late"))
    refused(
        ledger, "dispute",
        c("dispute.resolved", at(7), dispute="d1", outcome="rejected", reason="again"),
    )  # fmt: skip
    refused(
        ledger, "dispute",
        c("ledger.adjusted", at(7), dispute="d1", member="ann", amount="1", currency="USD",
          reason="x"),
    )  # fmt: skip


def test_raising_refuses_what_does_not_exist_or_is_not_the_members(ledger: Ledger) -> None:
    setup(ledger)
    ledger.execute(raised())
    assert ledger.execute(raised()).duplicates == 1  # the same command again: a no-op
    error = refused(ledger, "dispute", raised(statement="Again"))  # the same id: taken
    assert isinstance(error, AlreadyExists)
    assert isinstance(refused(ledger, "subject", raised("d2", subject="r9")), NotFound)
    refused(ledger, "raised_by", raised("d2", raised_by="nobody"))
    # A member disputes referrals their business sent or received, and their own entries.
    refused(ledger, "raised_by", raised("d2", raised_by="dan"))
    refused(
        ledger, "raised_by",
        raised("d2", subject_kind="ledger_entry", subject="ann/sha256:00ff", raised_by="bob"),
    )  # fmt: skip
    refused(ledger, "subject", raised("d2", subject_kind="ledger_entry", subject="ann"))
    refused(ledger, "subject", raised("d2", subject_kind="referral", subject="ann/x"))
    # Only a converted referral's conversion is disputed.
    error = refused(ledger, "subject", raised("d2", subject_kind="conversion", subject="r2"))
    assert isinstance(error, InvalidTransition)
    ledger.execute(raised("d2", subject_kind="conversion", subject="r1", raised_by="bob"))
    # Evidence: a text or a file, never both, never half a file.
    for bad, field in (
        ({"text": "x", "sha256": digest(b"x"), "name": "x", "media_type": "text/plain",
          "size": 1}, "evidence[0].text"),
        ({"sha256": digest(b"x")}, "evidence[0].sha256"),
        ({"text": "x", "name": "x.txt"}, "evidence[0].name"),
    ):  # fmt: skip
        with pytest.raises(msgspec.ValidationError):
            raised("d3", evidence=[bad])
        line = json.dumps({**json.loads(encode_command(raised("d3"))), "evidence": [bad]})
        from partnerledger.errors import from_validation_error

        with pytest.raises(msgspec.ValidationError) as caught:
            decode_command(line)
        assert from_validation_error(caught.value).field == field


def test_comments_come_from_parties_or_coordinators_while_open(ledger: Ledger) -> None:
    setup(ledger)
    ledger.execute(raised())
    refused(ledger, "author", c("dispute.commented", at(5), dispute="d1", author="dan", text="x"))
    refused(ledger, "dispute", c("dispute.commented", at(5), dispute="d9", text="x"))
    ledger.execute(c("dispute.commented", at(5), dispute="d1", author="bob", text="I agree"))
    # Withdrawn by whoever raised it, and then closed.
    refused(ledger, "by", c("dispute.withdrawn", at(6), dispute="d1", by="bob"))
    refused(ledger, "by", c("dispute.withdrawn", at(6), dispute="d1"))
    ledger.execute(c("dispute.withdrawn", at(6), dispute="d1", by="ann", reason="settled"))
    refused(ledger, "dispute", c("dispute.commented", at(7), dispute="d1", text="x"))


def test_compensations_are_checked_and_the_resolution_lists_exactly_them(
    ledger: Ledger,
) -> None:
    setup(ledger)
    ledger.execute(raised(), raised("d2", subject="r1", raised_by="bob"))

    def reassign(**fields: Any) -> Command:
        base = {"referral": "r2", "from_member": "ann", "to_member": "cat", "dispute": "d1",
                "reason": "Cat found the lead", "command_id": "d1/1"}  # fmt: skip
        return c("credit.reassigned", at(6), **{**base, **fields})

    def resolved(*ids: str, outcome: str = "upheld", dispute: str = "d1") -> Command:
        return c("dispute.resolved", at(6), dispute=dispute, outcome=outcome, reason="ok",
                 compensations=list(ids))  # fmt: skip

    refused(ledger, "from_member", reassign(from_member="bob"))
    refused(ledger, "to_member", reassign(to_member="bob"))  # the receiver
    refused(ledger, "to_member", reassign(to_member="ann"))  # the member credited now
    refused(ledger, "to_member", reassign(to_member="zed"))
    refused(ledger, "referral", reassign(referral="r1"))  # d1 is about r2
    refused(ledger, "referral", reassign(referral="r7"))
    refused(ledger, "dispute", reassign(dispute="d7"))
    adjust = {"dispute": "d1", "member": "ann", "currency": "USD", "reason": "x"}
    refused(ledger, "amount", c("ledger.adjusted", at(6), **adjust, amount="0"))
    refused(ledger, "amount", c("ledger.adjusted", at(6), **adjust, amount="0.00001"))
    refused(ledger, "currency", c("ledger.adjusted", at(6), **{**adjust, "currency": "EUR"},
                                  amount="5"))  # fmt: skip
    refused(ledger, "member", c("ledger.adjusted", at(6), **{**adjust, "member": "zed"},
                                amount="5"))  # fmt: skip
    refused(ledger, "entry", c("ledger.adjusted", at(6), **adjust, amount="5",
                               entry="bob/sha256:00"))  # fmt: skip
    # The resolution names exactly the compensations recorded for it.
    refused(ledger, "compensations[0]", reassign(), resolved("d1/9"))
    refused(ledger, "compensations", reassign(), resolved())
    refused(ledger, "compensations[1]", reassign(), resolved("d1/1", "d1/1"))
    refused(ledger, "compensations", reassign(), resolved("d1/1", outcome="rejected"))
    # Another dispute's compensation is not this one's.
    refused(ledger, "compensations[0]", reassign(), resolved("d1/1", dispute="d2"))
    # All or nothing: the reassignment is not kept when the resolution is refused.
    assert ledger.unit_of_work().referral(NET, "r2", "referral").credited == "ann"
    ledger.execute(reassign(), resolved("d1/1"))
    # A withdrawal would leave compensations behind: refused.
    ledger.execute(c("ledger.adjusted", at(7), **{**adjust, "dispute": "d2"}, amount="-5"))
    refused(ledger, "dispute", c("dispute.withdrawn", at(8), dispute="d2", by="bob"))


# ------------------------------------------------------------------ the service


def test_the_service_resolves_in_one_transaction_and_reverses_entries_exactly(
    ledger: Ledger, projector: Projector, service: DisputeService
) -> None:
    setup(ledger)
    projector.catch_up()
    (fee,) = ledger_view.entries(projector.db, NET, "ann")
    assert (fee.kind, fee.amount) == ("referral_fee", Decimal("100.00"))
    ref = entry_ref("ann", fee.source)
    before = log_length(ledger.store)
    # The entry must exist, and be the raiser's.
    with pytest.raises(NotFound) as missing:
        service.raise_dispute(network=NET, dispute="d1", subject_kind="ledger_entry",
                              subject="ann/sha256:0000", statement="x", raised_by="ann",
                              actor="ann@x", at=at(5))  # fmt: skip
    assert missing.value.field == "subject"
    assert log_length(ledger.store) == before
    service.raise_dispute(network=NET, dispute="d1", subject_kind="ledger_entry", subject=ref,
                          statement="The fee is wrong", raised_by="ann", actor="ann@x",
                          at=at(5))  # fmt: skip
    # A bad compensation: nothing of the resolution is written.
    before = log_length(ledger.store)
    with pytest.raises(DomainError) as caught:
        service.resolve(network=NET, dispute="d1", outcome="upheld", reason="wrong fee",
                        actor="coord", at=at(6), reverse=[ref], adjust=[("zed", "5")])  # fmt: skip
    assert caught.value.field == "member"
    assert log_length(ledger.store) == before
    with pytest.raises(NotFound) as caught:
        service.resolve(network=NET, dispute="d1", outcome="upheld", reason="wrong fee",
                        actor="coord", at=at(6), reverse=["ann/sha256:0000"])  # fmt: skip
    assert caught.value.field == "reverse_entry"
    recorded = service.resolve(
        network=NET, dispute="d1", outcome="partly_upheld", reason="wrong fee", actor="coord",
        at=at(6), reverse=[ref], adjust=[("ann", "40")],
    )  # fmt: skip
    assert [e.type for e in recorded] == ["ledger.adjusted", "ledger.adjusted", "dispute.resolved"]
    assert recorded[-1].command.compensations == ("d1/1", "d1/2")
    amounts = {e.source: e.amount for e in ledger_view.entries(projector.db, NET, "ann")}
    assert amounts == {fee.source: Decimal("100.00"), "d1/1": Decimal("40"),
                       "d1/2": Decimal("-100.00")}  # fmt: skip
    # Reversing it again: nothing is left of it.
    service.raise_dispute(network=NET, dispute="d2", subject_kind="ledger_entry", subject=ref,
                          statement="again", actor="coord", at=at(7))  # fmt: skip
    assert service.left_of_entry(NET, ref) == 0
    with pytest.raises(InvalidTransition):
        service.resolve(network=NET, dispute="d2", outcome="upheld", reason="x", actor="c",
                        at=at(8), reverse=[ref])  # fmt: skip
    with pytest.raises(InvalidTransition) as twice:
        service.resolve(network=NET, dispute="d1", outcome="upheld", reason="x", actor="c",
                        at=at(8))  # fmt: skip
    assert twice.value.field == "dispute"


def test_a_reassignment_moves_standing_credit_and_future_incentives(
    ledger: Ledger, projector: Projector, service: DisputeService
) -> None:
    setup(ledger)
    service.raise_dispute(network=NET, dispute="d1", subject_kind="referral", subject="r2",
                          statement="Cat found Eve", raised_by="ann", actor="ann@x",
                          at=at(4))  # fmt: skip
    service.resolve(network=NET, dispute="d1", outcome="upheld", reason="Cat found Eve",
                    actor="coord", at=at(5), reassign=[("r2", "cat")])  # fmt: skip
    ledger.execute(
        c("referral.converted", at(10), referral="r2", deal_value="2000", currency="USD"),
        c("referral.reversed", at(11), referral="r2", amount="500", reason="refund"),
    )
    projector.catch_up()
    db = projector.db
    # Incentives: the fee and the clawback of r2 are cat's; r1's fee stays ann's.
    fees = [(e.member, e.kind, e.amount) for e in ledger_view.entries(db, NET)]
    assert ("cat", "referral_fee", Decimal("100.00")) in fees
    assert ("cat", "clawback", Decimal("-25.00")) in fees
    assert [f for f in fees if f[0] == "ann"] == [("ann", "referral_fee", Decimal("100.00"))]
    # The replay of the log agrees with the ledger view.
    replayed = sorted(
        (j.decision.value.member, str(j.decision.value.amount))  # type: ignore[union-attr]
        for j in incentive_entries(ledger, NET)
    )
    assert replayed == sorted((e.member, str(e.amount)) for e in ledger_view.entries(db, NET))
    # Standings: r2's conversion counts for cat (ann still sent two referrals).
    view = standings_view.activities(db, NET, Q1, "USD")
    assert (view["ann"].referrals_given, view["ann"].referrals_given_converted) == (2, 1)
    assert view["ann"].converted_value_given == Decimal(1000)
    assert (view["cat"].referrals_given, view["cat"].referrals_given_converted) == (0, 1)
    assert view["cat"].converted_value_given == Decimal(1500)
    # ...and the view equals the activity computed from the log.
    assert member_activities(ledger.store, NET, Q1) == view
    # Scorecards: r2 is cat's referral to bob, in full.
    cards = {(s.member, s.partner): s for s in scorecards(db, NET, as_of=at(30))}
    assert cards[("ann", "bob")].given.sent == 1
    assert cards[("ann", "bob")].given.converted_value == Decimal(1000)
    assert cards[("bob", "cat")].received.sent == 1
    assert cards[("bob", "cat")].received.converted_value == Decimal(1500)
    # Attribution and replayed facts credit the member now credited.
    assert attributions(ledger, NET) == []


def test_an_adjustment_lands_in_the_statement_and_the_close_still_balances(
    ledger: Ledger, projector: Projector, service: DisputeService
) -> None:
    setup(ledger)
    service.raise_dispute(network=NET, dispute="d1", subject_kind="conversion", subject="r1",
                          statement="Bob says the deal was worth less", raised_by="bob",
                          actor="bob@x", at=at(20))  # fmt: skip
    projector.catch_up()
    assert len(ledger_view.entries(projector.db, NET, "ann")) == 1
    service.resolve(network=NET, dispute="d1", outcome="upheld", reason="fee halved",
                    actor="coord", at=at(21), adjust=[("ann", "-50.00")])  # fmt: skip
    network = ledger.unit_of_work().network(NET)
    from partnerledger.periods import Calendar

    q1 = Calendar.of(network).parse("2025-Q1")
    statement = ledger_view.statement(projector.db, network, "ann", q1)
    assert [(e.kind, e.amount) for e in statement.entries] == [
        ("referral_fee", Decimal("100.00")),
        ("adjustment", Decimal("-50.00")),
    ]
    assert statement.entries[1].note == "dispute d1: fee halved"
    assert statement.closing == Decimal("50.00")
    plan = close_period(ledger, projector, NET, "2025-Q1", actor="coord", at=at(90))
    (closed,) = [s for s in plan.statements if s.member == "ann"]
    assert [line.kind for line in closed.entries] == ["referral_fee", "adjustment"]
    assert closed.opening + sum(line.amount for line in closed.entries) == closed.closing
    assert closed.closing == Decimal("50.00")
    # An adjustment recorded after the close lands in the next open period.
    service.raise_dispute(network=NET, dispute="d2", subject_kind="referral", subject="r1",
                          statement="late", raised_by="ann", actor="ann@x",
                          at=at(30))  # fmt: skip
    service.resolve(network=NET, dispute="d2", outcome="upheld", reason="late bonus",
                    actor="coord", at=at(31), adjust=[("ann", "10")])  # fmt: skip
    late = [e for e in ledger_view.entries(projector.db, NET, "ann") if e.source == "d2/1"]
    assert [(e.period, e.amount) for e in late] == [("2025-Q2", Decimal("10"))]
    q2 = Calendar.of(network).parse("2025-Q2")
    nxt = ledger_view.statement(projector.db, network, "ann", q2)
    assert (nxt.opening, nxt.closing) == (Decimal("50.00"), Decimal("60.00"))


def test_the_trail_holds_the_dispute_and_shows_it_beside_the_referral_and_members(
    ledger: Ledger, projector: Projector, service: DisputeService
) -> None:
    setup(ledger)
    service.raise_dispute(network=NET, dispute="d1", subject_kind="attribution", subject="r2",
                          statement="Cat found Eve", raised_by="ann", actor="ann@x",
                          at=at(4), texts=["see email"],
                          uploads=[Upload("mail.eml", "message/rfc822", b"From: cat")])  # fmt: skip
    service.comment(network=NET, dispute="d1", text="True", author="bob", actor="bob@x", at=at(5))
    service.resolve(network=NET, dispute="d1", outcome="upheld", reason="Cat found Eve",
                    actor="coord", at=at(6), reassign=[("r2", "cat")],
                    adjust=[("cat", "5")])  # fmt: skip
    db = projector.db

    def types(entity: str) -> list[str]:
        return [e.type for e in trail(db, NET, entity)]

    assert types("dispute:d1") == [
        "dispute.raised", "dispute.commented", "credit.reassigned", "ledger.adjusted",
        "dispute.resolved",
    ]  # fmt: skip
    assert types("referral:r2")[-2:] == ["dispute.raised", "credit.reassigned"]
    for member in ("ann", "bob", "cat"):  # parties see every event of the dispute
        assert "dispute.resolved" in types(f"member:{member}")
    assert "dispute.raised" not in types("member:dan")
    record = dispute_record(db, NET, "d1")
    assert (record.status, record.outcome, record.parties) == ("resolved", "upheld",
                                                               ["ann", "bob", "cat"])  # fmt: skip
    assert [c.text for c in record.comments] == ["True"]
    assert record.files() == {digest(b"From: cat")}
    assert [e.type for e in record.compensations] == ["credit.reassigned", "ledger.adjusted"]
    assert [r.dispute for r in dispute_records(db, NET, status="resolved")] == ["d1"]
    assert dispute_records(db, NET, status="raised") == []
    assert dispute_records(db, NET, member="dan") == []
    with pytest.raises(NotFound):
        dispute_record(db, NET, "d9")
    with pytest.raises(InvalidCommand):
        dispute_records(db, NET, status="lost")


# ------------------------------------------------------------------ evidence


def test_evidence_round_trips_by_hash_once_per_network_and_never_across(
    files: EvidenceStore,
) -> None:
    data = b"%PDF-1.7 invoice"
    sha = files.put(NET, "invoice.pdf", "application/pdf", data)
    assert sha == digest(data)
    assert files.put(NET, "copy.pdf", "application/pdf", data) == sha  # stored once
    found = files.get(NET, sha)
    assert (found.name, found.media_type, found.size, found.content) == (
        "invoice.pdf", "application/pdf", len(data), data,
    )  # fmt: skip
    with pytest.raises(NotFound) as other:
        files.get("harbor", sha)
    assert other.value.field == "sha256"
    with pytest.raises(InvalidCommand):
        files.get(NET, "sha256:nothex")
    big = b"x" * (MAX_BYTES + 1)
    with pytest.raises(InvalidCommand) as caught:
        files.put(NET, "big.bin", "application/octet-stream", big)
    assert caught.value.field == "evidence"
    assert "10 MiB" in caught.value.reason and "10,485,760" in caught.value.reason
    assert not files.has(NET, digest(big))
    assert files.put(NET, "edge.bin", "application/octet-stream", b"y" * MAX_BYTES)


def test_a_refused_dispute_stores_no_file_and_a_recorded_one_stores_it_first(
    ledger: Ledger, service: DisputeService, files: EvidenceStore
) -> None:
    setup(ledger)
    upload = Upload("note.txt", "text/plain", b"what cat said")
    before = log_length(ledger.store)
    with pytest.raises(DomainError) as caught:
        service.raise_dispute(network=NET, dispute="d1", subject_kind="referral", subject="r9",
                              statement="x", raised_by="ann", actor="a", at=at(4),
                              uploads=[upload])  # fmt: skip
    assert caught.value.field == "subject"
    assert log_length(ledger.store) == before
    assert not files.has(NET, digest(upload.data))
    too_big = Upload("huge.bin", "application/octet-stream", b"z" * (MAX_BYTES + 1))
    with pytest.raises(InvalidCommand) as caught:
        service.raise_dispute(network=NET, dispute="d1", subject_kind="referral", subject="r2",
                              statement="x", raised_by="ann", actor="a", at=at(4),
                              uploads=[too_big])  # fmt: skip
    assert caught.value.field == "evidence_file"
    assert log_length(ledger.store) == before
    event = service.raise_dispute(network=NET, dispute="d1", subject_kind="referral",
                                  subject="r2", statement="x", raised_by="ann", actor="a",
                                  at=at(4), uploads=[upload])  # fmt: skip
    assert event is not None
    (item,) = event.command.evidence
    assert (item.sha256, item.name, item.size) == (digest(upload.data), "note.txt", 13)
    assert files.get(NET, item.sha256).content == upload.data


# ------------------------------------------------------------------ rebuilds


def test_views_rebuilt_from_a_log_with_disputes_equal_the_incremental_ones(
    ledger: Ledger, service: DisputeService, store: Store, database_url: str, tmp_path: Path
) -> None:
    setup(ledger)
    service.raise_dispute(
        network=NET,
        dispute="d1",
        subject_kind="referral",
        subject="r2",
        statement="Cat found Eve",
        raised_by="ann",
        actor="a",
        at=at(4),
    )
    service.resolve(
        network=NET,
        dispute="d1",
        outcome="upheld",
        reason="ok",
        actor="c",
        at=at(5),
        reassign=[("r2", "cat")],
        adjust=[("ann", "-10")],
    )
    ledger.execute(
        c("referral.converted", at(6), referral="r2", deal_value="300", currency="USD"),
    )
    service.raise_dispute(
        network=NET,
        dispute="d2",
        subject_kind="referral",
        subject="r2",
        statement="Dan, really",
        raised_by="cat",
        actor="a",
        at=at(7),
    )
    service.resolve(network=NET, dispute="d2", outcome="upheld", reason="Dan", actor="c",
                    at=at(8), reassign=[("r2", "dan")])  # fmt: skip
    service.projector.catch_up()
    built = {name: view.dump() for name, view in service.projector.projections.items()}
    assert_same_views(built, rebuilt_views(store))
    # Export, import into an empty store, export again: byte for byte the same.
    exported = io.BytesIO()
    export_lines(store, exported, network=NET)
    assert b'"credit.reassigned"' in exported.getvalue()
    with fresh_database(database_url, tmp_path) as url, Store(Database.parse(url)) as copy:
        report = import_lines(Ledger(copy), exported.getvalue().splitlines())
        assert report.rejected == []
        again = io.BytesIO()
        export_lines(copy, again, network=NET)
        assert again.getvalue() == exported.getvalue()
        copied = rebuilt_views(copy)
        for name in ("ledger", "standings", "scorecards"):  # the others hold store times
            assert copied[name] == built[name], name


@st.composite
def disputes_of(draw: st.DrawFn) -> list[Any]:
    """A dispute on a referral resolved with a reassignment and adjustments, or withdrawn."""
    when = draw(moments)
    number = draw(st.integers(0, 10**6))
    slug = f"d{number}"
    referral = draw(st.sampled_from([f"r{i}" for i in range(5)]))
    raiser, other = draw(pairs)
    opened = pier_line("dispute.raised", when, dispute=slug, subject_kind="referral",
                       subject=referral, statement="not theirs", raised_by=raiser)  # fmt: skip
    reassign = None
    if draw(st.booleans()):
        reassign = pier_line("credit.reassigned", when, referral=referral, from_member=raiser,
                             to_member=other, dispute=slug, reason="theirs",
                             command_id=f"{slug}/0")  # fmt: skip
    adjustments = [
        pier_line("ledger.adjusted", when, dispute=slug, member=member,
                  amount=str(Decimal(cents) / 100), currency="USD", reason="fix",
                  command_id=f"{slug}/{index + 1}")
        for index, (member, cents) in enumerate(
            draw(st.lists(st.tuples(people, st.integers(-5000, 5000)), max_size=2))
        )
        if cents
    ]  # fmt: skip
    withdrawn = pier_line("dispute.withdrawn", when, dispute=slug, by=raiser)
    return [_Together(opened, reassign, adjustments, withdrawn if draw(st.booleans()) else None)]


class _Together:
    """A dispute raised, then resolved with its compensations in one transaction (or withdrawn).

    When the reassignment is refused (the raiser is not the member credited),
    the resolution is tried again without it.
    """

    def __init__(
        self, opened: Command, reassign: Command | None, adjustments: list[Command],
        withdrawn: Command | None,
    ) -> None:  # fmt: skip
        self.opened, self.reassign, self.withdrawn = opened, reassign, withdrawn
        self.adjustments = adjustments

    def record(self, ledger: Ledger) -> None:
        try:
            ledger.execute(self.opened)
        except DomainError:
            return
        if self.withdrawn is not None:
            ledger.execute(self.withdrawn)
            return
        tries = [[self.reassign, *self.adjustments], self.adjustments]
        for compensations in tries:
            chosen = [x for x in compensations if x is not None]
            resolved = pier_line(
                "dispute.resolved", self.opened.occurred_at, dispute=self.opened.dispute,
                outcome="upheld", reason="ok", compensations=[x.command_id for x in chosen],
            )  # fmt: skip
            try:
                ledger.execute(*chosen, resolved)
                return
            except DomainError:
                continue


def _execute(ledger: Ledger, projector: Projector, items: list[Any]) -> None:
    rest: list[Any] = []
    for item in items:
        if isinstance(item, _Together):
            execute_items(ledger, projector, rest)
            rest = []
            item.record(ledger)
        else:
            rest.append(item)
    execute_items(ledger, projector, rest)


@st.composite
def histories_with_disputes(draw: st.DrawFn) -> Plan:
    items = draw(beginnings()) + [
        item
        for op in draw(st.lists(st.one_of(operations, disputes_of(), disputes_of()),
                                min_size=10, max_size=40))
        for item in op
    ]  # fmt: skip
    return cut(draw, items, st.integers(1, 6))


def test_incremental_views_equal_rebuilt_ones_for_histories_with_disputes(
    database_url: str, tmp_path: Path
) -> None:
    @examples(database_url, sqlite=40, postgresql=10)
    @given(plan=histories_with_disputes())
    def check(plan: Plan) -> None:
        with fresh_database(database_url, tmp_path) as url, Store(Database.parse(url)) as store:
            built = follow_plan(store, plan, _execute)
            assert_same_views(built, rebuilt_views(store))

    check()


# ------------------------------------------------------------------ the CLI

Run = Callable[..., Result]


@pytest.fixture
def run(database_url: str) -> Run:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(
            cli, ["--database", database_url, *args],
            env={"PARTNERLEDGER_ACTOR": "coord@riv.example"}, catch_exceptions=False,
        )  # fmt: skip

    return invoke


def test_the_whole_lifecycle_by_cli(run: Run, store: Store, tmp_path: Path) -> None:
    setup(Ledger(store))
    evidence = tmp_path / "email.txt"
    evidence.write_bytes(b"Cat: I found Eve on 2 January")
    common = ("--network", NET, "--dispute", "d1")
    result = run("dispute", "raise", *common, "--on", "referral:r2", "--by", "ann",
                 "--statement", "Cat found Eve", "--evidence-text", "ask bob",
                 "--evidence-file", str(evidence), "--at", "2025-01-10T09:00:00Z")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Recorded dispute.raised" in result.output
    # Refused: the message names the field, exit code 1, nothing written.
    before = log_length(store)
    bad = run("dispute", "comment", *common, "--by", "dan", "--text", "me?")
    assert (bad.exit_code, bad.output.strip()) == (
        1, "Error: author: member 'dan' is not a party to dispute 'd1'",
    )  # fmt: skip
    bad = run("dispute", "raise", "--network", NET, "--dispute", "d2", "--on", "referral:r9",
              "--statement", "x")  # fmt: skip
    assert bad.exit_code == 1 and bad.output.startswith("Error: subject: no referral 'r9'")
    assert run("dispute", "raise", *common, "--on", "bogus", "--statement", "x").exit_code == 2
    bad = run("dispute", "resolve", *common, "--outcome", "upheld", "--reason", "x",
              "--reassign-credit", "r2:bob")  # fmt: skip
    assert bad.exit_code == 1 and "to_member" in bad.output
    assert log_length(store) == before
    assert run("dispute", "comment", *common, "--by", "bob", "--text", "True").exit_code == 0
    result = run("dispute", "resolve", *common, "--outcome", "upheld", "--reason", "Cat's lead",
                 "--reassign-credit", "r2:cat", "--adjust", "cat:12.50", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["type"] for line in lines] == [
        "credit.reassigned", "ledger.adjusted", "dispute.resolved",
    ]  # fmt: skip
    assert lines[-1]["command"]["compensations"] == ["d1/1", "d1/2"]
    shown = json.loads(run("dispute", "show", "d1", "--network", NET, "--json").stdout)
    assert (shown["status"], shown["outcome"], shown["raised_by"]) == ("resolved", "upheld", "ann")
    assert [e["text"] for e in shown["evidence"] if "text" in e] == ["ask bob"]
    (file,) = [e for e in shown["evidence"] if "sha256" in e]
    assert (file["name"], file["size"]) == ("email.txt", 29)
    table = run("dispute", "show", "d1", "--network", NET)
    assert "credit.reassigned" in table.output and "ann -> cat" in table.output
    listed = run("dispute", "list", "--network", NET, "--status", "resolved", "--json")
    assert [json.loads(line)["dispute"] for line in listed.stdout.splitlines()] == ["d1"]
    assert "d1" in run("dispute", "list", "--network", NET).output
    out = tmp_path / "back.txt"
    result = run("dispute", "evidence", "--network", NET, file["sha256"], "-o", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == evidence.read_bytes()
    other = run("dispute", "evidence", "--network", "harbor", file["sha256"], "-o", str(out))
    assert other.exit_code == 1 and "sha256" in other.output
    again = run("dispute", "resolve", *common, "--outcome", "rejected", "--reason", "x")
    assert again.exit_code == 1 and "already resolved" in again.output
    missing = run("dispute", "show", "d9", "--network", NET)
    assert missing.exit_code == 1


def test_parse_subject() -> None:
    assert parse_subject("ledger-entry:ann/sha256:ab") == ("ledger_entry", "ann/sha256:ab")
    assert parse_subject("conversion:r-1") == ("conversion", "r-1")
    with pytest.raises(InvalidCommand):
        parse_subject("invoice:1")


# ------------------------------------------------------------------ the web


@pytest.fixture
def world(database_url: str) -> World:
    built = build_world(database_url)
    record(
        built,
        command("plugin.enabled", "riverside", plugin="fees",
                settings={"default_kind": "referral_fee", "default_fee": "100"}),
        command("member.joined", "riverside", member="cat-co", name="Cat Co", category="x"),
        command("referral.accepted", "riverside", referral="r-1"),
        command("referral.converted", "riverside", referral="r-1", deal_value="900",
                currency="USD"),
    )  # fmt: skip
    return built


PAGE = "/n/riverside/disputes"


def _upload(web: Any, path: str, data: dict[str, str], files: list[tuple[str, bytes, str]]) -> Any:
    form = {**data, "_csrf_token": web.token()}
    parts = [("evidence_file", (name, content, kind)) for name, content, kind in files]
    return web.client.post(path, data=form, files=parts, follow_redirects=False)


def test_the_whole_lifecycle_on_the_web(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.member) as web:  # ann-law
        html = web.get("/n/riverside/referrals").text
        assert 'href="/n/riverside/disputes?on=referral%3Ar-1#raise"' in html
        form = web.get(f"{PAGE}?on=referral:r-1").text
        assert 'value="r-1"' in form and 'enctype="multipart/form-data"' in form
        response = _upload(
            web, PAGE,
            {"dispute": "d-1", "subject_kind": "referral", "subject": "r-1",
             "statement": "Cat Co found Dana", "evidence_text": "see the email"},
            [("email.eml", b"From: cat", "message/rfc822"), ("", b"", "application/octet-stream")],
        )  # fmt: skip
        assert response.status_code == 303, response.text
        assert response.headers["location"] == f"{PAGE}/d-1"
        page = web.get(f"{PAGE}/d-1").text
        assert "Cat Co found Dana" in page and "see the email" in page and "email.eml" in page
        sha = digest(b"From: cat")
        download = web.get(f"{PAGE}/d-1/evidence/{sha}")
        assert download.status_code == 200 and download.content == b"From: cat"
        assert download.headers["content-disposition"].startswith(
            'attachment; filename="email.eml"'
        )
        assert download.headers["x-content-type-options"] == "nosniff"
        assert web.get(f"{PAGE}/d-1/evidence/{digest(b'other')}").status_code == 404
        # A member raises only as their own business, and cannot resolve.
        assert (
            _upload(web, PAGE, {"subject_kind": "referral", "subject": "r-1",
                                "statement": "x", "raised_by": "bob-tax"}, []).status_code
            == 403
        )  # fmt: skip
        assert web.post(f"{PAGE}/d-1/resolve", {"outcome": "upheld",
                                                "reason": "x"}).status_code == 403  # fmt: skip
        assert "Resolve dispute" not in page
        # Too big a file: 422 naming the field and the limit, nothing written.
        before = last_position(world)
        huge = [("big.bin", b"x" * (MAX_BYTES + 1), "application/octet-stream")]
        big = _upload(web, PAGE, {"subject_kind": "referral", "subject": "r-1",
                                  "statement": "big"}, huge)  # fmt: skip
        assert big.status_code == 422
        assert "at most 10 MiB" in big.text
        assert last_position(world) == before
    with browser(world, tmp_path, world.other_member) as web:  # bob-tax, the receiver
        assert web.get(PAGE).status_code == 200 and "d-1" in web.get(PAGE).text
        response = _upload(web, f"{PAGE}/d-1/comments", {"text": "Ann is right"},
                           [("note.txt", b"yes", "text/plain")])  # fmt: skip
        assert response.status_code == 303, response.text
        assert web.post(f"{PAGE}/d-1/withdraw", {}).status_code == 403  # not the raiser
    with browser(world, tmp_path, world.auditor) as web:
        page = web.get(f"{PAGE}/d-1").text
        assert "Ann is right" in page and "<form" not in page.split('<main id="main">')[1]
        assert web.get(f"{PAGE}/d-1/evidence/{digest(b'yes')}").content == b"yes"
        for path in (PAGE, f"{PAGE}/d-1/comments", f"{PAGE}/d-1/withdraw", f"{PAGE}/d-1/resolve"):
            assert web.post(path, {"text": "x"}).status_code == 403
    with browser(world, tmp_path, world.coordinator) as web:
        page = web.get(f"{PAGE}/d-1").text
        assert "Resolve dispute" in page and "referral fee" in page
        refused = web.post(f"{PAGE}/d-1/resolve", {
            "outcome": "upheld", "reason": "Cat Co found her", "reassign_referral": "r-1",
            "reassign_to": "bob-tax"})  # fmt: skip
        assert refused.status_code == 422
        assert "received referral" in refused.text
        fee = next(e for e in events(world, "referral.converted"))
        ref = f"ann-law/{fee.command_id}"
        response = web.post(f"{PAGE}/d-1/resolve", {
            "outcome": "upheld", "reason": "Cat Co found her", "reassign_referral": "r-1",
            "reassign_to": "cat-co", "reverse_entry": ref,
            "adjust_member": ["cat-co", "", ""], "adjust_amount": ["100", "", ""],
        }, follow_redirects=False)  # fmt: skip
        assert response.status_code == 303, response.text
        page = web.get(f"{PAGE}/d-1").text
        assert "Resolved: upheld." in page and "Credit for referral r-1 moved" in page
        listing = web.get(f"{PAGE}?status=resolved").text
        assert "d-1" in listing
        assert web.get(f"{PAGE}?status=bogus").status_code == 422
        statement = web.get("/n/riverside/statements?member=ann-law").text  # the latest period
        assert "adjustment" in statement and "dispute d-1: Cat Co found her" in statement
        assert "disputes?on=ledger-entry" in statement
    types = [e.type for e in events(world) if e.type.startswith(("dispute", "credit", "ledger"))]
    assert types == ["dispute.raised", "dispute.commented", "credit.reassigned",
                     "ledger.adjusted", "ledger.adjusted", "dispute.resolved"]  # fmt: skip


def test_members_see_only_their_disputes_and_outsiders_nothing(
    world: World, tmp_path: Path
) -> None:
    record(
        world,
        command("dispute.raised", "riverside", dispute="d-1", subject_kind="referral",
                subject="r-1", statement="Secret statement", raised_by="ann-law"),
        command("referral.sent", "riverside", referral="r-2", from_member="cat-co",
                to_member="bob-tax", customer="Zed"),
        command("dispute.raised", "riverside", dispute="d-2", subject_kind="referral",
                subject="r-2", statement="Cat's own", raised_by="cat-co",
                evidence=[{"text": "x"}]),
    )  # fmt: skip
    with browser(world, tmp_path, world.member) as web:  # ann-law: party to d-1 only
        listing = web.get(PAGE).text
        assert "d-1" in listing and "d-2" not in listing
        assert web.get(f"{PAGE}/d-2").status_code == 403
        assert web.post(f"{PAGE}/d-2/comments", {"text": "x"}).status_code == 403
    before = last_position(world)
    with browser(world, tmp_path, world.outsider) as web:
        for path in (PAGE, f"{PAGE}/d-1", f"{PAGE}/d-1/evidence/{digest(b'x')}"):
            response = web.get(path)
            assert response.status_code == 404 and "Secret statement" not in response.text
        for path in (PAGE, f"{PAGE}/d-1/comments", f"{PAGE}/d-1/withdraw", f"{PAGE}/d-1/resolve"):
            assert web.post(path, {"text": "x", "outcome": "upheld"}).status_code == 404
    with browser(world, tmp_path, world.coordinator) as web:
        assert web.get("/n/harbor/disputes").status_code == 404
        assert web.get(f"{PAGE}/d-9").status_code == 404
    assert last_position(world) == before
