"""A realistic, deterministic demo history of one or more partner networks.

:func:`generate` streams commands (the same objects an import file decodes
to) that tell the story of BNI-style chapters of small businesses: a founding
roster, invitations and late joiners, suspensions and departures, weekly
meetings with attendance, one-to-ones, visitors, testimonials and trainings,
introductions, referrals through their whole lifecycle (accepted or declined,
converted or lost, sometimes reversed, thanked for with a TYFCB report), and
partnership agreements with pilots, amendments, renewals, terminations and
expiries.

Everything is decided by one ``random.Random(seed)``: the same arguments give
the same commands, byte for byte. Commands come in business-time order (per
network and overall), every one is accepted by the domain rules when executed
in that order, and no time lies at or after ``start + months``.

The history is shaped to be worth analysing: complementary trades (real
estate and mortgages, accountants and lawyers, florists and caterers...)
refer to each other far more than unrelated ones, a couple of partnerships
are one-sided (one member refers many leads, the other never refers back)
and a couple are dormant (busy in the first months, silent in the last
ones).

The simulation plans each week of each network ahead, keeps the planned
commands in a heap ordered by time and hands them out as the weeks pass.
Member status changes are planned up front, so every later decision (may
this member send a referral on that day?) is made against a known timeline.
Within a network no two commands share a second: a later one is nudged by a
second if needed, which keeps every command's content (and so its derived
identity) unique without changing the order.
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import Any

from msgspec.structs import replace

from .commands import (
    PROGRAM,
    AgreementAccepted,
    AgreementActivated,
    AgreementAmended,
    AgreementExpired,
    AgreementKind,
    AgreementProposed,
    AgreementRenewed,
    AgreementTerminated,
    Attendance,
    Command,
    Compensation,
    Contact,
    IntroductionMade,
    MeetingAttended,
    MemberInvited,
    MemberJoined,
    MemberLeft,
    MemberReinstated,
    MemberSuspended,
    MemberUpdated,
    NetworkCreated,
    NetworkTiersSet,
    OneToOneHeld,
    Period,
    Pilot,
    PluginEnabled,
    ReferralAccepted,
    ReferralConverted,
    ReferralDeclined,
    ReferralLost,
    ReferralReversed,
    ReferralSent,
    Renewal,
    Targets,
    Terms,
    TestimonialGiven,
    Tier,
    TrainingCompleted,
    TyfcbReported,
    VisitorBrought,
)

__all__ = ["DEFAULT_START", "count_estimate", "generate"]

#: The default start of the history.
DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)

_DAY = 86_400
_WEEK = 7 * _DAY
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DATE = date(1970, 1, 1)
_NEVER = 1 << 62
_OPEN_FROM = 8 * 3600  # business hours, local time
_OPEN_UNTIL = 18 * 3600


def generate(
    *,
    seed: int = 7,
    members: int = 40,
    months: int = 24,
    networks: int = 1,
    start: datetime = DEFAULT_START,
) -> Iterator[Command]:
    """Stream the commands of a demo history, in business-time order.

    ``members`` businesses per network, ``months`` of history from ``start``
    (a timezone-aware time), ``networks`` networks: "riverside" (USD, quarterly
    evaluation), "harbor-bni" (GBP, monthly), "summit-partners" (EUR, rolling 90
    days), then "network-4"... The same arguments always give the same commands.
    """
    if members < 1:
        raise ValueError(f"members must be at least 1, got {members}")
    if months < 1:
        raise ValueError(f"months must be at least 1, got {months}")
    if networks < 1:
        raise ValueError(f"networks must be at least 1, got {networks}")
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be a timezone-aware datetime")
    begin = math.ceil(start.timestamp())
    finish = math.floor(_add_months(start, months).timestamp())
    master = random.Random(seed)  # noqa: S311 - demo data, not security
    sims = [
        _Network(_spec(k), random.Random(master.getrandbits(64)), members, begin, finish)  # noqa: S311
        for k in range(1, networks + 1)
    ]
    if len(sims) == 1:
        return sims[0].run()
    return heapq.merge(*(sim.run() for sim in sims), key=attrgetter("occurred_at"))


def count_estimate(members: int, months: int, networks: int = 1) -> int:
    """About how many commands :func:`generate` yields (within some 15 %)."""
    weeks = months * 365.25 / 12 / 7
    per_network = members * max(weeks - 3, 1) * 2.9 + members * 4 + (members // 4 + 2) * 9
    return round(networks * per_network)


# --------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class _Category:
    name: str
    suffix: str  # of the member slug: "lee-law"
    names: tuple[str, ...]  # business name templates: {S} surname, {F} first name
    deal: tuple[int, int]  # deal value range, in the network's currency
    cycle: tuple[int, int]  # days from accepting a lead to its outcome
    needs: tuple[str, ...]  # what a referred customer wants


# fmt: off
_CATEGORIES: tuple[_Category, ...] = (
    _Category(
        "accountant", "cpa", ("{S} CPA", "{S} & Associates CPAs", "{S} Tax & Accounting"),
        (800, 6000), (7, 45),
        ("Year-end accounts for a small LLC", "Behind on two years of tax returns",
         "Wants a bookkeeper and a payroll setup"),
    ),
    _Category(
        "lawyer", "law", ("{S} & Co. Law", "{S} Law Group", "{S} Legal"),
        (1500, 20000), (7, 60),
        ("Needs a will and a living trust", "Commercial lease review",
         "Partnership agreement for a new business"),
    ),
    _Category(
        "florist", "flowers", ("{S} Florists", "Bloom by {S}", "{S} Flower Studio"),
        (300, 3000), (3, 30),
        ("Wedding flowers for 120 guests", "Weekly lobby arrangements for an office",
         "Flowers for a corporate gala"),
    ),
    _Category(
        "photographer", "photo", ("{S} Photography", "{F} {S} Photo", "{S} Studios"),
        (800, 5000), (7, 45),
        ("Headshots for a team of twelve", "Wedding photography in the spring",
         "Product photos for a new web shop"),
    ),
    _Category(
        "roofer", "roofing", ("{S} Roofing", "{S} Roof & Gutter", "Top Notch Roofing by {S}"),
        (5000, 25000), (7, 60),
        ("Leak after the last storm", "Full roof replacement quote",
         "Gutters and flashing repair"),
    ),
    _Category(
        "insurance broker", "insurance",
        ("{S} Insurance Agency", "{S} Insurance Brokers", "{S} Risk & Insurance"),
        (500, 4000), (5, 30),
        ("Home and auto bundle review", "General liability for a contractor",
         "Key-person cover for a small firm"),
    ),
    _Category(
        "real-estate agent", "realty", ("{S} Realty", "{S} Home Group", "{F} {S}, Realtor"),
        (4000, 18000), (30, 90),
        ("Selling a three-bedroom house", "First-time buyers, pre-approved",
         "Relocating for work, needs to buy fast"),
    ),
    _Category(
        "mortgage broker", "mortgage", ("{S} Mortgage", "{S} Home Loans", "{S} Lending"),
        (2000, 9000), (14, 60),
        ("Refinance before the rate resets", "Pre-approval for a first home",
         "Self-employed borrower, needs options"),
    ),
    _Category(
        "web designer", "web", ("{S} Web Design", "{S} Digital", "Pixel & {S}"),
        (2000, 15000), (14, 60),
        ("New website with online booking", "Slow site, wants a redesign",
         "Web shop for a local bakery"),
    ),
    _Category(
        "financial planner", "wealth",
        ("{S} Wealth Management", "{S} Financial Planning", "{S} Advisors"),
        (1500, 12000), (14, 75),
        ("Retirement plan for a business owner", "Rollover of an old 401(k)",
         "College savings for two children"),
    ),
    _Category(
        "caterer", "catering",
        ("{S} Catering", "{S}'s Kitchen Catering", "{S} Events & Catering"),
        (1000, 12000), (7, 45),
        ("Company holiday party for 80", "Wedding reception buffet", "Monthly board lunches"),
    ),
    _Category(
        "printer", "print", ("{S} Print Shop", "{S} Printing", "{S} Print & Sign"),
        (200, 4000), (3, 21),
        ("Trade-show banners and flyers", "Business cards for a new office",
         "Menus and signage for a restaurant"),
    ),
    _Category(
        "plumber", "plumbing", ("{S} Plumbing", "{S} Plumbing & Drain", "{S} & Sons Plumbing"),
        (250, 6000), (1, 14),
        ("Water heater replacement", "Bathroom remodel rough-in", "Recurring drain blockage"),
    ),
    _Category(
        "electrician", "electric",
        ("{S} Electric", "{S} Electrical Services", "Bright Spark by {S}"),
        (300, 8000), (2, 21),
        ("Panel upgrade for an EV charger", "Lighting for a new shop",
         "Rewiring an older house"),
    ),
    _Category(
        "marketing agency", "marketing",
        ("{S} Marketing", "{S} Creative", "{S} Growth Partners"),
        (3000, 30000), (14, 75),
        ("Social media for a new restaurant", "Rebrand of a family business",
         "Lead generation campaign for a clinic"),
    ),
)
# fmt: on
_CATEGORY_INDEX = {c.name: i for i, c in enumerate(_CATEGORIES)}

# Trades that send each other business: strong pairs, then looser groups.
_STRONG = (
    ("real-estate agent", "mortgage broker"),
    ("accountant", "financial planner"),
    ("accountant", "lawyer"),
    ("lawyer", "financial planner"),
    ("insurance broker", "real-estate agent"),
    ("insurance broker", "financial planner"),
    ("mortgage broker", "insurance broker"),
    ("roofer", "insurance broker"),
    ("real-estate agent", "lawyer"),
    ("florist", "caterer"),
    ("caterer", "photographer"),
    ("florist", "photographer"),
    ("web designer", "marketing agency"),
    ("printer", "marketing agency"),
    ("plumber", "electrician"),
    ("roofer", "real-estate agent"),
)
_GROUPS = (
    (
        "real-estate agent",
        "mortgage broker",
        "roofer",
        "plumber",
        "electrician",
        "insurance broker",
    ),
    ("accountant", "lawyer", "financial planner", "insurance broker", "mortgage broker"),
    ("florist", "caterer", "photographer", "printer"),
    ("web designer", "marketing agency", "printer", "photographer"),
)


def _affinity() -> tuple[tuple[float, ...], ...]:
    size = len(_CATEGORIES)
    table = [[1.0] * size for _ in range(size)]
    for group in _GROUPS:
        for a in group:
            for b in group:
                table[_CATEGORY_INDEX[a]][_CATEGORY_INDEX[b]] = 3.0
    for a, b in _STRONG:
        i, j = _CATEGORY_INDEX[a], _CATEGORY_INDEX[b]
        table[i][j] = table[j][i] = 9.0
    for i in range(size):
        table[i][i] = 0.6  # a competitor gets the odd overflow lead
    return tuple(tuple(row) for row in table)


_AFFINITY = _affinity()


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_SURNAMES = _words(
    """Lee Park Garcia Nguyen Patel Kim Chen Johnson Smith Martinez Rodriguez Brown Davis
    Wilson Anderson Thomas Taylor Moore Jackson Martin Lopez Gonzalez Harris Clark Lewis Walker
    Hall Young Allen Wright Scott Green Baker Adams Nelson Hill Campbell Mitchell Roberts Carter
    Phillips Evans Turner Torres Parker Collins Edwards Stewart Morris Murphy Cook Rogers Morgan
    Cooper Peterson Reed Bailey Bell Kelly Howard Ward Cox Diaz Richardson Wood Watson Brooks
    Bennett Gray Reyes Cruz Hughes Price Myers Long Foster Sanders Ross Morales Powell Sullivan
    Russell Ortiz Jenkins Perry Butler Barnes Fisher Henderson Coleman Simmons Patterson Jordan
    Reynolds Hamilton Graham Wallace Okafor Haddad Novak Rossi Silva Tanaka Sato Ibrahim Kowalski
    Murray Byrne Walsh Doyle Quinn"""
)
_FIRST_NAMES = _words(
    """Ana James Maria David Linda Michael Sarah Robert Emily Daniel Grace Kevin
    Olivia Brian Sofia Jason Priya Marcus Hannah Luis Chloe Ethan Fatima Ryan Mei Tom Aisha Carlos
    Julia Sean Nina Omar Rachel Victor Elena Paul Zoe Hugo Laura Ben Irene Sam Tara Alex Ruth Diego
    Kate Noah Leah Owen"""
)
_PLACES = (
    "Oak Street",
    "Hillside",
    "Blue Harbor",
    "Maple",
    "Riverbend",
    "Summit",
    "Cedar",
    "Golden",
    "Northside",
    "Lakeview",
    "Parkway",
    "Old Town",
    "Willow",
    "Granite",
    "Sunrise",
    "Elm Court",
)
_TRADES = (
    "Dental",
    "Bakery",
    "Auto Repair",
    "Fitness",
    "Veterinary Clinic",
    "Hardware",
    "Coffee Roasters",
    "Pediatrics",
    "Yoga Studio",
    "Landscaping",
    "Pet Grooming",
    "Bistro",
    "Brewing Co.",
    "Chiropractic",
    "Daycare",
    "Car Wash",
    "Optometry",
    "Pharmacy",
    "Frame Shop",
    "Bike Shop",
)
_TRAININGS = (
    "Member Success Program",
    "Presentation Skills",
    "Referral Skills Workshop",
    "Visitor Host Training",
    "Networking 101",
    "Building Your Power Team",
    "Online Networking Essentials",
    "Leadership Team Training",
)
_DECLINED = (
    "Outside my service area",
    "Not a fit for our services",
    "Fully booked this month",
    "Customer went with another provider before I called",
)
_LOST = (
    "Customer chose a competitor",
    "Budget not approved",
    "No response after three follow-ups",
    "Project postponed to next year",
    "Price too high for the customer",
)
_REVERSED = (
    "refund",
    "chargeback",
    "cancelled contract",
    "partial refund after scope reduction",
    "customer returned the order",
)
_NOTES_121 = (
    "Coffee to walk through each other's ideal clients",
    "Shared our top ten contacts lists",
    "Planned a joint client seminar",
    "Agreed to swap referral cards",
    "Talked through the referral process and follow-ups",
)
_TESTIMONIALS = (
    "{n} took care of my client quickly and kept me informed throughout.",
    "Every referral I send to {n} comes back happy. Highly recommended.",
    "{n} went well beyond what the client expected, at a fair price.",
    "Reliable, responsive and professional: {n} makes me look good.",
)
_INTRO_NOTES = (
    "You both serve the same clients; worth a coffee.",
    "Could be a strong power-team partner.",
    "They asked me for someone they can trust.",
)
_LEFT_REASONS = (
    "retired",
    "moved out of the area",
    "business sold",
    "joined another chapter",
)
_TERMINATED = (
    "low referral volume",
    "partner changed business focus",
    "conflict with an exclusivity clause",
    "service complaints from referred clients",
    "partner retired",
)
_PAYMENT_TERMS = (
    "Net 30 after the customer pays",
    "Paid monthly by bank transfer",
    "Quarterly statement, paid within 15 days",
    "Within 10 business days of invoice",
)
_SCOPES: dict[AgreementKind, str] = {
    "referral": "Two-way referrals between {a} and {b}: {ca} clients who need a {cb}, "
    "and {cb} clients who need a {ca}, in {area}.",
    "co-marketing": "Joint marketing by {a} and {b}: a shared client newsletter, co-branded "
    "flyers and one client event per quarter.",
    "channel": "{a} offers the services of {b} to its clients as a preferred partner; "
    "{b} handles delivery and support.",
    "joint-venture": "A combined {ca} and {cb} package sold jointly by {a} and {b} in {area}.",
    "supply-chain": "{a} supplies {b} on agreed lead times and prices, with priority on "
    "rush orders.",
}
_DUTIES: dict[AgreementKind, tuple[str, str]] = {
    "referral": (
        "Refer qualified leads with a warm email introduction within 2 business days",
        "Contact every referred lead within 1 business day and report the outcome monthly",
    ),
    "co-marketing": (
        "Produce the newsletter and host the quarterly client event",
        "Share the printing and venue costs and promote the event to its clients",
    ),
    "channel": (
        "Present the partner's services to every suitable client",
        "Deliver the work, support the client and pay the agreed share",
    ),
    "joint-venture": (
        "Sell the package and keep the client relationship",
        "Deliver its part of the package on schedule and to the agreed standard",
    ),
    "supply-chain": (
        "Deliver orders within 5 business days, rush orders within 2",
        "Give a monthly forecast and order at least once a month",
    ),
}
_KINDS: tuple[AgreementKind, ...] = (
    "referral",
    "co-marketing",
    "channel",
    "supply-chain",
    "joint-venture",
)


@dataclass(frozen=True)
class _Spec:
    slug: str
    name: str
    currency: str
    period: Period
    rolling_days: int | None
    utc_offset: int  # hours
    meeting_weekday: int  # 0 is Monday
    meeting_minute: int  # local minute of the day
    areas: tuple[str, ...]
    phone: str  # format with {n}: four digits
    tiers: tuple[Tier, ...]
    later_tiers: tuple[Tier, ...] = ()
    #: Built-in plugins the network enables when it is created, with their settings.
    plugins: tuple[tuple[str, dict[str, Any]], ...] = (
        ("traffic-lights", {}),
        ("threshold-tiers", {"grace_periods": 1}),
        ("fees", {}),
        ("attribution", {"rule": "first"}),
        ("validation", {}),
    )

    @property
    def coordinator(self) -> str:
        return f"coord@{self.slug}.example"


def _tier(name: str, threshold: str, *benefits: str) -> Tier:
    return Tier(name=name, threshold=Decimal(threshold), benefits=benefits)


def _spec(k: int) -> _Spec:
    """The network number ``k`` (1-based)."""
    if k == 1:
        ladder = (
            _tier("bronze", "0", "Member directory listing"),
            _tier("silver", "40", "Featured in the newsletter"),
            _tier("gold", "80", "Logo on the chamber site", "Speaker slot at the annual gala"),
        )
        return _Spec(
            slug="riverside",
            name="Riverside Chamber of Commerce",
            currency="USD",
            period="quarter",
            rolling_days=None,
            utc_offset=-8,
            meeting_weekday=1,
            meeting_minute=7 * 60,
            areas=(
                "Riverside",
                "Downtown Riverside",
                "Corona",
                "Moreno Valley",
                "Norco",
                "Jurupa Valley",
                "Riverside County",
                "Inland Empire",
            ),
            phone="(951) 555-{n}",
            tiers=ladder,
            later_tiers=(*ladder, _tier("platinum", "150", "Seat on the referral committee")),
        )
    if k == 2:
        return _Spec(
            slug="harbor-bni",
            name="Harbor BNI Chapter",
            currency="GBP",
            period="month",
            rolling_days=None,
            utc_offset=0,
            meeting_weekday=2,
            meeting_minute=6 * 60 + 30,
            areas=("Portsmouth", "Southsea", "Fareham", "Havant", "Gosport", "Hampshire"),
            phone="023 9649 {n}",
            tiers=(
                _tier("bronze", "10", "Visitor host badge"),
                _tier("silver", "30", "Educational slot at a meeting"),
                _tier("gold", "60", "Feature presentation", "Leadership team invitation"),
            ),
        )
    if k == 3:
        return _Spec(
            slug="summit-partners",
            name="Summit Partners Alliance",
            currency="EUR",
            period="rolling",
            rolling_days=90,
            plugins=(  # a company partner program: points, not chapter traffic lights
                ("points", {"recency_days": 180}),
                ("threshold-tiers", {}),
                ("fees", {"default_kind": "revenue_share", "default_rate": "0.05"}),
                ("attribution", {"rule": "split"}),
                ("validation", {}),
            ),
            utc_offset=1,
            meeting_weekday=3,
            meeting_minute=7 * 60 + 15,
            areas=("Innsbruck", "Hall in Tirol", "Schwaz", "Wattens", "Telfs", "Tyrol"),
            phone="+43 512 555 {n}",
            tiers=(
                _tier("bronze", "0", "Partner badge"),
                _tier("silver", "50", "Case study on the alliance site"),
                _tier("gold", "100", "Co-branded campaign", "Priority leads"),
            ),
        )
    currency = ("USD", "EUR", "GBP")[k % 3]
    period: Period = ("month", "quarter", "rolling")[k % 3]
    return _Spec(
        slug=f"network-{k}",
        name=f"Metro Business Circle {k}",
        currency=currency,
        period=period,
        rolling_days=90 if period == "rolling" else None,
        utc_offset=(-5, 0, 1, -6)[k % 4],
        meeting_weekday=k % 5,
        meeting_minute=7 * 60,
        areas=(f"Metro {k} Downtown", f"Metro {k} North", f"Metro {k} South", f"Metro {k} Region"),
        phone=f"+1 555 {k % 1000:03d} {{n}}",
        tiers=(
            _tier("bronze", "0", "Directory listing"),
            _tier("silver", "40", "Newsletter feature"),
            _tier("gold", "90", "Speaker slot"),
        ),
    )


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = moment.day
    while True:
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            day -= 1


def _slugify(text: str) -> str:
    out = []
    dash = False
    for char in text.lower():
        if char.isascii() and char.isalnum():
            out.append(char)
            dash = False
        elif not dash and out:
            out.append("-")
            dash = True
    return "".join(out).strip("-")


def _money(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _email_of(person: str) -> str:
    """A made-up address for a demo customer: ``ana.lee@example.com``."""
    local = ".".join("".join(c for c in part.lower() if c.isalnum()) for part in person.split())
    return f"{local}@example.com"


def _holiday(day: int) -> bool:
    """Chapters do not meet in the last week of December and on New Year's Day."""
    moment = _EPOCH_DATE + timedelta(days=day)
    return (moment.month == 12 and moment.day >= 24) or (moment.month == 1 and moment.day == 1)


# ----------------------------------------------------------------------- members


@dataclass(eq=False, slots=True)
class _Member:
    idx: int
    slug: str
    name: str
    category: int
    person: str
    email: str
    area: str
    phone: str
    join_ts: int = 0
    invite_ts: int | None = None
    left_ts: int | None = None
    suspensions: list[tuple[int, int]] = field(default_factory=list)
    simple: bool = True  # joins once and never changes status
    stable: bool = False  # a founding member who never changes status
    rate: float = 0.5  # referrals sent per week
    no_referral: float = 0.6  # exp(-rate), for drawing a weekly count
    reliability: float = 0.9  # probability of turning up to a meeting

    def active(self, ts: int) -> bool:
        """Whether the member is active at ``ts`` (a change at ``ts`` already counts)."""
        if ts < self.join_ts:
            return False
        if self.simple:
            return True
        if self.left_ts is not None and ts >= self.left_ts:
            return False
        return all(not (since <= ts < until) for since, until in self.suspensions)


_Party = _Member | None  # None is the program itself
_Item = tuple[int, int, int, type[Command], str, dict[str, Any]]


# ----------------------------------------------------------------------- network


class _Network:
    """The simulation of one network's history."""

    def __init__(
        self, spec: _Spec, rng: random.Random, members: int, begin: int, finish: int
    ) -> None:
        self.spec = spec
        self.rng = rng
        self.size = members
        self.begin = begin
        self.end = finish
        self.span = finish - begin
        self.offset = spec.utc_offset * 3600
        self.currency = spec.currency
        self.heap: list[_Item] = []
        self.seq = 0
        self.last = begin - 1
        self.done = False
        self.members: list[_Member] = []
        self.by_category: list[list[_Member]] = [[] for _ in _CATEGORIES]
        self.cumulative: list[list[float]] = []
        self.blocked: set[tuple[int, int]] = set()  # directed pairs that never refer
        self.quiet: dict[tuple[int, int], int] = {}  # pair -> no interaction from then on
        # (sender, receiver, weekly probability, from, until, both ways, one-to-ones too)
        self.flows: list[tuple[_Member, _Member, float, int, int, bool, bool]] = []
        self.referrals = 0
        self.introductions = 0
        self.free: list[_Member] = []  # founding members in no special pair
        self.created = begin  # when the network is created
        self.settled = begin  # when the founding roster is complete
        self.first_meeting = 0  # local day number, once the roster is complete
        self.business_days = tuple(o for o in range(7) if (spec.meeting_weekday + o) % 7 < 5)

    # -- time ----------------------------------------------------------------

    def local_day(self, ts: int) -> int:
        return (ts + self.offset) // _DAY

    @staticmethod
    def weekday(day: int) -> int:
        return (day + 3) % 7  # 1970-01-01 was a Thursday

    def at(self, day: int, second: int) -> int:
        return day * _DAY - self.offset + second

    def business(self, day: int) -> int:
        """A moment in business hours on ``day``, or the next Monday if it is a weekend."""
        weekday = self.weekday(day)
        if weekday >= 5:
            day += 7 - weekday
        return self.at(day, self.rng.randrange(_OPEN_FROM, _OPEN_UNTIL))

    def later(self, ts: int, low: int, high: int) -> int:
        """A business moment ``low`` to ``high`` days after ``ts``, and after it."""
        moment = self.business(self.local_day(ts) + self.rng.randint(low, high))
        if moment <= ts:
            moment = ts + self.rng.randrange(600, 5400)
        return moment

    def fraction(self, low: float, high: float) -> int:
        """A business moment between two fractions of the history, after the founding."""
        day = self.local_day(self.begin + int(self.span * self.rng.uniform(low, high)))
        return max(self.business(day), self.settled + self.rng.randrange(60, 3600))

    # -- output ----------------------------------------------------------------

    def push(
        self, ts: int, cls: type[Command], actor: str, fields: dict[str, Any], first: bool = False
    ) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (ts, 0 if first else 1, self.seq, cls, actor, fields))

    def drain(self, limit: int) -> Iterator[Command]:
        heap, network, end = self.heap, self.spec.slug, self.end
        while heap and heap[0][0] < limit:
            ts, _, _, cls, actor, fields = heapq.heappop(heap)
            if ts <= self.last:
                ts = self.last + 1
            if ts >= end:
                heap.clear()
                self.done = True
                return
            self.last = ts
            yield cls(
                network=network, actor=actor, occurred_at=_EPOCH + timedelta(seconds=ts), **fields
            )

    # -- run -------------------------------------------------------------------

    def run(self) -> Iterator[Command]:
        self.plan_network()
        self.plan_members()
        self.plan_pairs()
        self.plan_agreements()
        day = self.first_meeting
        while not self.done:
            window = self.at(day, 0)
            if window >= self.end:
                break
            meeting: tuple[int, str] | None = None
            moment = self.at(day, self.spec.meeting_minute * 60)
            if moment < self.end and not _holiday(day):
                meeting = (moment, (_EPOCH_DATE + timedelta(days=day)).isoformat())
            self.plan_week(day, window, meeting)
            yield from self.drain(window + _WEEK)
            day += 7
        yield from self.drain(self.end)

    # -- planning: network and members -----------------------------------------

    def plan_network(self) -> None:
        spec = self.spec
        day = self.local_day(self.begin)
        self.created = self.at(day, 9 * 3600)
        if self.created <= self.begin:
            self.created = self.at(day + 1, 9 * 3600)
        self.settled = self.created
        fields: dict[str, Any] = {
            "name": spec.name,
            "currency": spec.currency,
            "period": spec.period,
            "tiers": spec.tiers,
        }
        if spec.rolling_days is not None:
            fields["rolling_days"] = spec.rolling_days
        self.push(self.created, NetworkCreated, spec.coordinator, fields, first=True)
        # The coordinator switches on the network's rules right away.
        for plugin, settings in spec.plugins:
            self.push(
                self.created + 60,
                PluginEnabled,
                spec.coordinator,
                {"plugin": plugin, "settings": settings},
                first=True,
            )
        if spec.later_tiers and self.span > 300 * _DAY:
            moment = self.business(self.local_day(self.begin + self.span // 2))
            self.push(moment, NetworkTiersSet, spec.coordinator, {"tiers": spec.later_tiers}, True)

    def person(self) -> str:
        return f"{self.rng.choice(_FIRST_NAMES)} {self.rng.choice(_SURNAMES)}"

    def outside_business(self) -> str:
        return f"{self.rng.choice(_PLACES)} {self.rng.choice(_TRADES)}"

    def plan_members(self) -> None:
        rng, spec = self.rng, self.spec
        order = list(range(len(_CATEGORIES)))
        rng.shuffle(order)
        taken: set[str] = set()
        for idx in range(self.size):
            category = order[idx % len(order)]
            cat = _CATEGORIES[category]
            for attempt in range(30):
                surname = rng.choice(_SURNAMES)
                slug = f"{_slugify(surname)}-{cat.suffix}"
                if attempt >= 10:
                    slug = f"{slug}-{attempt - 8}"
                if slug not in taken:
                    break
            else:
                slug = f"{_slugify(surname)}-{cat.suffix}-m{idx}"
            taken.add(slug)
            first = rng.choice(_FIRST_NAMES)
            member = _Member(
                idx=idx,
                slug=slug,
                name=rng.choice(cat.names).format(S=surname, F=first),
                category=category,
                person=f"{first} {surname}",
                email=f"{first.lower()}@{slug}.example",
                area=rng.choice(spec.areas),
                phone=spec.phone.format(n=f"01{rng.randrange(100):02d}"),
                rate=rng.gammavariate(2.0, 0.24),
                reliability=rng.uniform(0.84, 0.98),
            )
            member.no_referral = math.exp(-member.rate)
            self.members.append(member)
            self.by_category[category].append(member)
        counts = [len(pool) for pool in self.by_category]
        for row in _AFFINITY:
            total, cumulative = 0.0, []
            for weight, count in zip(row, counts, strict=True):
                total += weight * count
                cumulative.append(total)
            self.cumulative.append(cumulative)

        n = self.size
        roles = list(self.members)
        rng.shuffle(roles)
        invited = roles[: n // 10]
        late = roles[len(invited) : len(invited) + n // 12]
        rest = roles[len(invited) + len(late) :]
        declined = rest[:1] if n >= 20 else []
        rest = rest[len(declined) :]
        suspended = rest[: max(1, n // 20)] if n >= 6 else []
        rest = rest[len(suspended) :]
        leaving = rest[: max(1, n // 25)] if n >= 5 else []
        rest = rest[len(leaving) :]

        coordinator = spec.coordinator
        clock = self.created
        later_ones = {m.idx for m in late} | {m.idx for m in invited[1::2]}
        inviting = {m.idx for m in invited} | {m.idx for m in declined}
        stable = {m.idx for m in rest}
        for member in self.members:
            if member.idx in later_ones:
                continue
            clock += rng.randrange(20, 90)
            if member.idx in inviting:
                member.invite_ts = clock
                self.push(clock, MemberInvited, coordinator, self.profile(member), first=True)
            else:
                member.join_ts = clock
                member.stable = member.idx in stable
                self.push(clock, MemberJoined, coordinator, self.profile(member), first=True)
        self.settled = clock
        meeting_day = self.local_day(clock) + 1
        while self.weekday(meeting_day) != spec.meeting_weekday:
            meeting_day += 1
        self.first_meeting = meeting_day
        for member in invited[1::2]:  # invited later in the history
            member.invite_ts = self.fraction(0.05, 0.45)
            self.push(member.invite_ts, MemberInvited, coordinator, self.profile(member), True)
        for member in invited:
            assert member.invite_ts is not None
            member.join_ts = self.later(member.invite_ts, 5, 40)
            contact = Contact(email=member.email, phone=member.phone, person=member.person)
            self.push(
                member.join_ts,
                MemberJoined,
                member.email,
                {"member": member.slug, "contact": contact},
                first=True,
            )
        for member in declined:
            assert member.invite_ts is not None
            member.join_ts = _NEVER
            member.simple = False
            member.left_ts = self.later(member.invite_ts, 10, 30)
            self.push(
                member.left_ts,
                MemberLeft,
                coordinator,
                {"member": member.slug, "reason": "declined the invitation"},
                first=True,
            )
        for member in late:
            member.join_ts = self.fraction(0.1, 0.75)
            self.push(member.join_ts, MemberJoined, coordinator, self.profile(member), True)
        for number, member in enumerate(suspended):
            member.simple = False
            member.reliability = rng.uniform(0.55, 0.7)
            since = max(self.fraction(0.2, 0.6), member.join_ts + _DAY)
            reasons = ("attendance below the chapter policy", "membership dues unpaid")
            reason = reasons[number % 2]
            self.push(
                since, MemberSuspended, coordinator, {"member": member.slug, "reason": reason}, True
            )
            if number % 2 == 0:
                until = self.later(since, 21, 60)
                member.suspensions.append((since, until))
                self.push(
                    until,
                    MemberReinstated,
                    coordinator,
                    {"member": member.slug, "reason": "attendance plan agreed"},
                    first=True,
                )
            else:
                member.suspensions.append((since, _NEVER))
                member.left_ts = self.later(since, 30, 90)
                self.push(
                    member.left_ts,
                    MemberLeft,
                    coordinator,
                    {"member": member.slug, "reason": "membership not renewed"},
                    first=True,
                )
        for member in leaving:
            member.simple = False
            member.left_ts = max(self.fraction(0.3, 0.85), member.join_ts + _DAY)
            self.push(
                member.left_ts,
                MemberLeft,
                member.email,
                {"member": member.slug, "reason": rng.choice(_LEFT_REASONS)},
                first=True,
            )
        for member in late:
            self.plan_visit_before_joining(member)
        for member in rng.sample(rest, min(len(rest), n // 10)):
            moment = self.fraction(0.1, 0.9)
            change: dict[str, Any] = {"member": member.slug}
            if rng.random() < 0.5:
                member.area = rng.choice(spec.areas)
                change["service_area"] = member.area
            else:
                member.phone = spec.phone.format(n=f"02{rng.randrange(100):02d}")
                change["contact"] = Contact(
                    email=member.email, phone=member.phone, person=member.person
                )
            self.push(moment, MemberUpdated, member.email, change)

    def profile(self, member: _Member) -> dict[str, Any]:
        return {
            "member": member.slug,
            "name": member.name,
            "category": _CATEGORIES[member.category].name,
            "service_area": member.area,
            "contact": Contact(email=member.email, phone=member.phone, person=member.person),
        }

    def plan_visit_before_joining(self, member: _Member) -> None:
        """A late joiner first visits a meeting, brought by a founding member."""
        hosts = [m for m in self.members if m.stable]
        if not hosts:
            return
        day = self.first_meeting + 7 * (
            (self.local_day(member.join_ts) - self.first_meeting) // 7 - 2
        )
        if day < self.first_meeting or _holiday(day):
            return
        host = self.rng.choice(hosts)
        self.push(
            self.at(day, self.spec.meeting_minute * 60 + 1200),
            VisitorBrought,
            host.email,
            {
                "member": host.slug,
                "visitor": member.person,
                "visitor_business": member.name,
                "meeting": (_EPOCH_DATE + timedelta(days=day)).isoformat(),
            },
        )

    # -- planning: special pairs -----------------------------------------------

    def plan_pairs(self) -> None:
        """One-sided partnerships and dormant ones, among founding members."""
        rng = self.rng
        stable = [m for m in self.members if m.stable]
        rng.shuffle(stable)
        pairs = min(2, len(stable) // 4)
        for _ in range(pairs):  # one-sided: a refers many to b, b never refers back
            a, b = stable.pop(), stable.pop()
            self.blocked.add((b.idx, a.idx))
            self.flows.append((a, b, 0.3, self.begin, self.end, False, False))
        cutoff = self.begin + max(int(self.span * 0.4), self.span - 330 * _DAY)
        for _ in range(pairs):  # dormant: busy early, silent later
            a, b = stable.pop(), stable.pop()
            self.quiet[(min(a.idx, b.idx), max(a.idx, b.idx))] = cutoff
            self.flows.append((a, b, 0.3, self.begin, cutoff, True, True))
        self.free = stable  # founding members not in a special pair

    def may_meet(self, a: _Member, b: _Member, ts: int) -> bool:
        if not self.quiet:
            return True
        cutoff = self.quiet.get((a.idx, b.idx) if a.idx < b.idx else (b.idx, a.idx))
        return cutoff is None or ts < cutoff

    def partner(
        self,
        member: _Member,
        ts: int,
        *,
        referral: bool = False,
        other: _Member | None = None,
        anyone: bool = False,
    ) -> _Member | None:
        """Someone ``member`` deals with at ``ts``: mostly a complementary trade."""
        rng = self.rng
        cumulative = self.cumulative[member.category]
        total = cumulative[-1]
        for _ in range(8):
            if anyone:
                found = self.members[rng.randrange(self.size)]
            else:
                pool = self.by_category[bisect(cumulative, rng.random() * total)]
                found = pool[rng.randrange(len(pool))]
            if found is member or found is other or not found.active(ts):
                continue
            if referral and (member.idx, found.idx) in self.blocked:
                continue
            if not self.may_meet(member, found, ts):
                continue
            return found
        return None

    # -- planning: a week --------------------------------------------------------

    def moment(self, day: int) -> int:
        """A business moment in the week of the meeting on ``day``."""
        rng = self.rng
        days = self.business_days
        return self.at(day + days[rng.randrange(len(days))], rng.randrange(_OPEN_FROM, _OPEN_UNTIL))

    def plan_week(self, day: int, window: int, meeting: tuple[int, str] | None) -> None:
        rng, coordinator = self.rng, self.spec.coordinator
        week_end = window + _WEEK
        if meeting is not None:
            moment, slug = meeting
            for member in self.members:
                if member.active(moment):
                    self.attend(member, moment, slug, coordinator)
        for member in self.members:
            if member.join_ts >= week_end or (
                member.left_ts is not None and member.left_ts <= window
            ):
                continue
            # Referrals sent this week: a Poisson count.
            threshold, product = member.no_referral, rng.random()
            while product > threshold:
                ts = self.moment(day)
                if member.active(ts):
                    receiver = self.partner(member, ts, referral=True)
                    if receiver is not None:
                        self.referral(member, receiver, ts)
                product *= rng.random()
            if rng.random() < 0.45:
                ts = self.moment(day)
                if member.active(ts):
                    other = self.partner(member, ts, anyone=rng.random() < 0.3)
                    if other is not None:
                        self.one_to_one(member, other, ts)
            if rng.random() < 0.06:
                self.introduction(member, self.moment(day))
            if rng.random() < 0.035:
                ts = self.moment(day)
                if member.active(ts):
                    other = self.partner(member, ts)
                    if other is not None:
                        text = rng.choice(_TESTIMONIALS).format(n=other.name)
                        self.push(
                            ts,
                            TestimonialGiven,
                            member.email,
                            {"member": member.slug, "about_member": other.slug, "text": text},
                        )
            if rng.random() < 0.025:
                ts = self.moment(day)
                if member.active(ts):
                    self.push(
                        ts,
                        TrainingCompleted,
                        member.email,
                        {"member": member.slug, "training": rng.choice(_TRAININGS)},
                    )
            if meeting is not None and rng.random() < 0.07:
                ts = meeting[0] + rng.randrange(60, 3600)
                if member.active(ts):
                    self.push(
                        ts,
                        VisitorBrought,
                        member.email,
                        {
                            "member": member.slug,
                            "visitor": self.person(),
                            "visitor_business": self.outside_business(),
                            "meeting": meeting[1],
                        },
                    )
            if rng.random() < 0.015:
                self.repeat_business(member, self.moment(day))
        for a, b, chance, since, until, both, meet in self.flows:
            if until <= window or since >= week_end:
                continue
            for sender, receiver in ((a, b), (b, a)) if both else ((a, b),):
                if rng.random() < chance:
                    ts = self.moment(day)
                    if (
                        since <= ts < until
                        and sender.active(ts)
                        and receiver.active(ts)
                        and (sender.idx, receiver.idx) not in self.blocked
                        and self.may_meet(sender, receiver, ts)
                    ):
                        self.referral(sender, receiver, ts)
            if meet and rng.random() < 0.25:
                ts = self.moment(day)
                if since <= ts < until and a.active(ts) and b.active(ts):
                    self.one_to_one(a, b, ts)

    def attend(self, member: _Member, moment: int, meeting: str, coordinator: str) -> None:
        rng = self.rng
        fields: dict[str, Any] = {"member": member.slug, "meeting": meeting}
        status: Attendance
        if rng.random() < member.reliability:
            status = "present" if rng.random() < 0.93 else "late"
        else:
            draw = rng.random()
            status = "substitute" if draw < 0.45 else "absent" if draw < 0.85 else "medical"
        fields["status"] = status
        if status == "substitute":
            fields["substitute"] = self.person()
        self.push(moment, MeetingAttended, coordinator, fields)
        if status == "absent" and rng.random() < 0.1:
            # The coordinator corrects the record: a substitute did come.
            later = moment + rng.randrange(3600, 4 * 3600)
            if member.active(later):
                self.push(
                    later,
                    MeetingAttended,
                    coordinator,
                    {
                        "member": member.slug,
                        "meeting": meeting,
                        "status": "substitute",
                        "substitute": self.person(),
                    },
                )

    def one_to_one(self, a: _Member, b: _Member, ts: int) -> None:
        fields: dict[str, Any] = {"member": a.slug, "with_member": b.slug}
        if self.rng.random() < 0.3:
            fields["note"] = self.rng.choice(_NOTES_121)
        self.push(ts, OneToOneHeld, a.email, fields)

    def introduction(self, member: _Member, ts: int) -> None:
        rng = self.rng
        if not member.active(ts):
            return
        introduced = self.partner(member, ts)
        if introduced is None:
            return
        fields: dict[str, Any] = {"introducer": member.slug, "introduced": introduced.slug}
        if rng.random() < 0.6:
            target = self.partner(introduced, ts, other=member)
            if target is None or not self.may_meet(member, target, ts):
                return
            fields["to_member"] = target.slug
        else:
            fields["to_business"] = self.outside_business()
        if rng.random() < 0.4:
            fields["note"] = rng.choice(_INTRO_NOTES)
        self.introductions += 1
        fields["introduction"] = f"intro-{self.introductions:04d}"
        self.push(ts, IntroductionMade, member.email, fields)

    def deal_value(self, category: _Category) -> Decimal:
        rng = self.rng
        low, high = category.deal
        value = low * math.exp(rng.random() * math.log(high / low))
        if rng.random() < 0.6:
            return _money(max(1, round(value / 50)) * 5000)
        return _money(round(value * 100))

    def repeat_business(self, member: _Member, ts: int) -> None:
        """A TYFCB for business that came through a member outside any recorded referral."""
        if not member.active(ts):
            return
        other = self.partner(member, ts)
        if other is None:
            return
        amount = self.deal_value(_CATEGORIES[member.category])
        self.push(
            ts,
            TyfcbReported,
            member.email,
            {
                "member": member.slug,
                "thanked_member": other.slug,
                "amount": amount,
                "currency": self.currency,
                "note": "Repeat business from a client you introduced last year",
            },
        )

    def referral(self, sender: _Member, receiver: _Member, ts: int) -> None:
        """A referral and its whole future: response, outcome, thanks, reversal."""
        rng, currency = self.rng, self.currency
        category = _CATEGORIES[receiver.category]
        self.referrals += 1
        slug = f"ref-{self.referrals:05d}"
        is_person = rng.random() < 0.7
        customer = self.person() if is_person else self.outside_business()
        fields: dict[str, Any] = {
            "referral": slug,
            "from_member": sender.slug,
            "to_member": receiver.slug,
            "customer": customer,
        }
        if is_person:  # personal data, sealed in the log (docs/privacy.md)
            fields["customer_contact"] = _email_of(customer)
        if rng.random() < 0.45:
            fields["note"] = rng.choice(category.needs)
        self.push(ts, ReferralSent, sender.email, fields)
        draw = rng.random()
        if draw < 0.03:
            return  # never answered
        ts = self.later(ts, 0, 4)
        if draw < 0.25:
            self.push(
                ts,
                ReferralDeclined,
                receiver.email,
                {"referral": slug, "reason": rng.choice(_DECLINED)},
            )
            return
        self.push(ts, ReferralAccepted, receiver.email, {"referral": slug})
        ts = self.later(ts, *category.cycle)
        draw = rng.random()
        if draw < 0.42:
            value = self.deal_value(category)
            self.push(
                ts,
                ReferralConverted,
                receiver.email,
                {"referral": slug, "deal_value": value, "currency": currency},
            )
            if rng.random() < 0.7:
                ts = self.later(ts, 1, 14)
                if receiver.active(ts):
                    self.push(
                        ts,
                        TyfcbReported,
                        receiver.email,
                        {
                            "member": receiver.slug,
                            "thanked_member": sender.slug,
                            "amount": value,
                            "currency": currency,
                            "referral": slug,
                            # Never the customer's name: notes are not sealed.
                            "note": f"Thank you for referral {slug}",
                        },
                    )
            if rng.random() < 0.05:
                ts = self.later(ts, 10, 90)
                amount = value
                if rng.random() < 0.45:
                    cents = int(value.scaleb(2))
                    amount = _money(max(100, round(cents * rng.uniform(0.1, 0.6))))
                self.push(
                    ts,
                    ReferralReversed,
                    receiver.email,
                    {
                        "referral": slug,
                        "amount": amount,
                        "reason": rng.choice(_REVERSED),
                        "currency": currency,
                    },
                )
        elif draw < 0.86:
            self.push(
                ts, ReferralLost, receiver.email, {"referral": slug, "reason": rng.choice(_LOST)}
            )
        # else: still open at the end of the history

    # -- planning: agreements ---------------------------------------------------

    def plan_agreements(self) -> None:
        rng = self.rng
        free = list(self.free)
        uses: dict[int, int] = {}
        groups: list[tuple[AgreementKind, list[_Party]]] = []

        def pick(categories: tuple[str, ...], taken: list[_Party], most: int = 2) -> _Member | None:
            pool = [
                m
                for m in free
                if _CATEGORIES[m.category].name in categories
                and uses.get(m.idx, 0) < most
                and m not in taken
            ]
            return rng.choice(pool) if pool else None

        def add(kind: AgreementKind, parties: list[_Party]) -> None:
            groups.append((kind, parties))
            for party in parties:
                if party is not None:
                    uses[party.idx] = uses.get(party.idx, 0) + 1

        # A three-party package deal of the event trades (any free member makes up the numbers).
        trio: list[_Party] = []
        for wanted_trade in ("florist", "caterer", "photographer"):
            found = (
                pick((wanted_trade,), trio)
                or pick(_GROUPS[2], trio)
                or pick(tuple(c.name for c in _CATEGORIES), trio)
            )
            if found is not None:
                trio.append(found)
        if len(trio) == 3:
            add("joint-venture", trio)
        wanted = max(2, self.size // 4)
        strong = list(_STRONG)
        rng.shuffle(strong)
        for first, second in strong:
            if len(groups) >= wanted:
                break
            a = pick((first,), [])
            b = pick((second,), [a]) if a is not None else None
            if a is not None and b is not None:
                add(_KINDS[len(groups) % len(_KINDS)], [a, b])
        while len(groups) < wanted and len(free) >= 2:
            add(_KINDS[len(groups) % len(_KINDS)], rng.sample(free, 2))
        if free:
            groups.append(("channel", [None, rng.choice(free)]))
        if not groups:
            return
        rng.shuffle(groups)
        starts = sorted(self.fraction(0.03, 0.6) for _ in groups)
        # The first agreements, with the most time left, get the fates that need time.
        needed = ["expire", "amend-renew", "terminate", "renew", "amend", "pilot-terminate"]
        optional = ["active", "amend", "renew", "pilot-expire", "withdraw", "terminate", "active"]
        spans = {
            "expire": 310,
            "amend-renew": 300,
            "renew": 300,
            "terminate": 270,
            "amend": 270,
            "pilot-terminate": 110,
            "pilot-expire": 125,
            "withdraw": 45,
            "active": 0,
        }
        for number, ((kind, parties), proposed) in enumerate(zip(groups, starts, strict=True)):
            left = (self.end - proposed) // _DAY
            fate = next((f for f in needed if spans[f] <= left), None)
            if fate is not None:
                needed.remove(fate)
            else:
                fate = next(
                    (f for f in optional[number % len(optional) :] if spans[f] <= left), "active"
                )
            self.agreement(number + 1, kind, parties, proposed, fate, left)

    def sole_in_category(self, parties: list[_Party]) -> bool:
        """Whether exclusivity cannot bind: every party is its category's only member.

        (The networks enable the validation plugin, which refuses a referral
        that breaks a live exclusive agreement.)
        """
        return all(
            p is not None and sum(m.category == p.category for m in self.members) == 1
            for p in parties
        )

    def slug_of(self, party: _Party) -> str:
        return PROGRAM if party is None else party.slug

    def actor_of(self, party: _Party) -> str:
        return self.spec.coordinator if party is None else party.email

    def terms(
        self, kind: AgreementKind, parties: list[_Party], duration: int, renewal: Renewal
    ) -> Terms:
        rng, spec = self.rng, self.spec
        named = [spec.name if p is None else p.name for p in parties]
        cats = ["partner program" if p is None else _CATEGORIES[p.category].name for p in parties]
        area = next((p.area for p in parties if p is not None), spec.areas[0])
        scope = _SCOPES[kind].format(a=named[0], b=named[1], ca=cats[0], cb=cats[1], area=area)
        if len(parties) > 2:
            scope += f" {', '.join(named[2:])} completes the package."
        duties = _DUTIES[kind]
        responsibilities = {self.slug_of(p): duties[min(i, 1)] for i, p in enumerate(parties)}
        if parties[0] is None:
            responsibilities[PROGRAM] = "Feature the partner in the newsletter and at every mixer"
        compensation: Compensation | None = None
        if kind == "referral":
            fee = rng.choice((100, 150, 200, 250, 300))
            compensation = Compensation(
                kind="referral_fee", amount=_money(fee * 100), currency=self.currency
            )
        elif kind in ("channel", "joint-venture", "supply-chain"):
            rate = rng.choice((5, 8, 10, 12, 15)) if kind != "joint-venture" else 30
            compensation = Compensation(kind="revenue_share", rate=_money(rate))
        return Terms(
            scope=scope,
            responsibilities=responsibilities,
            targets=Targets(
                referrals_per_month=rng.randint(1, 5),
                conversion_rate=_money(rng.choice((25, 30, 35, 40, 45, 50))),
            ),
            compensation=compensation,
            payment_terms=rng.choice(_PAYMENT_TERMS) if compensation is not None else None,
            exclusivity=rng.random() < 0.15 and self.sole_in_category(parties),
            confidentiality=rng.random() < 0.6,
            non_solicitation=rng.random() < 0.4,
            duration_days=duration,
            renewal=renewal,
            termination_notice_days=rng.choice((14, 30, 30, 60, 90)),
        )

    def amended(self, terms: Terms) -> Terms:
        targets = terms.targets or Targets()
        new_targets = replace(targets, referrals_per_month=(targets.referrals_per_month or 1) + 1)
        pay = terms.compensation
        if pay is not None and pay.amount is not None:
            pay = replace(pay, amount=pay.amount + 50)
        elif pay is not None and pay.rate is not None:
            pay = replace(pay, rate=min(Decimal("0.95"), pay.rate + Decimal("0.02")))
        return replace(terms, targets=new_targets, compensation=pay)

    def agreement(
        self,
        number: int,
        kind: AgreementKind,
        parties: list[_Party],
        proposed: int,
        fate: str,
        room: int,
    ) -> None:
        """Plan one agreement's life; ``fate`` says how it goes, ``room`` days are left."""
        rng, coordinator = self.rng, self.spec.coordinator
        slugs = tuple(self.slug_of(p) for p in parties)
        slug = f"agr-{number:03d}-" + "-".join(s.split("-")[0] for s in slugs)
        slug = slug[:100]
        duration = 180 if rng.random() < 0.5 else 365
        if fate in ("expire", "renew", "amend-renew") and room < 500:
            duration = 180  # so that the term ends (and is renewed or expires) in the history
        if fate in ("expire",):
            renewal: Renewal = "none"
        elif fate in ("renew", "amend-renew"):
            renewal = rng.choice(("manual", "automatic"))
        else:
            renewal = rng.choice(("manual", "automatic", "none"))
        terms = self.terms(kind, parties, duration, renewal)
        with_pilot = fate.startswith("pilot") or rng.random() < 0.8
        pilot = None
        if with_pilot:
            target = terms.targets.referrals_per_month if terms.targets else 2
            pilot = Pilot(
                days=90,
                goals=(
                    f"At least {target or 2} referrals a month between the parties",
                    "A conversion rate of 30 % or more on accepted referrals",
                    "One joint client event or campaign",
                ),
            )
        proposer = parties[0]
        lead = self.actor_of(proposer)
        fields: dict[str, Any] = {
            "agreement": slug,
            "kind": kind,
            "parties": slugs,
            "terms": terms,
        }
        if pilot is not None:
            fields["pilot"] = pilot
        self.push(proposed, AgreementProposed, lead, fields)
        ts = proposed
        accepting = parties[:-1] if fate == "withdraw" else parties
        for party in accepting:
            ts = self.later(ts, 0, 5)
            self.push(
                ts,
                AgreementAccepted,
                self.actor_of(party),
                {"agreement": slug, "party": self.slug_of(party)},
            )
        if fate == "withdraw":
            ts = self.later(ts, 14, 30)
            self.push(
                ts,
                AgreementTerminated,
                lead,
                {"agreement": slug, "reason": "proposal withdrawn before every party accepted"},
            )
            return
        live_from = ts
        live_until = self.end
        try:
            if pilot is not None:
                pilot_end = ts + pilot.days * _DAY
                if fate == "pilot-terminate":
                    ts = self.later(ts, 30, 75)
                    live_until = ts
                    self.push(
                        ts,
                        AgreementTerminated,
                        lead,
                        {"agreement": slug, "reason": "pilot goals not met"},
                    )
                    return
                if fate == "pilot-expire":
                    ts = self.later(pilot_end, 0, 2)
                    live_until = ts
                    self.push(ts, AgreementExpired, coordinator, {"agreement": slug})
                    return
                ts = self.later(pilot_end, 0, 3)
                self.push(ts, AgreementActivated, lead, {"agreement": slug})
            started = ts
            ends = started + duration * _DAY
            if "amend" in fate:
                ts = self.later(ts, 30, 120)
                terms = self.amended(terms)
                self.push(
                    ts,
                    AgreementAmended,
                    lead,
                    {"agreement": slug, "terms": terms, "accepted_by": slugs},
                )
            if fate == "terminate":
                ts = self.later(ts, 45, 150)
                live_until = ts
                party = rng.choice(parties)
                self.push(
                    ts,
                    AgreementTerminated,
                    self.actor_of(party),
                    {"agreement": slug, "reason": rng.choice(_TERMINATED)},
                )
                return
            while ends < self.end:
                renew = (
                    fate in ("renew", "amend-renew")
                    or renewal == "automatic"
                    or (renewal == "manual" and rng.random() < 0.5)
                )
                if not renew:
                    ts = max(self.later(ends, 0, 2), ts + _DAY)
                    live_until = ts
                    self.push(ts, AgreementExpired, coordinator, {"agreement": slug})
                    return
                if renewal == "automatic":
                    ts = max(ends + rng.randrange(60, 3600), ts + _DAY)
                    self.push(ts, AgreementRenewed, coordinator, {"agreement": slug})
                else:
                    ts = max(ends - rng.randint(3, 20) * _DAY, ts + _DAY)
                    self.push(
                        ts, AgreementRenewed, lead, {"agreement": slug, "duration_days": duration}
                    )
                ends = max(ends, ts) + duration * _DAY
        finally:
            if kind in ("referral", "channel", "joint-venture"):
                members = [p for p in parties if p is not None]
                for i, a in enumerate(members):
                    for b in members[i + 1 :]:
                        self.flows.append((a, b, 0.2, live_from, live_until, True, False))
