"""Closing a period: decide every member's tier and statement for good, and ask "what if".

:func:`plan_close` computes what a close would record, from the views (brought
up to the end of the log first) and the network's plugins as they are now:

* ``period.closed``, naming every enabled plugin with its version and settings;
* one ``tier.decided`` per member of the period: the score and tier decisions
  (each with its plugin's name and version), the previous tier and the
  periods already spent below it, the settings of the plugins that decided,
  and the inputs (the member's activity in the window) with their SHA-256;
* one ``statement.closed`` per member with ledger entries in the period:
  opening balance, the entries (the period's conversions, reversals and
  payouts, and the tier bonuses the incentive plugins give for the decided
  tiers) and closing balance.

:func:`close_period` records them, all in one transaction, and nothing when
any of them is refused, then signs a checkpoint of the network's Merkle tree
(see ``docs/audit.md``). :func:`what_if` recomputes a closed period with
today's rules and shows the difference from what was recorded, writing
nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from .audit.checkpoints import SignedCheckpoint, record_checkpoint
from .commands import (
    PeriodClosed,
    RuleInForce,
    StatementClosed,
    StatementLine,
    TierDecided,
)
from .domain import Network
from .errors import AlreadyExists, ConcurrencyConflict, InvalidTransition, LogChanged
from .events import Event, decode_event
from .ledger import Ledger, UnitOfWork
from .periods import Calendar, Period
from .pluginmanager import PluginFailed, plugin_version
from .projection import Projector
from .rules import LedgerEntry, TierChoice
from .views import ledger as ledger_view
from .views import standings as standings_view
from .views.standings import Standing


@dataclass
class ClosePlan:
    """What closing a period records (or recorded)."""

    network: str
    period: Period
    decisions: list[Standing]
    statements: list[StatementClosed]
    events: list[Event] = field(default_factory=list)
    recorded: bool = False
    #: The signed checkpoint recorded right after the close.
    checkpoint: SignedCheckpoint | None = None
    #: The log position the views were read at: the close is written only if no
    #: event of its network was stored after it (else it is decided again).
    through: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "network": self.network,
            "period": self.period.name,
            "start": self.period.start.isoformat(),
            "end": self.period.end.isoformat(),
            "recorded": self.recorded,
            "events": len(self.events),
            "decisions": [{**d.as_dict(), "closed": self.recorded} for d in self.decisions],
            "statements": [
                {
                    "member": s.member,
                    "opening": ledger_view.money(s.opening),
                    "entries": len(s.entries),
                    "closing": ledger_view.money(s.closing),
                }
                for s in self.statements
            ],
        }


def _rules_in_force(work: UnitOfWork, network: Network, names: list[str]) -> list[RuleInForce]:
    return [
        RuleInForce(
            plugin=name,
            version=plugin_version(work.rules.plugin(name)),
            settings=dict(network.plugins.get(name, {})),
        )
        for name in names
        if work.rules.plugin(name) is not None
    ]


def plan_close(
    ledger: Ledger,
    projector: Projector,
    network: str,
    period: str,
    *,
    actor: str,
    at: datetime,
) -> tuple[ClosePlan, UnitOfWork]:
    """Decide the close of a period in a unit of work, without committing it."""
    # The position first, then the views: they reflect at least every event up to it.
    through = ledger.store.last_position()
    projector.catch_up()
    work = ledger.unit_of_work()
    found = work.network(network)
    chosen = Calendar.of(found).parse(period)
    if at < chosen.end:
        raise InvalidTransition(
            "period",
            f"period {chosen.name} has not ended yet (it ends {chosen.end:%Y-%m-%d %H:%M} UTC)",
        )
    db = projector.db
    closed = standings_view.closed_periods(db, network)
    if chosen.name in closed:
        raise AlreadyExists("period", f"period {chosen.name} is already closed")
    calendar = Calendar.of(found)
    later = sorted(p for p in (calendar.parse(n, recorded=True) for n in closed) if p > chosen)
    if later:
        raise InvalidTransition(
            "period",
            f"period {later[-1].name} is already closed; periods close in order, so "
            f"{chosen.name} can no longer be closed",
        )
    enabled = work.enabled(found)
    previous = {
        s.member: s
        for s in standings_view.read_period(db, network, Calendar.of(found).before(chosen).name)
    }
    statuses = standings_view.statuses(db, network)
    decisions = [
        replace(d, status=statuses.get(d.member, ""))
        for d in standings_view.compute(db, ledger.rules, found, enabled, chosen, previous)
    ]
    failed = [d for d in decisions if d.problem]
    if failed:
        raise PluginFailed("plugin", f"{failed[0].member}: {failed[0].problem}")
    work.decide(
        PeriodClosed(
            network=network,
            actor=actor,
            occurred_at=at,
            period=chosen.name,
            rules=tuple(_rules_in_force(work, found, list(enabled))),
        )
    )
    bonuses: dict[str, list[StatementLine]] = {}
    tiers = [
        TierDecided(
            network=network,
            actor=actor,
            occurred_at=at,
            period=chosen.name,
            member=standing.member,
            inputs=standing.activity,
            inputs_digest=standings_view.inputs_digest(standing.activity),
            score=standing.score,
            tier=standing.tier,
            previous=standing.previous,
            periods_below=standing.periods_below,
            rules=tuple(
                _rules_in_force(
                    work,
                    found,
                    list(dict.fromkeys(d.plugin for d in (standing.score, standing.tier) if d)),
                )
            ),
        )
        for standing in decisions
    ]
    # The members' streams in one query, not one per member.
    work.prefetch(tiers)
    for standing, decided in zip(decisions, tiers, strict=True):
        event = work.decide(decided)
        assert event is not None
        choice = standing.tier.value if standing.tier else None
        if isinstance(choice, TierChoice):
            for decision in ledger.rules.incentives(event, enabled, tier=choice):
                entry = decision.value
                assert isinstance(entry, LedgerEntry)
                if entry.currency != found.currency:
                    continue  # the ledger keeps the network's currency only
                bonuses.setdefault(entry.member, []).append(
                    StatementLine(
                        source=event.command_id,
                        source_type=event.type,
                        occurred_at=at,
                        plugin=decision.plugin,
                        version=decision.version,
                        kind=entry.kind,
                        amount=entry.amount,
                        note=entry.note,
                    )
                )
    statements = []
    by_member: dict[str, list[StatementLine]] = {}
    for earned in ledger_view.period_entries(db, network, chosen.name):
        by_member.setdefault(earned.member, []).append(
            StatementLine(
                source=earned.source,
                source_type=earned.source_type,
                occurred_at=earned.occurred_at,
                plugin=earned.plugin,
                version=earned.version,
                kind=earned.kind,  # type: ignore[arg-type]  # the view stores only these kinds
                amount=earned.amount,
                note=earned.note,
            )
        )
    for member, lines in bonuses.items():
        by_member.setdefault(member, []).extend(lines)
    for member, lines in by_member.items():
        opening = ledger_view.statement(db, found, member, chosen).opening
        closing = opening + sum((line.amount for line in lines), Decimal(0))
        statement = StatementClosed(
            network=network,
            actor=actor,
            occurred_at=at,
            period=chosen.name,
            member=member,
            currency=found.currency,
            opening=opening,
            closing=closing,
            entries=tuple(lines),
        )
        work.decide(statement)
        statements.append(statement)
    plan = ClosePlan(network, chosen, decisions, statements, list(work.pending), through=through)
    return plan, work


#: How many times a close is decided again when its network changed meanwhile.
CLOSE_ATTEMPTS = 5


def _of_network(network: str) -> Callable[[list[bytes]], bool]:
    """Whether any of these stored events belongs to ``network``."""

    def moved(states: list[bytes]) -> bool:
        return any(decode_event(state).command.network == network for state in states)

    return moved


def close_period(
    ledger: Ledger,
    projector: Projector,
    network: str,
    period: str,
    *,
    actor: str,
    at: datetime,
) -> ClosePlan:
    """Close a period: record its tier decisions and statements, all or nothing."""
    for attempt in range(1, CLOSE_ATTEMPTS + 1):
        plan, work = plan_close(ledger, projector, network, period, actor=actor, at=at)
        try:
            work.commit(unchanged_after=(plan.through, _of_network(network)))
            break
        except LogChanged as error:
            # An event of the network (a conversion, say) was stored after the views were
            # read: the statements would miss it. Decide the close again, with it.
            if attempt == CLOSE_ATTEMPTS:
                raise ConcurrencyConflict(
                    "period",
                    f"the network changed while the close of {period} was decided, "
                    f"{CLOSE_ATTEMPTS} times in a row; nothing was written, try again",
                ) from error
    plan.recorded = True
    projector.catch_up()
    # Every close is signed: the network's tree as it stands with the close in it.
    plan.checkpoint = record_checkpoint(projector, network)
    return plan


@dataclass(frozen=True)
class WhatIf:
    """One member's recorded decision for a closed period beside today's rules' decision."""

    member: str
    recorded: Standing | None
    today: Standing | None

    @property
    def changed(self) -> bool:
        """Whether the score, the colour or the tier would differ."""
        if self.recorded is None or self.today is None:
            return True
        return (
            self.recorded.total != self.today.total
            or self.recorded.label != self.today.label
            or _decided(self.recorded) != _decided(self.today)
        )

    @property
    def inputs_changed(self) -> bool:
        """Whether the activity read today differs from the inputs recorded."""
        if self.recorded is None or self.today is None:
            return True
        return self.recorded.activity != self.today.activity

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""

        def side(s: Standing | None) -> dict[str, Any] | None:
            if s is None:
                return None
            return {
                "score": str(s.total) if s.total is not None else None,
                "label": s.label,
                "tier": _decided(s),
                "in_force": s.tier_name,
                "scoring_plugin": (
                    {"name": s.score.plugin, "version": s.score.version} if s.score else None
                ),
                "tiering_plugin": (
                    {"name": s.tier.plugin, "version": s.tier.version} if s.tier else None
                ),
                "inputs_digest": standings_view.inputs_digest(s.activity),
            }

        return {
            "member": self.member,
            "changed": self.changed,
            "inputs_changed": self.inputs_changed,
            "recorded": side(self.recorded),
            "what_if": side(self.today),
        }


def _decided(standing: Standing) -> str | None:
    value = standing.tier.value if standing.tier else None
    return value.tier if isinstance(value, TierChoice) else None


def what_if(ledger: Ledger, projector: Projector, network: str, period: str) -> list[WhatIf]:
    """What today's rules would decide for a closed period, beside what was recorded."""
    projector.catch_up()
    work = ledger.unit_of_work()
    found = work.network(network)
    calendar = Calendar.of(found)
    chosen = calendar.parse(period)
    db = projector.db
    if chosen.name not in standings_view.closed_periods(db, network):
        raise InvalidTransition("period", f"period {chosen.name} is not closed")
    recorded = {s.member: s for s in standings_view.read_period(db, network, chosen.name)}
    previous = {
        s.member: s for s in standings_view.read_period(db, network, calendar.before(chosen).name)
    }
    today = {
        s.member: s
        for s in standings_view.compute(
            db, ledger.rules, found, work.enabled(found), chosen, previous
        )
    }
    members = list(dict.fromkeys([*recorded, *today]))
    return [WhatIf(m, recorded.get(m), today.get(m)) for m in members]


__all__ = ["ClosePlan", "WhatIf", "close_period", "plan_close", "what_if"]
