"""The network's dashboard: key figures and charts of its history.

``GET /n/{network}/`` shows, to every role of the network:

* the key figures: active members, referrals sent, their conversion rate and
  the converted value (deal values converted minus amounts reversed since);
* referrals sent, conversions and converted value per calendar month, from
  the standings view's daily activity (a reversal counts in the month it
  happened, so the months add up to the converted value);
* the conversion funnel (sent → accepted → converted) and the network graph
  of who refers whom, from the scorecards view measured now: one arrow per
  direction with referrals (the 60 busiest directions; the page says how many
  more there are), its width by their count, dashed when the pair
  is dormant, in the warning colour when the referrals go one way only;
* the members per tier in every period, from the standings view.

Charts are drawn by ``/static/dashboard.js`` with the vendored Chart.js from
JSON blocks of the page; every chart also has a caption and a data table,
and the network graph is an SVG drawn here, so the page needs no script to
be read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from litestar import Request, get
from litestar.params import FromPath
from litestar.response import Template

from partnerledger.domain import Network
from partnerledger.errors import NotFound
from partnerledger.sql import SqlBackend
from partnerledger.views.scorecards import (
    DORMANT_DAYS,
    FLOWS,
    PAIRS,
    Scorecard,
    scorecards,
)
from partnerledger.views.scorecards import _load_agreements as load_agreements
from partnerledger.views.standings import UNITS, Standing, closed_periods, read_period, span

from .pages import NAV, NavItem, page
from .security import network_guard, services_of
from .services import Services, ensure_network

NAV.append(NavItem("Dashboard", "/", order=10))

CENT = Decimal("0.01")
#: Colours of the graph, matching app.css (accent, warning, muted).
EDGE_COLOUR = "#1f5fbf"
WARN_COLOUR = "#b54708"
NO_TIER = "no tier"
#: The busiest directions the graph and its table show (the rest: the members' scorecards).
GRAPH_EDGES = 60
#: Room left around the circle for the names, and their length there.
LABEL_ROOM = 165
LABEL_CHARS = 24


# ------------------------------------------------------------ formatting


def amount(value: Decimal) -> str:
    """Money as plain text with two decimals (half up): ``"20000.00"``."""
    return f"{value.quantize(CENT, rounding=ROUND_HALF_UP):f}"


def money_text(value: Decimal | None, currency: str) -> str:
    """Money for people: ``"20,000.00 USD"``."""
    if value is None:
        return "—"
    return f"{value.quantize(CENT, rounding=ROUND_HALF_UP):,.2f} {currency}"


def percent(numerator: int, denominator: int) -> str:
    """A share as a percentage with one decimal, ``"—"`` when dividing by zero."""
    if not denominator:
        return "—"
    share = (Decimal(numerator) * 100 / Decimal(denominator)).quantize(Decimal("0.1"))
    return f"{share}%"


def now() -> datetime:
    """The moment time-dependent figures (dormant ties) are measured at."""
    return datetime.now(UTC)


# ---------------------------------------------------------------- figures


def _months(first: str, last: str) -> list[str]:
    """Every month ``YYYY-MM`` from ``first`` to ``last``."""
    year, month = int(first[:4]), int(first[5:7])
    found = []
    while f"{year:04d}-{month:02d}" <= last:
        found.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def monthly(db: SqlBackend, network: Network) -> dict[str, Any]:
    """Referrals sent, conversions and converted value per month (UTC), every month of the span.

    Summed by the database from the standings view's counts per day, so the
    work grows with the days of activity, not with the log.
    """
    # The view's own table, named by a constant; every value is a bound parameter.
    table = db.table("partnerledger_standing_counts")
    month = "substr(day, 1, 7)"
    sql = f"SELECT {month}, field, SUM(count), SUM(amount) FROM {table} WHERE network = ?"  # noqa: S608
    _, rows = db.execute(
        f"{sql} AND field IN (?, ?, ?) GROUP BY {month}, field",
        (network.network, "referrals_given", "referrals_given_converted", "converted_value_given"),
    )
    sums: dict[str, dict[str, Decimal]] = {}
    for month, name, count, units in rows:
        value = Decimal(int(units)) / UNITS if name == "converted_value_given" else Decimal(count)
        sums.setdefault(str(month), {})[str(name)] = value
    found = span(db, network.network)
    bounds = sorted(sums)
    if found is not None:
        bounds += [found[0].strftime("%Y-%m"), found[1].strftime("%Y-%m")]
    labels = _months(min(bounds), max(bounds)) if bounds else []
    return {
        "labels": labels,
        "referrals": [int(sums.get(m, {}).get("referrals_given", 0)) for m in labels],
        "conversions": [int(sums.get(m, {}).get("referrals_given_converted", 0)) for m in labels],
        "converted_value": [
            amount(sums.get(m, {}).get("converted_value_given", Decimal(0))) for m in labels
        ],
        "currency": network.currency,
    }


@dataclass(frozen=True)
class Totals:
    """The network's referral figures, summed over its scorecards."""

    sent: int
    accepted: int
    converted: int
    converted_value: Decimal
    dormant: int
    one_sided: int

    @classmethod
    def of(cls, cards: list[Scorecard]) -> Totals:
        """Both directions of every pair (each pair appears once)."""
        flows = [f for c in cards for f in (c.given, c.received)]
        return cls(
            sent=sum(f.sent for f in flows),
            accepted=sum(f.accepted for f in flows),
            converted=sum(f.converted for f in flows),
            converted_value=sum((f.converted_value for f in flows), Decimal(0)),
            dormant=sum(1 for c in cards if c.flags.dormant),
            one_sided=sum(1 for c in cards if c.flags.one_sided),
        )

    def funnel(self) -> dict[str, Any]:
        """The conversion funnel's chart data."""
        return {
            "labels": ["Sent", "Accepted", "Converted"],
            "values": [self.sent, self.accepted, self.converted],
        }


def tiers_over_time(db: SqlBackend, network: Network) -> dict[str, Any]:
    """How many members held each tier in every period (closed or provisional)."""
    table = db.table("partnerledger_standings")
    sql = f"SELECT period, period_start, tier_name, COUNT(*) FROM {table} WHERE network = ?"  # noqa: S608
    _, rows = db.execute(
        f"{sql} GROUP BY period, period_start, tier_name ORDER BY period_start",
        (network.network,),
    )
    periods: list[str] = []
    counts: dict[tuple[str, str], int] = {}
    found: list[str] = []
    for period, _start, tier, count in rows:
        if str(period) not in periods:
            periods.append(str(period))
        name = str(tier) if tier is not None else NO_TIER
        if name not in found:
            found.append(name)
        counts[(str(period), name)] = int(count)
    ladder = [t.name for t in network.tiers]
    order = [t for t in ladder if t in found] + [t for t in found if t not in ladder]
    order = [t for t in order if t != NO_TIER] + ([NO_TIER] if NO_TIER in found else [])
    closed = closed_periods(db, network.network)
    return {
        "labels": periods,
        "closed": [p in closed for p in periods],
        "datasets": [
            {"label": tier, "data": [counts.get((p, tier), 0) for p in periods]} for tier in order
        ],
    }


def latest_standings(db: SqlBackend, network: str) -> tuple[str | None, dict[str, Standing]]:
    """The latest period with standings, and each member's standing in it."""
    sql = f"SELECT period FROM {db.table('partnerledger_standings')} WHERE network = ?"  # noqa: S608
    _, rows = db.execute(f"{sql} ORDER BY period_start DESC LIMIT 1", (network,))
    if not rows:
        return None, {}
    period = str(rows[0][0])
    return period, {s.member: s for s in read_period(db, network, period)}


@dataclass(frozen=True)
class Direction:
    """One direction of a pair with referrals, as the graph draws it."""

    source: str
    target: str
    sent: int
    converted: int
    converted_value: Decimal
    dormant: bool
    one_sided: bool
    days_quiet: int | None


def ties(
    db: SqlBackend, network: str, as_of: datetime, *, limit: int = GRAPH_EDGES,
    dormant_days: int = DORMANT_DAYS,
) -> tuple[Totals, list[Direction], int]:  # fmt: skip
    """The network's totals, its ``limit`` busiest directions and how many more there are.

    From the scorecards view's tables, measured at ``as_of`` as the
    scorecards are (docs/scorecards.md), without building a scorecard per
    pair: one row per direction (bounded by the members, not the history),
    a count of the dormant pairs by the database, and the times of the
    shown pairs only.
    """
    _, flows = db.execute(
        "SELECT member, partner, sent, accepted, converted, deal_value, reversed_value "  # noqa: S608  # the view's own tables
        f"FROM {db.table(FLOWS)} WHERE network = ?",
        (network,),
    )
    sent_by = {(str(r[0]), str(r[1])): int(r[2]) for r in flows}
    cutoff = as_of - timedelta(days=dormant_days)
    _, quiet = db.execute(
        f"SELECT COUNT(*) FROM {db.table(PAIRS)} WHERE network = ? AND last_interaction_at <= ?",  # noqa: S608  # the view's own tables
        (network, db.ts(cutoff)),
    )
    dormant = int(quiet[0][0])
    _, unmet = db.execute(
        f"SELECT member_a, member_b FROM {db.table(PAIRS)} "  # noqa: S608  # the view's own tables
        "WHERE network = ? AND last_interaction_at IS NULL",
        (network,),
    )
    if unmet:  # pairs that only share agreements: quiet since their first one
        agreements = load_agreements(db, network)
        for a, b in unmet:
            theirs = agreements.get((str(a), str(b)), [])
            start = min((x.proposed_at for x in theirs), default=as_of)
            dormant += as_of - start >= timedelta(days=dormant_days)
    pairs = {(min(a, b), max(a, b)) for (a, b), sent in sent_by.items() if sent}
    one_sided = sum(
        1 for a, b in pairs if (sent_by.get((a, b), 0) > 0) != (sent_by.get((b, a), 0) > 0)
    )
    totals = Totals(
        sent=sum(int(r[2]) for r in flows),
        accepted=sum(int(r[3]) for r in flows),
        converted=sum(int(r[4]) for r in flows),
        converted_value=sum((Decimal(str(r[5])) - Decimal(str(r[6])) for r in flows), Decimal(0)),
        dormant=dormant,
        one_sided=one_sided,
    )
    busiest = sorted((r for r in flows if int(r[2]) > 0), key=lambda r: (-int(r[2]), r[0], r[1]))
    shown = busiest[:limit]
    last: dict[tuple[str, str], datetime] = {}
    if shown:
        slugs = sorted({str(m) for r in shown for m in r[:2]})
        marks = ", ".join("?" for _ in slugs)
        _, times = db.execute(
            f"SELECT member_a, member_b, last_interaction_at FROM {db.table(PAIRS)} "  # noqa: S608  # the view's own tables
            f"WHERE network = ? AND member_a IN ({marks}) AND member_b IN ({marks})",
            (network, *slugs, *slugs),
        )
        last = {(str(a), str(b)): db.dt(t) for a, b, t in times if t is not None}
    directions = []
    for member, partner, sent, _, converted, deal, reversed_value in shown:
        source, target = str(member), str(partner)
        moment = last.get((min(source, target), max(source, target)))
        directions.append(
            Direction(
                source=source,
                target=target,
                sent=int(sent),
                converted=int(converted),
                converted_value=Decimal(str(deal)) - Decimal(str(reversed_value)),
                dormant=moment is not None and as_of - moment >= timedelta(days=dormant_days),
                one_sided=not sent_by.get((target, source), 0),
                days_quiet=max((as_of - moment).days, 0) if moment is not None else None,
            )
        )
    return totals, directions, len(busiest) - len(shown)


# ----------------------------------------------------------- network graph


@dataclass(frozen=True)
class Node:
    """A member on the graph's circle."""

    slug: str
    name: str
    status: str
    x: float
    y: float
    label_x: float
    label_y: float
    anchor: str
    rotate: float  # degrees: labels point away from the centre, so they never overlap

    @property
    def label(self) -> str:
        """The name, shortened for the drawing (the title has it whole)."""
        return self.name if len(self.name) <= LABEL_CHARS else self.name[: LABEL_CHARS - 1] + "…"


@dataclass(frozen=True)
class Edge:
    """One direction with referrals, drawn as an arrow."""

    source: str
    target: str
    source_name: str
    target_name: str
    sent: int
    converted: int
    converted_value: str
    dormant: bool
    one_sided: bool
    days_quiet: int | None
    x1: float
    y1: float
    x2: float
    y2: float
    width: float

    @property
    def colour(self) -> str:
        """The warning colour for a one-sided tie."""
        return WARN_COLOUR if self.one_sided else EDGE_COLOUR

    @property
    def flags(self) -> list[str]:
        """The raised flags, as the legend names them."""
        return [n for n, on in (("one-sided", self.one_sided), ("dormant", self.dormant)) if on]

    @property
    def title(self) -> str:
        """What a pointer or a screen reader is told about the arrow."""
        plural = "" if self.sent == 1 else "s"
        text = (
            f"{self.source_name} → {self.target_name}: {self.sent} referral{plural} sent, "
            f"{self.converted} converted"
        )
        notes = []
        if self.dormant:
            quiet = f" ({self.days_quiet} days without an interaction)" if self.days_quiet else ""
            notes.append(f"dormant{quiet}")
        if self.one_sided:
            notes.append("one-sided: nothing comes back")
        return text + (f"; {', '.join(notes)}" if notes else "")


@dataclass
class Graph:
    """Who refers whom: members on a circle, an arrow per direction with referrals."""

    width: int
    height: int
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    node_radius: int = 9
    #: Directions with referrals left out (beyond the :data:`GRAPH_EDGES` busiest).
    hidden: int = 0

    @property
    def opacity(self) -> float:
        """Arrows fade a little when there are many, so crossings stay readable."""
        return 0.9 if len(self.edges) <= 20 else 0.6 if len(self.edges) <= 100 else 0.4


def network_graph(
    members: list[Any], directions: list[Direction], currency: str, hidden: int = 0
) -> Graph:
    """Lay out the members (all but those who left, and anyone with referrals) and the arrows.

    The circle grows with the members, so neighbours keep apart; names are
    written outwards along their radius. ``hidden``: directions not drawn.
    """
    names = {m.slug: m.name for m in members}
    status = {m.slug: m.status for m in members}
    involved = {s for d in directions for s in (d.source, d.target)}
    slugs = [m.slug for m in members if m.status != "left" or m.slug in involved]
    slugs += sorted(involved - set(slugs))
    radius = max(130, min(320, 7 * len(slugs)))
    size = 2 * (radius + 9 + LABEL_ROOM)
    graph = Graph(width=size, height=size, hidden=hidden)
    cx = cy = size / 2
    where: dict[str, tuple[float, float]] = {}
    for index, slug in enumerate(slugs):
        angle = -math.pi / 2 + 2 * math.pi * index / max(len(slugs), 1)
        cos, sin = math.cos(angle), math.sin(angle)
        x, y = cx + radius * cos, cy + radius * sin
        where[slug] = (x, y)
        out = radius + graph.node_radius + 5
        degrees = math.degrees(angle)
        graph.nodes.append(
            Node(
                slug=slug,
                name=names.get(slug, slug),
                status=status.get(slug, ""),
                x=round(x, 1),
                y=round(y, 1),
                label_x=round(cx + out * cos, 1),
                label_y=round(cy + out * sin, 1),
                anchor="start" if cos >= -1e-9 else "end",
                rotate=round(degrees if cos >= -1e-9 else degrees + 180, 1),
            )
        )
    most = max((d.sent for d in directions), default=1)
    for d in directions:
        (ax, ay), (bx, by) = where[d.source], where[d.target]
        length = math.hypot(bx - ax, by - ay) or 1.0
        ux, uy = (bx - ax) / length, (by - ay) / length
        # Each direction keeps to its own side of the pair's line, so both show.
        nx, ny = -uy * 4, ux * 4
        start, end = graph.node_radius + 2, graph.node_radius + 8
        graph.edges.append(
            Edge(
                source=d.source,
                target=d.target,
                source_name=names.get(d.source, d.source),
                target_name=names.get(d.target, d.target),
                sent=d.sent,
                converted=d.converted,
                converted_value=money_text(d.converted_value, currency),
                dormant=d.dormant,
                one_sided=d.one_sided,
                days_quiet=d.days_quiet,
                x1=round(ax + ux * start + nx, 1),
                y1=round(ay + uy * start + ny, 1),
                x2=round(bx - ux * end + nx, 1),
                y2=round(by - uy * end + ny, 1),
                width=round(1.5 + 4.5 * d.sent / most, 2),
            )
        )
    return graph


# -------------------------------------------------------------------- page


def cards_of(db: SqlBackend, network: str, member: str | None = None) -> list[Scorecard]:
    """The scorecards measured now; none while the views have not read the network yet.

    On PostgreSQL a worker keeps the views: right after a network or member
    appears they may not know it for a moment.
    """
    try:
        return scorecards(db, network, member=member, as_of=now())
    except NotFound:
        return []


def dashboard_context(services: Services, network: Network) -> dict[str, Any]:
    """Everything the dashboard shows."""
    db = services.db
    members = services.members(network.network, db)
    totals, directions, hidden = ties(db, network.network, now())
    active = sum(1 for m in members if m.status == "active")
    series = monthly(db, network)
    return {
        "info": network,
        "kpis": [
            ("Active members", str(active), f"of {len(members)} in the network"),
            ("Referrals sent", str(totals.sent), f"{totals.accepted} accepted"),
            (
                "Conversion rate",
                percent(totals.converted, totals.sent),
                f"{totals.converted} converted",
            ),
            (
                "Converted value",
                money_text(totals.converted_value, network.currency),
                "net of reversals",
            ),
        ],
        "totals": totals,
        "monthly": series,
        "monthly_rows": list(
            zip(
                series["labels"],
                series["referrals"],
                series["conversions"],
                [money_text(Decimal(v), network.currency) for v in series["converted_value"]],
                strict=True,
            )
        ),
        "funnel": totals.funnel(),
        "tiers": tiers_over_time(db, network),
        "graph": network_graph(members, directions, network.currency, hidden),
        "dormant_days": DORMANT_DAYS,
    }


@get(
    "/n/{network:str}/",
    operation_id="dashboardPage",
    guards=[network_guard],
    include_in_schema=False,
)
async def dashboard_page(request: Request[Any, Any, Any], network: FromPath[str]) -> Template:
    """The network's key figures and charts."""
    services = services_of(request)
    found = ensure_network(services, network)
    return page(request, "dashboard.html", network=network, **dashboard_context(services, found))


ROUTES = [dashboard_page]

__all__ = [
    "ROUTES",
    "Graph",
    "Totals",
    "amount",
    "cards_of",
    "dashboard_context",
    "latest_standings",
    "money_text",
    "monthly",
    "network_graph",
    "tiers_over_time",
]
