"""A member's own pages: their standing, their partners, their statements and their inbox.

Every page is about the business the signed-in member acts for (their
grant's ``member``), never one named in the URL or a form; coordinators and
auditors have no such pages (403), people from other networks do not see
the network at all (404). Sending and answering referrals, conversions and
thank-yous are on the referral pipeline page (``/n/{network}/referrals``).

* ``/n/{network}/me``: the standing in the latest period (or ``?period=``):
  the score by section, the colour and the tier, what it takes to reach the
  next colour and the next tier, and the standing over every period.
* ``/n/{network}/me/partners``: the scorecard with each partner.
* ``/n/{network}/me/statements``: the statement of a period.
* ``/n/{network}/me/inbox``: the in-app messages, and marking one read.

"What it takes" says only what the code can compute: the points between the
score and the next colour band (when the scoring plugin exposes its bands as
``COLOURS``) and the next rung of the tier ladder; per section, for the
traffic lights, how many more referrals, visitors, testimonials, trainings
or how much more thank-you value in the same scoring window would earn the
next band, each checked against the plugin's own arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from partnerledger import DomainError
from partnerledger.delivery import Deliveries
from partnerledger.domain import Network
from partnerledger.errors import NotFound, StoreUnavailable
from partnerledger.periods import Calendar, Period
from partnerledger.pluginmanager import Rules
from partnerledger.projection import Networks
from partnerledger.rules import Activity, Score
from partnerledger.views.ledger import entries, statement
from partnerledger.views.scorecards import scorecards
from partnerledger.views.standings import Standing, history, standings

from .pages import NAV, NavItem, page
from .security import current_user, network_guard, services_of
from .services import Services, ensure_network

MEMBER = {"roles": ("member",)}
NAV.append(NavItem("My business", "/me", roles=("member",), order=15))

_CENT = Decimal("0.01")


# ----------------------------------------------------------------- helpers


def _own_business(request: Request[Any, Any, Any], network: str) -> str:
    """The business the signed-in member acts for in this network (the guard checked the role)."""
    grant = current_user(request).grants.get(network)
    if grant is None or grant.member is None:
        raise PermissionDeniedException("your account acts for no business in this network")
    return str(grant.member)


def money(amount: Decimal | None, currency: str) -> str:
    """Money with two decimals (half up), thousands separated, and the currency."""
    if amount is None:
        return "—"
    return f"{amount.quantize(_CENT, rounding=ROUND_HALF_UP):,} {currency}"


def percent(value: Decimal | None) -> str:
    """A fraction as a percentage with one decimal: ``0.4`` → ``40.0 %``."""
    if value is None:
        return "—"
    return f"{(value * 100).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)} %"


def number(value: Decimal | None) -> str:
    """A score or points without trailing zeros: ``45``, ``12.5``."""
    if value is None:
        return "—"
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _enabled(services: Services, network: Network) -> dict[str, Any]:
    """The network's enabled plugins with their settings (ones now invalid left out)."""
    found: dict[str, Any] = Networks(services.ledger.rules, {network.network: network}).enabled(
        network.network
    )
    return found


def _names(services: Services, network: str, db: Any = None) -> dict[str, str]:
    """Every member's name by slug (``db``: the views, already caught up by this request)."""
    return {m.slug: m.name or m.slug for m in services.members(network, db)}


# ------------------------------------------------------- what it takes next


@dataclass(frozen=True)
class Gap:
    """The next band or rung above a score: its name, where it starts, the points missing."""

    name: str
    threshold: Decimal
    points: Decimal


@dataclass(frozen=True)
class Section:
    """One section of a score: its points, its most, what was measured, what earns more."""

    key: str
    label: str
    points: Decimal
    top: Decimal | None = None
    measured: str = ""
    next: str = ""


def next_colour(rules: Rules, standing: Standing) -> Gap | None:
    """The next colour band above the score, when the scoring plugin exposes its bands.

    A plugin exposes them as ``COLOURS``: (lower bound, name) pairs. ``None``
    without a label, without bands, or at the top band.
    """
    score = standing.score.value if standing.score else None
    if not isinstance(score, Score) or score.label is None or standing.score is None:
        return None
    bands = getattr(rules.plugin(standing.score.plugin), "COLOURS", None)
    if not bands:
        return None
    above = [(Decimal(bound), str(name)) for bound, name in bands if Decimal(bound) > score.total]
    if not above:
        return None
    bound, name = min(above)
    return Gap(name, bound, bound - score.total)


def ladder(rules: Rules, network: Network, enabled: dict[str, Any]) -> list[tuple[str, Decimal]]:
    """The tier ladder in force, lowest first: the network's, else the tiering plugin's."""
    if network.tiers:
        return [(t.name, t.threshold) for t in network.tiers]
    for name, settings in enabled.items():
        rungs = getattr(settings, "ladder", None)
        if rungs and rules.implements(name, "partnerledger_tier"):
            return [(t.name, t.threshold) for t in rungs]
    return []


def next_tier(rungs: list[tuple[str, Decimal]], standing: Standing) -> Gap | None:
    """The rung above the tier in force (else the first above the score); ``None`` at the top."""
    total = standing.total
    if total is None or not rungs:
        return None
    names = [name for name, _ in rungs]
    current = standing.tier_name
    if current in names:
        higher = rungs[names.index(current) + 1 :]
    else:
        higher = [(name, threshold) for name, threshold in rungs if threshold > total]
    if not higher:
        return None
    name, threshold = higher[0]
    return Gap(name, threshold, max(threshold - total, Decimal(0)))


def below_tier(rungs: list[tuple[str, Decimal]], standing: Standing) -> Gap | None:
    """The tier in force when the score is below its threshold (kept by a grace period or an
    override): the points missing to earn it on the score alone."""
    total = standing.total
    threshold = dict(rungs).get(standing.tier_name or "")
    if total is None or threshold is None or total >= threshold:
        return None
    return Gap(str(standing.tier_name), threshold, threshold - total)


def sections(rules: Rules, enabled: dict[str, Any], standing: Standing) -> list[Section]:
    """The score's sections, with what earns each one's next band where the plugin says."""
    decision = standing.score
    score = decision.value if decision else None
    if decision is None or not isinstance(score, Score):
        return []
    settings = enabled.get(decision.plugin)
    if decision.plugin == "traffic-lights":
        plugin = rules.plugin(decision.plugin)
        if plugin is not None:
            return _traffic_lights(plugin, standing.activity, settings, score)
    if decision.plugin == "points" and settings is not None:
        return _points(standing.activity, settings, score)
    return [Section(key, key.replace("_", " ").capitalize(), value)
            for key, value in score.breakdown.items()]  # fmt: skip


_TRAFFIC = {
    "absences": "Attendance (absences)",
    "referrals": "Referrals given",
    "tyfcb": "Thank-yous for closed business received",
    "visitors": "Visitors brought",
    "testimonials": "Testimonials given",
    "on_time": "On time",
    "trainings": "Trainings",
}


def _traffic_lights(plugin: Any, activity: Activity, settings: Any, score: Score) -> list[Section]:
    """The seven sections, each with what the plugin's own arithmetic says earns more."""
    settings = settings if settings is not None else plugin.Settings()
    meetings = activity.meetings_held
    currency = activity.currency

    def points(changed: Activity, key: str) -> Decimal:
        return Decimal(plugin.breakdown(changed, settings)[key])

    # Each section's most: the plugin scoring an activity that earns everything.
    ideal = msgspec.structs.replace(
        activity, meetings_held=1, absent=0, late=0, referrals_given=10, visitors=10,
        testimonials_given=10, trainings=10, tyfcb_received=settings.tyfcb_15,
    )  # fmt: skip
    tops = plugin.breakdown(ideal, settings)

    def more_of(key: str, field: str, bands: Any, noun: str) -> str:
        """How many more of ``field`` in the same window earn the section's next band."""
        have = getattr(activity, field)
        current = points(activity, key)
        higher = sorted(p for _, p in bands if p > current)
        if not higher:
            return ""
        if meetings <= 0:
            return "rates need meetings: none were recorded in the scoring window"
        target = Decimal(higher[0])
        bound = min(b for b, p in bands if p == higher[0])
        need = max(int((Decimal(bound) * meetings).to_integral_value(ROUND_CEILING)) - have, 1)
        for _ in range(1000):  # the estimate is exact; the check keeps it honest
            if points(msgspec.structs.replace(activity, **{field: have + need}), key) >= target:
                return (
                    f"{need} more {noun if need != 1 else noun.rstrip('s')} in this window "
                    f"({meetings} meetings) would earn {number(target)} points"
                )
            need += 1
        return ""

    def rate(count: int) -> str:
        if meetings <= 0:
            return f"{count} (no meetings held)"
        per = (Decimal(count) / meetings).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)
        return f"{count} in {meetings} meetings ({number(per)} a week)"

    rows: list[Section] = []
    for key, value in score.breakdown.items():
        label = _TRAFFIC.get(key, key)
        top = Decimal(tops[key]) if key in tops else None
        measured = nxt = ""
        if key == "absences":
            measured = f"{activity.absent} absent in {meetings} meetings"
            for fewer in range(activity.absent - 1, -1, -1):
                earned = points(msgspec.structs.replace(activity, absent=fewer), key)
                if earned > value:
                    most = "no absence" if fewer == 0 else f"at most {fewer} absence"
                    nxt = (
                        f"{number(earned)} points with {most}{'s' if fewer > 1 else ''} in the "
                        "window (absences leave the score as the window moves on)"
                    )
                    break
        elif key == "referrals":
            measured = rate(activity.referrals_given)
            nxt = more_of(key, "referrals_given", plugin.REFERRAL_BANDS, "referrals")
        elif key == "visitors":
            measured = rate(activity.visitors)
            nxt = more_of(key, "visitors", plugin.VISITOR_BANDS, "visitors")
        elif key == "testimonials":
            measured = rate(activity.testimonials_given)
            nxt = more_of(key, "testimonials_given", plugin.TESTIMONIAL_BANDS, "testimonials")
        elif key == "tyfcb":
            have = activity.tyfcb_received
            measured = money(have, currency)
            for threshold in (settings.tyfcb_5, settings.tyfcb_10, settings.tyfcb_15):
                if threshold > have:
                    changed = msgspec.structs.replace(activity, tyfcb_received=threshold)
                    nxt = (
                        f"{money(threshold - have, currency)} more in this window would earn "
                        f"{number(points(changed, key))} points"
                    )
                    break
        elif key == "on_time":
            measured = f"late {activity.late} time{'s' if activity.late != 1 else ''}"
            if activity.late:
                earned = points(msgspec.structs.replace(activity, late=0), key)
                nxt = f"{number(earned)} points with no late arrival in the window"
        elif key == "trainings":
            measured = f"{activity.trainings} completed"
            changed = msgspec.structs.replace(activity, trainings=activity.trainings + 1)
            earned = points(changed, key)
            if earned > value:
                nxt = f"1 more training in this window would earn {number(earned)} points"
        rows.append(Section(key, label, value, top, measured, nxt))
    return rows


def _points(activity: Activity, settings: Any, score: Score) -> list[Section]:
    """The points plugin's components, with what each further item adds (without recency)."""
    currency = activity.currency
    rows = []
    each = {
        "referrals_given": (
            "Referrals given", str(activity.referrals_given),
            getattr(settings, "referral_given", None), "each referral given",
        ),
        "referrals_converted": (
            "Conversions of your referrals", str(activity.referrals_given_converted),
            getattr(settings, "referral_converted", None), "each conversion",
        ),
        "converted_value": (
            "Value converted", money(activity.converted_value_given, currency),
            getattr(settings, "per_1000_converted_value", None),
            f"each 1,000 {currency} converted",
        ),
        "introductions": (
            "Introductions made", str(activity.introductions),
            getattr(settings, "introduction", None), "each introduction",
        ),
    }  # fmt: skip
    linear = getattr(settings, "recency_days", None) is None
    for key, value in score.breakdown.items():
        label, measured, weight, what = each.get(key, (key.capitalize(), "", None, ""))
        if key == "recency":
            label = "Recency adjustment"
        nxt = ""
        if linear and weight:
            nxt = f"{what} adds {number(weight)} point{'s' if weight != 1 else ''}"
        rows.append(Section(key, label, value, None, measured, nxt))
    return rows


# ------------------------------------------------------------------ standing


def _chart(rows: list[Standing], rungs: list[tuple[str, Decimal]]) -> dict[str, Any]:
    """What the history chart draws (``web/static/me.js``): totals by period, the ladder."""
    return {
        "history": [
            {"period": s.period, "total": float(s.total) if s.total is not None else None,
             "label": s.label, "tier": s.tier_name}
            for s in rows
        ],
        "rungs": [{"name": name, "threshold": float(threshold)} for name, threshold in rungs],
    }  # fmt: skip


def _days(standing: Standing) -> tuple[date, date]:
    """The first and the last day of the scoring window (its end is exclusive)."""
    window = standing.window
    return window.start.date(), (window.end - timedelta(microseconds=1)).date()


@get("/n/{network:str}/me", operation_id="memberStanding", guards=[network_guard], opt=MEMBER,
     include_in_schema=False)  # fmt: skip
async def my_standing(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    period: FromQuery[str | None] = None,
) -> Template:
    """The member's standing: score by section, colour, tier, what the next ones take, history."""
    services = services_of(request)
    me = _own_business(request, network)
    found = ensure_network(services, network)
    rules = services.ledger.rules
    db = services.db
    past = history(db, network, me)
    errors: dict[str, str] = {}
    current: Standing | None = None
    if period:
        try:
            chosen = Calendar.of(found).parse(period)
            picked = standings(db, rules, found, chosen, member=me)
            current = picked[0] if picked else None
        except NotFound:
            current = None
        except StoreUnavailable:
            raise
        except DomainError as error:
            errors = {"period": error.reason}
    elif past:
        current = past[-1]
    enabled = _enabled(services, found)
    rungs = ladder(rules, found, enabled)
    with Deliveries(services.database) as deliveries:
        unread = len(deliveries.inbox(network, me, unread_only=True))
    return page(
        request, "me.html", network=network, me=me, name=_names(services, network, db).get(me, me),
        current=current, asked=period, errors=errors, history=past,
        chart=_chart(past, rungs), rungs=rungs, days=_days(current) if current else None,
        colour=next_colour(rules, current) if current else None,
        tier=next_tier(rungs, current) if current else None,
        held=below_tier(rungs, current) if current else None,
        sections=sections(rules, enabled, current) if current else [],
        currency=found.currency, unread=unread, money=money, number=number,
        status_code=422 if errors else 200,
    )  # fmt: skip


# ------------------------------------------------------------------ partners


@get("/n/{network:str}/me/partners", operation_id="memberPartners", guards=[network_guard],
     opt=MEMBER, include_in_schema=False)  # fmt: skip
async def my_partners(request: Request[Any, Any, Any], network: FromPath[str]) -> Template:
    """The member's scorecard with each partner: both directions, reciprocity, agreements, flags."""
    services = services_of(request)
    me = _own_business(request, network)
    found = ensure_network(services, network)
    now = datetime.now(UTC)
    db = services.db
    try:
        cards = scorecards(db, network, member=me, as_of=now)
    except NotFound:
        cards = []  # not in the view yet: no history with anyone
    return page(
        request, "me_partners.html", network=network, me=me, cards=cards, as_of=now,
        names=_names(services, network, db), currency=found.currency, money=money,
        percent=percent, number=number,
    )  # fmt: skip


# ---------------------------------------------------------------- statements


def _periods(network: Network, latest: datetime) -> list[Period]:
    """Every period of the network from its creation to ``latest``, newest first."""
    first = network.created_at or latest
    return list(reversed(Calendar.of(network).between(first, max(first, latest))))


@get("/n/{network:str}/me/statements", operation_id="memberStatements", guards=[network_guard],
     opt=MEMBER, include_in_schema=False)  # fmt: skip
async def my_statements(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    period: FromQuery[str | None] = None,
) -> Template:
    """The member's statement for a period, with a period picker and the CSV link."""
    services = services_of(request)
    me = _own_business(request, network)
    found = ensure_network(services, network)
    db = services.db
    calendar = Calendar.of(found)
    mine = entries(db, network, me)
    now = datetime.now(UTC)
    latest = max([now, *(e.occurred_at for e in mine)])
    options = _periods(found, latest)
    counts: dict[str, int] = {}
    for entry in mine:
        counts[entry.period] = counts.get(entry.period, 0) + 1
    known = {p.name for p in options}
    options += [calendar.parse(name, recorded=True) for name in counts if name not in known]
    options.sort(reverse=True)
    errors: dict[str, str] = {}
    chosen: Period | None = None
    if period:
        try:
            chosen = calendar.parse(period)
        except StoreUnavailable:
            raise
        except DomainError as error:
            errors = {"period": error.reason}
    elif mine:
        chosen = calendar.parse(mine[-1].period, recorded=True)
    else:
        chosen = calendar.containing(now)
    shown = statement(db, found, me, chosen) if chosen is not None else None
    choices = [(p.name, f"{p.name} ({counts[p.name]} entr{'ies' if counts[p.name] != 1 else 'y'})"
                if p.name in counts else p.name) for p in options]  # fmt: skip
    return page(
        request, "me_statements.html", network=network, me=me, statement=shown,
        period=chosen.name if chosen else (period or ""), choices=choices, errors=errors,
        currency=found.currency, money=money, status_code=422 if errors else 200,
    )  # fmt: skip


# --------------------------------------------------------------------- inbox


@get("/n/{network:str}/me/inbox", operation_id="memberInbox", guards=[network_guard], opt=MEMBER,
     include_in_schema=False)  # fmt: skip
async def my_inbox(request: Request[Any, Any, Any], network: FromPath[str]) -> Template:
    """The member's in-app messages, newest first."""
    services = services_of(request)
    me = _own_business(request, network)
    ensure_network(services, network)
    with Deliveries(services.database) as deliveries:
        messages = deliveries.inbox(network, me)
    return page(
        request, "me_inbox.html", network=network, me=me, messages=messages,
        unread=sum(1 for m in messages if m.read_at is None),
    )  # fmt: skip


@post("/n/{network:str}/me/inbox/{id:int}/read", operation_id="memberInboxRead",
      guards=[network_guard], opt=MEMBER, include_in_schema=False)  # fmt: skip
async def mark_read(
    request: Request[Any, Any, Any], network: FromPath[str], id: FromPath[int]
) -> Redirect:
    """Mark one of the member's messages read (another's is not found)."""
    services = services_of(request)
    me = _own_business(request, network)
    with Deliveries(services.database) as deliveries:
        if not any(m.id == id for m in deliveries.inbox(network, me)):
            raise NotFoundException(f"no message {id} in your inbox")
        deliveries.mark_read(id)
    return Redirect(path=f"/n/{network}/me/inbox", status_code=303)


ROUTES = [my_standing, my_partners, my_statements, my_inbox, mark_read]
