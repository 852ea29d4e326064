"""Standings computed now: each member's score and tier under the network's rules.

The window a score covers is the scoring plugin's own ``window_months``
setting when it has one (traffic lights: the last six months), else the
network's evaluation period ending at ``as_of`` (a month, a quarter, or the
rolling number of days). Nothing is written: the recorded decisions of a
period close are a later step; this is the provisional view.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .activity import last_months, member_activities
from .domain import Network, network_id
from .errors import NotFound
from .ledger import Ledger
from .pluginmanager import Rules
from .rules import Activity, Decision, Score, Window


@dataclass(frozen=True)
class Standing:
    """One member's provisional standing."""

    member: str
    status: str
    activity: Activity
    score: Decision | None  # a Score decision, None when no scoring plugin is enabled
    tier: Decision | None  # a TierChoice decision, None when no tiering plugin decided


def scoring_window(
    network: Network, rules: Rules, enabled: dict[str, object], as_of: datetime
) -> Window:
    """The window to score: a scoring plugin's ``window_months``, else the network's period."""
    for name, settings in enabled.items():
        if not rules.implements(name, "partnerledger_score"):
            continue
        months = getattr(settings, "window_months", None)
        if isinstance(months, int):
            return last_months(as_of, months)
    if network.period == "rolling" and network.rolling_days:
        return Window(start=as_of - timedelta(days=network.rolling_days), end=as_of)
    return last_months(as_of, 3 if network.period == "quarter" else 1)


def standings(
    ledger: Ledger, network: str, as_of: datetime, *, member: str | None = None
) -> list[Standing]:
    """Every member's (or one member's) standing as of a business time."""
    work = ledger.unit_of_work()
    found = work.load(Network, network_id(network))
    if found is None:
        raise NotFound("network", f"no network {network!r}")
    enabled = work.enabled(found)
    window = scoring_window(found, ledger.rules, enabled, as_of)
    activities = member_activities(ledger.store, network, window)
    if member is not None:
        if member not in activities:
            raise NotFound("member", f"no member {member!r} in network {network!r}")
        activities = {member: activities[member]}
    result = []
    for slug, activity in activities.items():
        status = work.member(network, slug, "member").status
        score = ledger.rules.score(activity, enabled)
        tier = None
        if isinstance(score, Decision) and isinstance(score.value, Score):
            tier = ledger.rules.tier(score.value, found.tiers, enabled)
        result.append(Standing(slug, status, activity, score, tier))
    return result
