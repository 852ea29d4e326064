"""The JSON API's read models: standings, scorecards, statements and the event log.

Coordinators and auditors read every member's figures; a member reads
their own business's standing, scorecards, statements and events (asking
for another business's is refused with 403).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request
from litestar.params import FromPath, FromQuery, PathParameter, QueryParameter

from partnerledger import NotFound
from partnerledger.commands import COMMAND_TYPES
from partnerledger.errors import InvalidCommand
from partnerledger.events import Event
from partnerledger.log import EventFilter, select_events
from partnerledger.periods import Calendar
from partnerledger.rules import Activity, Score, TierChoice, Window
from partnerledger.types import MAX_DAYS, OUT_OF_RANGE, in_range
from partnerledger.views.asof import BUSINESS_FIELD, RECORDED_FIELD, AsOfViews, Cut, views_as_of
from partnerledger.views.ledger import statement
from partnerledger.views.scorecards import DORMANT_DAYS, scorecards
from partnerledger.views.standings import Standing, standings

from .api_common import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    LogEvent,
    api_get,
    log_event,
    offset,
    only_self,
    parse_time,
    require_self,
    services,
    slice_page,
    time_query,
)

# --------------------------------------------------------------- standings


class PluginRef(msgspec.Struct, kw_only=True):
    """The plugin (and version) that made a decision."""

    name: str
    version: str


class StandingOut(msgspec.Struct, kw_only=True):
    """A member's standing in a period: score, label and tier, and the activity behind them."""

    member: str
    #: The member's status now.
    status: str
    period: str
    window: Window
    #: The score's total as a decimal string (``null`` without a scoring plugin).
    score: str | None
    #: The score's label, e.g. a traffic-light colour.
    label: str | None
    #: Points per part of the score, as decimal strings.
    breakdown: dict[str, str]
    #: The tier in force: a coordinator's override if any, else the decided tier.
    tier: str | None
    #: The tier the tiering rule decided.
    decided_tier: str | None
    reason: str | None
    previous: str | None
    periods_below: int
    #: Recorded at a period close: it never changes.
    closed: bool
    override_reason: str | None
    #: Why a plugin could not decide, if one failed.
    problem: str | None
    scoring_plugin: PluginRef | None
    tiering_plugin: PluginRef | None
    activity: Activity


class StandingPage(msgspec.Struct, kw_only=True):
    """A page of one period's standings, in the order members appeared."""

    period: str
    window_start: datetime
    window_end: datetime
    items: list[StandingOut]
    next: str | None


def standing_out(s: Standing) -> StandingOut:
    """The API's form of a standing."""
    score = s.score.value if s.score else None
    choice = s.tier.value if s.tier else None
    return StandingOut(
        member=s.member,
        status=s.status,
        period=s.period,
        window=s.window,
        score=str(score.total) if isinstance(score, Score) else None,
        label=s.label,
        breakdown={k: str(v) for k, v in score.breakdown.items()}
        if isinstance(score, Score)
        else {},
        tier=s.tier_name,
        decided_tier=choice.tier if isinstance(choice, TierChoice) else None,
        reason=choice.reason if isinstance(choice, TierChoice) else None,
        previous=s.previous,
        periods_below=s.periods_below,
        closed=s.closed,
        override_reason=s.override_reason,
        problem=s.problem,
        scoring_plugin=PluginRef(name=s.score.plugin, version=s.score.version) if s.score else None,
        tiering_plugin=PluginRef(name=s.tier.plugin, version=s.tier.version) if s.tier else None,
        activity=s.activity,
    )


#: A period's name or a date inside it (the network's calendar says which names are its own).
PERIOD_PATTERN = r"^[0-9]{4}-([0-9]{2}|[Qq][1-4]|[0-9]{2}-[0-9]{2}(\+[0-9]{1,5}d)?)$"
_PERIOD = (
    "The period's name (2025-06, 2025-Q2, 2025-01-15+90d) or a date inside it (2025-05-17), "
    "from 1900 up to 2200."
)
PeriodQuery = Annotated[str | None, QueryParameter(pattern=PERIOD_PATTERN, description=_PERIOD)]
PeriodPath = Annotated[str, PathParameter(pattern=PERIOD_PATTERN, description=_PERIOD)]


AsOf = time_query(
    "Cut history at this business time (RFC 3339 with an offset, from 1900 up to 2200): "
    "what had happened by then, as known now, computed from the log."
)
AsOfRecorded = time_query(
    "Cut history at this recorded (store) time (RFC 3339 with an offset, from 1900 up to "
    "2200): what the system knew then, computed from the log."
)


def api_cut(as_of: str | None, as_of_recorded: str | None) -> Cut | None:
    """The cut the query gives (``None`` without one); InvalidCommand on the parameter at fault."""
    moments: dict[str, datetime | None] = {}
    for field, text in ((BUSINESS_FIELD, as_of), (RECORDED_FIELD, as_of_recorded)):
        moment = parse_time(text, field)
        if moment is not None and not in_range(moment):
            raise InvalidCommand(field, OUT_OF_RANGE)
        moments[field] = moment
    if moments[BUSINESS_FIELD] is None and moments[RECORDED_FIELD] is None:
        return None
    return Cut(recorded=moments[RECORDED_FIELD], business=moments[BUSINESS_FIELD])


@contextmanager
def api_views(request: Request[Any, Any, Any], network: str, cut: Cut) -> Iterator[AsOfViews]:
    """The network's views as of the cut; NotFound on ``network`` if it did not exist then."""
    found = services(request)
    found.network(network)  # an unknown network is a 404 first
    with views_as_of(found.store, found.ledger.rules, network, cut) as views:
        if views.network is None:
            raise NotFound("network", f"no network {network!r} {cut.describe()}")
        yield views


@api_get("/networks/{network:str}/standings", operation_id="listStandings", tag="standings")
async def list_standings(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    period: PeriodQuery = None,
    member: FromQuery[str | None] = None,
    as_of: AsOf = None,
    as_of_recorded: AsOfRecorded = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> StandingPage:
    """Every member's standing in a period: score, label, tier and whether it is closed.

    ``period`` is the period's name (``2025-06``, ``2025-Q2``,
    ``2025-01-15+90d``) or a date inside it; the current period by default.
    A closed period shows what was recorded at its close; an open one is
    computed from the log as it stands. A member sees their own standing.
    With ``as_of`` (business time) or ``as_of_recorded`` (store time), the
    standings as of that moment, computed from the log (the period
    containing it by default).
    """
    found = services(request)
    member = only_self(request, network, member)
    cut = api_cut(as_of, as_of_recorded)
    if cut is None:
        net = found.network(network)
        calendar = Calendar.of(net)
        chosen = calendar.parse(period) if period else calendar.containing(datetime.now(UTC))
        rows = standings(found.db, found.ledger.rules, net, chosen, member=member)
    else:
        with api_views(request, network, cut) as views:
            assert views.network is not None
            calendar = Calendar.of(views.network)
            chosen = calendar.parse(period) if period else calendar.containing(cut.moment)
            rows = standings(views, views.rules, views.network, chosen, member=member)
    items, following = slice_page([standing_out(s) for s in rows], cursor, limit)
    return StandingPage(period=chosen.name, window_start=chosen.start, window_end=chosen.end,
                        items=items, next=following)  # fmt: skip


# -------------------------------------------------------------- scorecards


class FlowOut(msgspec.Struct, kw_only=True):
    """One direction of a pair: the referrals sent and what they became (money as strings)."""

    sent: int
    accepted: int
    converted: int
    conversion_rate: float | None
    deal_value: str
    reversed_value: str
    converted_value: str
    average_deal: str | None
    value_per_month: str
    value_per_year: str


class ReciprocityOut(msgspec.Struct, kw_only=True):
    """Given against received, from the member's side."""

    given: int
    received: int
    balance: int
    ratio: float | None
    value_given: str
    value_received: str
    value_balance: str


class ProgressOut(msgspec.Struct, kw_only=True):
    """The pair's live agreement against its lead-flow targets."""

    agreement: str
    kind: str
    status: str
    effective_at: datetime | None
    pilot_ends_at: datetime | None
    months: int
    referrals: int
    converted: int
    referrals_per_month: float | None
    target_referrals_per_month: int | None
    conversion_rate: float | None
    target_conversion_rate: float | None
    judged: bool
    below_referrals: bool
    below_conversion: bool


class FlagsOut(msgspec.Struct, kw_only=True):
    """What needs a coordinator's attention."""

    one_sided: bool
    dormant: bool
    pilot_ending: bool
    below_target: bool


class ScorecardOut(msgspec.Struct, kw_only=True):
    """One pair of members, seen from ``member``'s side."""

    network: str
    member: str
    partner: str
    currency: str
    as_of: datetime
    dormant_days: int
    given: FlowOut
    received: FlowOut
    reciprocity: ReciprocityOut
    first_interaction_at: datetime | None
    last_interaction_at: datetime | None
    days_since_last_interaction: int | None
    introductions: int
    one_to_ones: int
    months_active: int
    agreement: ProgressOut | None
    flags: FlagsOut


class ScorecardPage(msgspec.Struct, kw_only=True):
    """A page of scorecards, by member then partner."""

    items: list[ScorecardOut]
    next: str | None


DormantDays = Annotated[
    int,
    QueryParameter(
        ge=1,
        le=MAX_DAYS,
        description=f"Days without interaction that make a tie dormant (1 to {MAX_DAYS}).",
    ),
]


@api_get("/networks/{network:str}/scorecards", operation_id="listScorecards", tag="scorecards")
async def list_scorecards(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    member: FromQuery[str | None] = None,
    as_of: AsOf = None,
    as_of_recorded: AsOfRecorded = None,
    dormant_days: DormantDays = DORMANT_DAYS,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> ScorecardPage:
    """The scorecard of every pair of members with any history: referrals each way,
    conversion, revenue, reciprocity, dormant ties and agreement targets.

    With ``member``, only that member's pairs, from their side (a member
    always gets their own). With ``as_of`` (business time) or
    ``as_of_recorded`` (store time), the scorecards as of that moment,
    computed from the log; the time-dependent figures (days since, months)
    are measured at ``as_of``, else ``as_of_recorded``, else now.
    ``dormant_days`` (default 90) says when a quiet tie is flagged dormant.
    Money as strings with two decimals, rates as numbers.
    """
    member = only_self(request, network, member)
    cut = api_cut(as_of, as_of_recorded)
    # One more than a page: the database reads only this page's pairs.
    start = offset(cursor)
    page = {"offset": start, "limit": limit + 1}
    try:
        if cut is None:
            cards = scorecards(services(request).db, network, member=member,
                               as_of=datetime.now(UTC), dormant_days=dormant_days,
                               **page)  # fmt: skip
        else:
            with api_views(request, network, cut) as views:
                cards = scorecards(views, network, member=member, as_of=cut.moment,
                                   dormant_days=dormant_days, **page)  # fmt: skip
    except NotFound as error:
        if error.field != "network":
            raise
        cards = []  # the view has not read the network yet
    items = [msgspec.convert(card.as_dict(), ScorecardOut) for card in cards[:limit]]
    following = str(start + limit) if len(cards) > limit else None
    return ScorecardPage(items=items, next=following)


# -------------------------------------------------------------- statements


class EntryOut(msgspec.Struct, kw_only=True):
    """One line of a statement."""

    member: str
    period: str
    #: The command id of the event that caused it.
    source: str
    source_type: str
    occurred_at: datetime
    plugin: str
    version: str
    #: referral_fee, revenue_share, bonus, clawback or payout.
    kind: str
    amount: str
    currency: str
    note: str


class StatementOut(msgspec.Struct, kw_only=True):
    """A member's incentive statement: opening balance, entries, closing balance."""

    network: str
    member: str
    period: str
    currency: str
    #: Recorded at the period's close: it never changes.
    closed: bool
    opening: str
    entries: list[EntryOut]
    closing: str


@api_get("/networks/{network:str}/members/{member:str}/statements/{period:str}",
         operation_id="getStatement", tag="statements")  # fmt: skip
async def get_statement(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    member: FromPath[str],
    period: PeriodPath,
    as_of: AsOf = None,
    as_of_recorded: AsOfRecorded = None,
) -> StatementOut:
    """A member's incentive statement for one period: what they earned, lost and were paid.

    ``period`` is the period's name or a date inside it. Money as strings
    with two decimals, in the network's currency. A member reads their own
    business's statements only. With ``as_of`` (business time) or
    ``as_of_recorded`` (store time), the statement as of that moment,
    computed from the log.
    """
    require_self(request, network, member, "the member")
    found = services(request)
    cut = api_cut(as_of, as_of_recorded)
    work = found.ledger.unit_of_work()
    net = work.network(network)
    work.member(network, member, "member")
    if cut is None:
        chosen = Calendar.of(net).parse(period)
        return msgspec.convert(statement(found.db, net, member, chosen).as_dict(), StatementOut)
    with api_views(request, network, cut) as views:
        assert views.network is not None
        if views.member(member) is None:
            raise NotFound("member", f"no member {member!r} in {network!r} {cut.describe()}")
        chosen = Calendar.of(views.network).parse(period)
        found_statement = statement(views, views.network, member, chosen)
    return msgspec.convert(found_statement.as_dict(), StatementOut)


# ------------------------------------------------------------------ events


class EventPage(msgspec.Struct, kw_only=True):
    """A page of the log, in log order."""

    items: list[LogEvent]
    #: The position to pass as ``after`` for the next page.
    next: int | None


#: The largest position ``after`` takes: the largest integer a JSON number holds exactly.
MAX_POSITION = 2**53 - 1

After = Annotated[
    int,
    QueryParameter(
        ge=0,
        le=MAX_POSITION,
        description="Start after this log position (a page's `next`).",
    ),
]


#: The event types, one per command type.
EventType = Literal[tuple(COMMAND_TYPES)]  # type: ignore[valid-type]

EventTypes = Annotated[
    list[EventType] | None,  # type: ignore[valid-type]
    QueryParameter(name="type", description="Event types to keep (repeatable)."),
]


Since = time_query("Events from this business time on (RFC 3339 with an offset).")
Until = time_query("Events before this business time (RFC 3339 with an offset).")


@api_get("/networks/{network:str}/events", operation_id="listEvents", tag="events")
async def list_events(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    types: EventTypes = None,
    member: FromQuery[str | None] = None,
    since: Since = None,
    until: Until = None,
    as_of: AsOf = None,
    as_of_recorded: AsOfRecorded = None,
    after: After = 0,
    limit: Limit = DEFAULT_LIMIT,
) -> EventPage:
    """The network's event log, in log order, with positions.

    Filter by ``type`` (repeatable: ``?type=referral.sent&type=referral.converted``),
    by ``member`` (events that concern the business, a referral's later
    events among them) and by business time (``since`` inclusive, ``until``
    exclusive; RFC 3339 with an offset). ``as_of_recorded`` keeps the
    events recorded up to that store time, ``as_of`` those that happened up
    to that business time (both inclusive): the log as of that moment.
    Page on with ``after`` set to the previous page's ``next``. A member
    reads the events that concern their own business.
    """
    cut = api_cut(as_of, as_of_recorded)
    wanted = tuple(types or ())
    for name in wanted:
        if name not in COMMAND_TYPES:
            raise InvalidCommand("type", f"unknown event type {name!r}")
    where = EventFilter(
        network=network,
        types=wanted,
        member=only_self(request, network, member),
        since=parse_time(since, "since"),
        until=parse_time(until, "until"),
    )
    store = services(request).store
    found: Iterator[tuple[int, Event]]
    if where.member is None:
        found = (
            (position, event)
            for position, event in store.read(after=after, topics=list(wanted))
            if where.matches(event)
        )
    else:
        # A referral's later events concern the members its first named:
        # the log is read from its start to know them.
        found = ((p, e) for p, e in select_events(store, where) if p > after)
    if cut is not None:
        found = ((p, e) for p, e in found if cut.includes(e))
    items: list[LogEvent] = []
    following = None
    for position, event in found:
        if len(items) == limit:
            following = items[-1].position
            break
        items.append(log_event(position, event))
    return EventPage(items=items, next=following)


HANDLERS = [list_standings, list_scorecards, get_statement, list_events]
