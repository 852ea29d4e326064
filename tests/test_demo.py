"""The demo generator: deterministic, accepted by the domain, and realistic.

The acceptance tests run the generated commands through ``Ledger.execute_all``
on a real store (a small history on SQLite and PostgreSQL, the default one on
SQLite). The realism tests compute their figures from the commands alone.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import TypeVar

import msgspec
import pytest

from partnerledger import (
    Database,
    DomainError,
    Ledger,
    Store,
    commands,
    decode_command,
    encode_command,
)
from partnerledger.commands import (
    PROGRAM,
    AgreementAccepted,
    AgreementActivated,
    AgreementAmended,
    AgreementProposed,
    Command,
    IntroductionMade,
    MeetingAttended,
    MemberInvited,
    MemberJoined,
    MemberLeft,
    MemberReinstated,
    MemberSuspended,
    NetworkCreated,
    OneToOneHeld,
    ReferralAccepted,
    ReferralConverted,
    ReferralReversed,
    ReferralSent,
    TyfcbReported,
    VisitorBrought,
)
from partnerledger.demo import DEFAULT_START, count_estimate, generate

SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,99}$")
END = datetime(2026, 1, 1, tzinfo=UTC)  # the default start + 24 months
SIX_MONTHS = timedelta(days=183)


def encodings(commands: Iterable[Command]) -> list[bytes]:
    return [encode_command(c) for c in commands]


@pytest.fixture(scope="module")
def history() -> list[Command]:
    """The default history: 40 members of Riverside over 24 months, seed 7."""
    return list(generate())


C = TypeVar("C", bound=Command)


def by_type(history: list[Command], cls: type[C]) -> list[C]:
    return [c for c in history if isinstance(c, cls)]


# ------------------------------------------------------------------ determinism


def test_the_same_arguments_give_the_same_commands(history: list[Command]) -> None:
    again = encodings(generate(seed=7, members=40, months=24, networks=1, start=DEFAULT_START))
    assert again == encodings(history)
    small = encodings(generate(seed=11, members=12, months=4, networks=2))
    assert encodings(generate(seed=11, members=12, months=4, networks=2)) == small


def test_another_seed_gives_another_history(history: list[Command]) -> None:
    other = encodings(generate(seed=8))
    assert other != encodings(history)
    assert len(set(other) & set(encodings(history))) < len(other) // 10


def test_generation_ignores_the_global_random_state() -> None:
    import random

    random.seed(1)
    first = encodings(generate(members=10, months=2))
    random.seed(2)
    assert encodings(generate(members=10, months=2)) == first


def test_generate_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        generate(start=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="members"):
        generate(members=0)
    with pytest.raises(ValueError, match="months"):
        generate(months=0)
    with pytest.raises(ValueError, match="networks"):
        generate(networks=0)


# ------------------------------------------------------------------- acceptance


@pytest.mark.parametrize(
    ("seed", "members", "months", "networks"),
    [(7, 15, 3, 1), (3, 8, 2, 3), (99, 4, 1, 1)],
    ids=["15x3", "3-networks", "tiny"],
)
def test_every_generated_command_is_accepted(
    ledger: Ledger, seed: int, members: int, months: int, networks: int
) -> None:
    generated = list(generate(seed=seed, members=members, months=months, networks=networks))
    outcome = ledger.execute_all(generated)
    assert outcome.duplicates == 0
    assert len(outcome.recorded) == len(generated)
    assert ledger.store.last_position() == len(generated)
    # Re-importing the same history is a no-op: every command is a duplicate.
    again = ledger.execute_all(generated)
    assert (len(again.recorded), again.duplicates) == (0, len(generated))


def test_the_default_history_is_accepted_and_stored_unchanged(
    tmp_path: Path, history: list[Command]
) -> None:
    with Store(Database.parse(str(tmp_path / "x.db"))) as store:
        ledger = Ledger(store)
        try:
            outcome = ledger.execute_all(history)
        except DomainError as error:  # pragma: no cover - the message is the point
            pytest.fail(f"refused: {error}")
        assert outcome.duplicates == 0
        assert len(outcome.recorded) == len(history)
        assert store.last_position() == len(history)
        # Personal data is stored sealed, with its data subject (docs/privacy.md):
        # revealed and without the subject, every command is the one generated.
        raw = [event.command for _, event in store.read()]
        revealed = [
            msgspec.structs.replace(c, subject=None) if isinstance(c, ReferralSent) else c
            for c in ledger.vault.reveal_commands(raw)
        ]
        stored = [encode_command(command) for command in revealed]
        customers = {c.customer for c in by_type(history, ReferralSent)}
        assert not any(isinstance(c, ReferralSent) and c.customer in customers for c in raw)
    assert stored == encodings(history)


def test_every_command_survives_the_json_lines_contract(history: list[Command]) -> None:
    # msgspec checks patterns and lengths only when decoding: this is the import's view.
    for command in history:
        assert decode_command(encode_command(command)) == command


def test_identifiers_are_unique_and_valid(history: list[Command]) -> None:
    joined = [c.member for c in history if isinstance(c, MemberJoined) and c.category]
    invited = [c.member for c in by_type(history, MemberInvited)]
    members = joined + invited
    assert len(members) == len(set(members))
    referrals = [c.referral for c in by_type(history, ReferralSent)]
    intros = [c.introduction for c in by_type(history, IntroductionMade)]
    agreements = [c.agreement for c in by_type(history, AgreementProposed)]
    for ids in (members, referrals, intros, agreements):
        assert len(ids) == len(set(ids))
        assert all(SLUG.match(i) for i in ids)


# ------------------------------------------------------------------------- time


def test_times_are_utc_ordered_and_inside_the_history(history: list[Command]) -> None:
    times = [c.occurred_at for c in history]
    assert all(t.tzinfo is UTC for t in times)
    assert times == sorted(times)
    assert len(set(times)) == len(times)  # one network: no two commands share a second
    assert times[0] >= DEFAULT_START
    assert times[-1] < END
    assert times[-1] > END - timedelta(days=14)


def test_a_start_with_an_offset_and_a_short_history() -> None:
    start = datetime(2025, 3, 14, 16, 30, tzinfo=timezone(timedelta(hours=-7)))
    generated = list(generate(members=10, months=1, start=start))
    times = [c.occurred_at for c in generated]
    assert all(t.tzinfo is UTC for t in times)
    assert times == sorted(times)
    assert start <= times[0]
    assert times[-1] < datetime(2025, 4, 14, 16, 30, tzinfo=timezone(timedelta(hours=-7)))


# --------------------------------------------------------------------- realism


def test_the_network(history: list[Command]) -> None:
    created = by_type(history, NetworkCreated)
    assert len(created) == 1
    network = created[0]
    assert isinstance(network, NetworkCreated)
    assert history[0] is network
    assert (network.network, network.name, network.currency, network.period) == (
        "riverside",
        "Riverside Chamber of Commerce",
        "USD",
        "quarter",
    )
    names = [t.name for t in network.tiers]
    assert names == ["bronze", "silver", "gold"]
    thresholds = [t.threshold for t in network.tiers]
    assert all(isinstance(t, Decimal) for t in thresholds)
    assert thresholds == sorted(set(thresholds))
    assert all(t.benefits for t in network.tiers)
    assert {c.network for c in history} == {"riverside"}


def test_members_categories_and_statuses(history: list[Command]) -> None:
    profiles = [c for c in history if isinstance(c, MemberInvited | MemberJoined) and c.category]
    assert 36 <= len(profiles) <= 44
    categories = Counter(c.category for c in profiles)
    assert len(categories) >= 12
    assert max(categories.values()) <= 5
    for c in profiles:
        assert c.contact is not None and c.contact.email
        assert c.service_area
    # Member actions are taken by the member's own address.
    emails = {c.member: c.contact.email if c.contact else None for c in profiles}
    for sent in by_type(history, ReferralSent):
        assert sent.actor == emails[sent.from_member]

    invited = {c.member for c in by_type(history, MemberInvited)}
    joined_later = {
        c.member for c in history if isinstance(c, MemberJoined) and c.member in invited
    }
    assert joined_later  # invited first, joined later
    suspended = {c.member for c in by_type(history, MemberSuspended)}
    reinstated = {c.member for c in by_type(history, MemberReinstated)}
    assert 1 <= len(suspended) <= 4
    assert reinstated and reinstated <= suspended
    left = {c.member for c in by_type(history, MemberLeft)}
    left_after_joining = left - (invited - joined_later)
    assert 1 <= len(left_after_joining) <= 3


def test_weekly_meetings_with_a_realistic_attendance(history: list[Command]) -> None:
    attended = by_type(history, MeetingAttended)
    meetings = sorted({c.meeting for c in attended})
    assert 98 <= len(meetings) <= 106
    days = [date.fromisoformat(m) for m in meetings]
    assert all((b - a).days in (7, 14, 21) for a, b in pairwise(days))
    assert all(d.weekday() == days[0].weekday() for d in days)
    per_meeting = Counter(c.meeting for c in attended)
    assert min(per_meeting.values()) >= 30  # every active member, every week
    statuses = Counter(c.status for c in attended)
    assert set(statuses) == {"present", "late", "absent", "substitute", "medical"}
    assert 0.7 < statuses["present"] / len(attended) < 0.95
    for c in attended:
        assert (c.status == "substitute") == (c.substitute is not None)
    visitors = by_type(history, VisitorBrought)
    assert len(visitors) > 100
    assert {v.meeting for v in visitors} <= set(meetings)
    assert len(by_type(history, OneToOneHeld)) > 500
    assert len(by_type(history, commands.TestimonialGiven)) > 50
    intros = by_type(history, IntroductionMade)
    assert any(i.to_member for i in intros)
    assert any(i.to_business for i in intros)


def test_referral_lifecycles(history: list[Command]) -> None:
    sent = {c.referral: c for c in by_type(history, ReferralSent)}
    accepted = {c.referral for c in by_type(history, ReferralAccepted)}
    converted = {c.referral: c for c in by_type(history, ReferralConverted)}
    assert len(sent) > 1000
    assert 0.7 <= len(accepted) / len(sent) <= 0.8
    assert 0.25 <= len(converted) / len(accepted) <= 0.6
    for conversion in converted.values():
        value = conversion.deal_value
        assert conversion.currency == "USD"
        assert isinstance(value, Decimal) and value > 0
        assert value.as_tuple().exponent == -2

    reversed_total: defaultdict[str, Decimal] = defaultdict(Decimal)
    reversals = by_type(history, ReferralReversed)
    assert reversals
    assert len(reversals) < len(converted) * 0.1
    for reversal in reversals:
        assert isinstance(reversal, ReferralReversed)
        assert reversal.reason
        reversed_total[reversal.referral] += reversal.amount
    for slug, total in reversed_total.items():
        assert total <= converted[slug].deal_value
    assert any(t == converted[s].deal_value for s, t in reversed_total.items())  # in full
    assert any(t < converted[s].deal_value for s, t in reversed_total.items())  # in part

    thanks = [t for t in by_type(history, TyfcbReported) if t.referral]
    assert len(thanks) > len(converted) / 2
    for tyfcb in thanks:
        assert isinstance(tyfcb, TyfcbReported)
        assert tyfcb.referral is not None
        referral = sent[tyfcb.referral]
        assert (tyfcb.member, tyfcb.thanked_member) == (referral.to_member, referral.from_member)
        assert tyfcb.amount == converted[tyfcb.referral].deal_value
        assert tyfcb.currency == "USD"


def test_deal_values_depend_on_the_trade(history: list[Command]) -> None:
    category = {
        c.member: c.category
        for c in history
        if isinstance(c, MemberInvited | MemberJoined) and c.category
    }
    receiver = {c.referral: c.to_member for c in by_type(history, ReferralSent)}
    ranges = {
        "florist": (300, 3000),
        "roofer": (5000, 25000),
        "lawyer": (1500, 20000),
        "plumber": (250, 6000),
    }
    seen: Counter[str] = Counter()
    for conversion in by_type(history, ReferralConverted):
        assert isinstance(conversion, ReferralConverted)
        trade = category[receiver[conversion.referral]]
        if trade in ranges:
            low, high = ranges[trade]
            assert low <= conversion.deal_value <= high, (trade, conversion.deal_value)
            seen[trade] += 1
    assert len(seen) >= 3


def test_complementary_trades_refer_more_to_each_other(history: list[Command]) -> None:
    category = {
        c.member: c.category
        for c in history
        if isinstance(c, MemberInvited | MemberJoined) and c.category
    }
    by_trade: Counter[str] = Counter(category.values())
    flows: Counter[frozenset[str]] = Counter()
    for c in by_type(history, ReferralSent):
        flows[frozenset((category[c.from_member], category[c.to_member]))] += 1

    def per_pair_of_members(a: str, b: str) -> float:
        return flows[frozenset((a, b))] / (by_trade[a] * by_trade[b])

    complementary = [
        ("real-estate agent", "mortgage broker"),
        ("accountant", "lawyer"),
        ("accountant", "financial planner"),
        ("florist", "caterer"),
    ]
    unrelated = [("florist", "roofer"), ("plumber", "financial planner"), ("printer", "lawyer")]
    close = sum(per_pair_of_members(a, b) for a, b in complementary) / len(complementary)
    far = sum(per_pair_of_members(a, b) for a, b in unrelated) / len(unrelated)
    assert close > 3 * far


def test_agreements_through_every_state(history: list[Command]) -> None:
    proposals = {c.agreement: c for c in by_type(history, AgreementProposed)}
    assert len(proposals) >= 8
    kinds = {p.kind for p in proposals.values()}
    assert kinds == {"referral", "co-marketing", "channel", "joint-venture", "supply-chain"}
    assert any(PROGRAM in p.parties for p in proposals.values())
    assert any(len(p.parties) > 2 for p in proposals.values())
    with_pilot = [p for p in proposals.values() if p.pilot is not None]
    assert len(with_pilot) >= len(proposals) // 2
    assert all(p.pilot and p.pilot.days == 90 and p.pilot.goals for p in with_pilot)
    for proposal in proposals.values():
        terms = proposal.terms
        assert terms.scope and set(terms.responsibilities) == set(proposal.parties)
        assert terms.targets is not None and terms.targets.referrals_per_month
        rate = terms.targets.conversion_rate
        assert rate is not None and Decimal(0) < rate < Decimal(1)
        assert terms.duration_days and terms.termination_notice_days >= 0
        pay = terms.compensation
        if pay is not None and pay.kind == "referral_fee":
            assert pay.amount is not None and pay.amount > 0
        if pay is not None and pay.kind == "revenue_share":
            assert pay.rate is not None and Decimal(0) < pay.rate < Decimal(1)

    accepted: defaultdict[str, set[str]] = defaultdict(set)
    for acceptance in by_type(history, AgreementAccepted):
        accepted[acceptance.agreement].add(acceptance.party)
    for activation in by_type(history, AgreementActivated):
        assert accepted[activation.agreement] == set(proposals[activation.agreement].parties)
    for amendment in by_type(history, AgreementAmended):
        assert set(amendment.accepted_by) == set(proposals[amendment.agreement].parties)
        assert amendment.terms != proposals[amendment.agreement].terms

    reached = {c.type for c in history if c.type.startswith("agreement.")}
    for state in ("activated", "amended", "renewed", "terminated", "expired"):
        assert f"agreement.{state}" in reached


def interactions(history: list[Command]) -> dict[frozenset[str], list[datetime]]:
    """When each pair of members dealt with each other."""
    found: defaultdict[frozenset[str], list[datetime]] = defaultdict(list)
    for c in history:
        if isinstance(c, ReferralSent):
            pairs = [(c.from_member, c.to_member)]
        elif isinstance(c, OneToOneHeld):
            pairs = [(c.member, c.with_member)]
        elif isinstance(c, commands.TestimonialGiven):
            pairs = [(c.member, c.about_member)]
        elif isinstance(c, TyfcbReported):
            pairs = [(c.member, c.thanked_member)]
        elif isinstance(c, IntroductionMade):
            people = [c.introducer, c.introduced, *([c.to_member] if c.to_member else [])]
            pairs = [(a, b) for i, a in enumerate(people) for b in people[i + 1 :]]
        else:
            continue
        for pair in pairs:
            found[frozenset(pair)].append(c.occurred_at)
    return found


def test_one_sided_and_dormant_partnerships(history: list[Command]) -> None:
    flows = Counter((c.from_member, c.to_member) for c in by_type(history, ReferralSent))
    one_sided = [(a, b) for (a, b), n in flows.items() if n >= 15 and flows[(b, a)] == 0]
    assert one_sided

    gone = {c.member for c in history if isinstance(c, MemberLeft | MemberSuspended)}
    half = DEFAULT_START + (END - DEFAULT_START) / 2
    dormant = [
        pair
        for pair, times in interactions(history).items()
        if len(times) >= 15
        and sum(t < half for t in times) >= 10
        and max(times) < END - SIX_MONTHS
        and not pair & gone
    ]
    assert dormant


def test_money_is_decimal_with_cents(history: list[Command]) -> None:
    amounts: list[Decimal] = []
    for c in history:
        if isinstance(c, ReferralConverted):
            amounts.append(c.deal_value)
        elif isinstance(c, ReferralReversed | TyfcbReported):
            amounts.append(c.amount)
    assert amounts
    assert all(isinstance(a, Decimal) and a > 0 and a.as_tuple().exponent == -2 for a in amounts)


# ------------------------------------------------------------------ networks, sizes


def test_three_networks_each_with_its_members() -> None:
    generated = list(generate(networks=3, members=20, months=6))
    times = [c.occurred_at for c in generated]
    assert times == sorted(times)
    created = {c.network: c for c in generated if isinstance(c, NetworkCreated)}
    assert set(created) == {"riverside", "harbor-bni", "summit-partners"}
    assert len({c.currency for c in created.values()}) == 3
    assert {c.period for c in created.values()} == {"quarter", "month", "rolling"}
    assert created["summit-partners"].rolling_days == 90
    assert {c.network for c in generated} == set(created)
    for slug, network in created.items():
        own = [c for c in generated if c.network == slug]
        assert own[0] is network
        profiles = {
            c.member for c in own if isinstance(c, MemberInvited | MemberJoined) and c.category
        }
        assert 18 <= len(profiles) <= 22
        assert all(
            c.actor.endswith(f"@{slug}.example")
            for c in own
            if c.type == "member.joined" and c.actor.startswith("coord@")
        )
        attended = {c.member for c in own if isinstance(c, MeetingAttended)}
        assert attended <= profiles
        currencies = {c.currency for c in own if isinstance(c, ReferralConverted)}
        assert currencies <= {network.currency}


def test_sizes_scale_and_match_the_estimate(history: list[Command]) -> None:
    assert 5_000 < len(history) < 50_000
    assert abs(len(history) - count_estimate(40, 24, 1)) < 0.15 * len(history)
    small = sum(1 for _ in generate(members=20, months=12))
    assert abs(small - count_estimate(20, 12, 1)) < 0.2 * small
    assert 0.15 < small / len(history) < 0.35  # a quarter of the member-months
