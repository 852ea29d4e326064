"""Recorded decisions, recomputed from the log with the rules recorded, beside today's what-if.

A period close records its decisions as events (``tier.decided``,
``statement.closed``; see ``docs/periods.md``). :func:`check_decisions` reads
a network's events in log order (any iterable: a store's log, or the events
of an audit bundle, with no database) and, for every recorded decision:

* **tier** (each ``tier.decided``): recomputes the member's inputs (the
  activity in the window the recorded rules score) from the events before
  the close and compares their digest with the recorded ``inputs_digest``;
  checks the previous tier and the periods below it against the previous
  period's recorded decisions when that period was closed; then calls the
  recorded scoring and tiering plugins, by the names recorded in the
  decisions and with the settings recorded in the event, on those inputs
  and compares the score and the tier with the recorded ones;
* **statement_entry** (each line of a ``statement.closed``): recomputes the
  incentive of its source event with the recorded plugin (at the recorded
  version), the settings in force then (from the log; a tier bonus: the
  settings recorded by ``period.closed``) and the referral and agreement
  terms as they stood right after the source event; a payout line from the
  ``payout.recorded`` event;
* **statement** (each ``statement.closed``): the opening balance (the
  member's entries of every earlier period: the recorded lines of closed
  statements, the recomputed entries of periods never closed), the entries
  the rules give for the period (none missing) and the closing balance.

A plugin that is not installed, or installed at another version than the one
recorded, is never used: the decision is reported ``rules unavailable``
(naming the plugin, the recorded and the installed version). Events that do
not hold the whole history before a decision (an aggregate's stream with a
gap, or no ``network.created``) make its inputs ``inputs unavailable``; what
can still be checked (the recorded rules on the recorded inputs) is. A
difference is ``mismatch``, field by field, and never replaced by the
recomputed value.

With ``today`` (usually the installed rules), each check carries the
``what_if``: the same decision with today's rules and the network's current
settings (from the last events), as :func:`partnerledger.closing.what_if`
shows it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import msgspec

from ..activity import activities_of
from ..closing import WhatIf
from ..commands import (
    PayoutRecorded,
    PeriodClosed,
    ReferralConverted,
    ReferralReversed,
    RuleInForce,
    StatementClosed,
    StatementLine,
    Terms,
    TierDecided,
    TierOverridden,
)
from ..domain import Network
from ..errors import DomainError
from ..events import Event
from ..periods import Calendar, Period
from ..pluginmanager import PluginFailed, Rules, plugin_version
from ..projection import Networks
from ..replay import _History
from ..rules import Activity, Decision, LedgerEntry, ReferralFacts, Score, TierChoice, Window
from ..rules import inputs_digest as digest_of
from ..store import Store
from ..views.ledger import PAYOUT_PLUGIN, PAYOUT_VERSION, money
from ..views.standings import UNITS, Standing, _ladder, decide, period_window

Kind = Literal["tier", "statement", "statement_entry"]
Status = Literal["match", "mismatch", "rules unavailable", "inputs unavailable"]
#: Every status, in the order summaries list them.
STATUSES: tuple[Status, ...] = ("match", "mismatch", "rules unavailable", "inputs unavailable")
_NOTE = "note"


@dataclass(frozen=True)
class Detail:
    """One finding of a check: the field, what was found, and both sides when they differ.

    ``status`` is ``"mismatch"``, ``"rules unavailable"``, ``"inputs
    unavailable"`` or ``"note"`` (information that does not change the status).
    """

    field: str
    reason: str
    status: str = "mismatch"
    recorded: Any = None
    recomputed: Any = None

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        found: dict[str, Any] = {"field": self.field, "status": self.status, "reason": self.reason}
        if self.recorded is not None or self.recomputed is not None:
            found["recorded"] = self.recorded
            found["recomputed"] = self.recomputed
        return found


@dataclass
class DecisionCheck:
    """A recorded decision beside its recomputation with the recorded rules, and today's."""

    kind: Kind
    network: str
    period: str
    member: str
    position: int | None  # the recorded event's log position (None when the events had none)
    command_id: str  # the recorded event's command id
    recorded: dict[str, Any]
    recomputed: dict[str, Any] | None
    status: Status
    details: list[Detail] = field(default_factory=list)
    #: The same decision with today's rules and settings (``None`` without ``today``).
    what_if: dict[str, Any] | None = None
    #: For a statement entry: its index among the statement's entries.
    entry: int | None = None

    @property
    def differences(self) -> list[Detail]:
        """The details that make it a mismatch."""
        return [d for d in self.details if d.status == "mismatch"]

    @property
    def summary(self) -> str:
        """One line: what was checked, its status and the first findings."""
        what = f"{self.kind} {self.period} {self.member}"
        if self.entry is not None:
            what += f" entry {self.entry}"
        shown = (
            [d for d in self.details if d.status == self.status] if self.status != "match" else []
        )
        findings = "; ".join(_finding(d) for d in shown[:3])
        more = f" (and {len(shown) - 3} more)" if len(shown) > 3 else ""
        return f"{what}: {self.status}" + (f": {findings}{more}" if findings else "")

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON (money and scores as strings)."""
        found: dict[str, Any] = {
            "summary": self.summary,
            "kind": self.kind,
            "network": self.network,
            "period": self.period,
            "member": self.member,
            "position": self.position,
            "command_id": self.command_id,
            "status": self.status,
            "recorded": self.recorded,
            "recomputed": self.recomputed,
            "details": [d.as_dict() for d in self.details],
            "what_if": self.what_if,
        }
        if self.entry is not None:
            found["entry"] = self.entry
        return found

    # -- one line of text per side, for tables ---------------------------

    @property
    def recorded_text(self) -> str:
        """The recorded result in a few words."""
        return _text(self.kind, self.recorded)

    @property
    def recomputed_text(self) -> str:
        """The recomputed result in a few words ("-" when nothing could be recomputed)."""
        return _text(self.kind, self.recomputed) if self.recomputed is not None else "-"

    @property
    def what_if_text(self) -> str:
        """Today's rules' result in a few words, and whether it differs."""
        if self.what_if is None:
            return "-"
        if self.kind == "tier":
            today = self.what_if.get("what_if")
            if today is None:
                return "-"
            side = {"result": today}
        else:
            side = self.what_if
        if side.get("result") is None and self.kind != "tier":
            return str(self.what_if.get("note", "-"))
        text = _text(self.kind, side)
        return text + (" (changed)" if self.what_if.get("changed") else " (same)")


def _finding(detail: Detail) -> str:
    if detail.recorded is None and detail.recomputed is None:
        return str(detail)
    return f"{detail} (recorded {detail.recorded}, recomputed {detail.recomputed})"


def _text(kind: Kind, side: Mapping[str, Any] | None) -> str:
    if side is None:
        return "-"
    result = side.get("result") or {}
    if kind == "tier":
        decided = side.get("tiering", True)  # a what-if side names no plugins: it decided
        parts = [
            str(result.get("score") if result.get("score") is not None else "-"),
            str(result.get("label") or ""),
            str(result.get("tier") or ("no tier" if decided else "-")),
        ]
        return " ".join(p for p in parts if p)
    if kind == "statement":
        entries = result.get("entries", 0)
        return (
            f"{result.get('opening', '-')} → {result.get('closing', '-')} "
            f"({entries} {'entry' if entries == 1 else 'entries'})"
        )
    if not result:
        return "-"
    return f"{result.get('kind', '')} {result.get('amount', '')}".strip()


def summary(checks: Iterable[DecisionCheck]) -> dict[str, int]:
    """How many checks have each status (every status named, zeros included)."""
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for check in checks:
        counts[check.status] += 1
    return counts


# ------------------------------------------------------------------ plain data


def _plain(value: Any) -> Any:
    """Decimals as strings, times as ISO 8601: what JSON shows."""
    return msgspec.to_builtins(value, enc_hook=str)


def _rule(rule: RuleInForce) -> dict[str, Any]:
    return {"plugin": rule.plugin, "version": rule.version, "settings": _plain(rule.settings)}


def _tier_result(score: Decision | None, tier: Decision | None) -> dict[str, Any]:
    value = score.value if score is not None else None
    choice = tier.value if tier is not None else None
    return {
        "score": str(value.total) if isinstance(value, Score) else None,
        "label": value.label if isinstance(value, Score) else None,
        "breakdown": (
            {k: str(v) for k, v in value.breakdown.items()} if isinstance(value, Score) else {}
        ),
        "tier": choice.tier if isinstance(choice, TierChoice) else None,
        "reason": choice.reason if isinstance(choice, TierChoice) else None,
    }


def _named(decision: Decision | None) -> dict[str, str] | None:
    return {"plugin": decision.plugin, "version": decision.version} if decision else None


def _window(window: Window) -> dict[str, str]:
    return {"start": _plain(window.start), "end": _plain(window.end)}


def _line(line: StatementLine) -> dict[str, Any]:
    return {
        "source": line.source,
        "source_type": line.source_type,
        "occurred_at": _plain(line.occurred_at),
        "kind": line.kind,
        "amount": money(line.amount),
        "note": line.note,
    }


def like_view(activity: Activity) -> Activity:
    """An activity with its amounts written as the standings view writes them.

    The view sums amounts in units of 1/10,000 and divides back
    (``Decimal(units) / 10000``: 1900.00 is written ``1900``); a digest is
    of the written form, so a recomputed activity is written the same way.
    """
    return msgspec.structs.replace(
        activity,
        converted_value_given=Decimal(int(activity.converted_value_given * UNITS)) / UNITS,
        tyfcb_received=Decimal(int(activity.tyfcb_received * UNITS)) / UNITS,
    )


def _activity_differences(recorded: Activity, recomputed: Activity) -> list[Detail]:
    found = []
    mine = msgspec.structs.asdict(recorded)
    theirs = msgspec.structs.asdict(recomputed)
    for name, value in mine.items():
        if theirs.get(name) != value:
            found.append(
                Detail(
                    f"inputs.{name}",
                    "differs from the log",
                    recorded=_plain(value),
                    recomputed=_plain(theirs.get(name)),
                )
            )
    return found


# ------------------------------------------------------------------ the walk


@dataclass
class _Close:
    """A period's close as the walk met it."""

    period: Period
    position: int | None
    index: int  # of period.closed in the network's events
    rules: tuple[RuleInForce, ...]
    network: Network  # a copy of the network's state at the close
    #: member → (tier in force, streak) of the recorded decisions
    tiers: dict[str, tuple[str | None, int]] = field(default_factory=dict)
    decisions: list[tuple[int | None, Event]] = field(default_factory=list)
    activities: dict[Window, dict[str, Activity]] = field(default_factory=dict)
    bonuses: list[tuple[Event, Decision]] | None = None


@dataclass
class _Source:
    """An event that earns ledger entries, with what the rules read about it then."""

    position: int | None
    event: Event
    settings: dict[str, dict[str, Any]]  # the network's plugin settings at the event
    facts: ReferralFacts | None = None
    terms: Terms | None = None
    decisions: list[Decision] = field(default_factory=list)
    problem: str | None = None  # a plugin failed, or the referral's history is missing
    unavailable: dict[str, str] = field(default_factory=dict)  # plugin → why it was not called


@dataclass
class _Entry:
    """One entry of the ledger as the walk rebuilds it."""

    member: str
    period: Period
    source: str
    plugin: str
    version: str
    kind: str
    amount: Decimal
    note: str
    occurred_at: datetime
    source_type: str
    recorded: bool = False


class _Checker:
    def __init__(self, rules: Rules, network: str, period: str | None, today: Rules | None) -> None:
        self.rules = rules
        self.slug = network
        self.period = period
        self.today = today
        self.log: list[tuple[int | None, Event]] = []
        self.history = _History()
        self.networks: Networks | None = None
        self.created = False
        self.versions: dict[int, int] = {}  # stream (its UUID as an int) → last version
        self.gaps: list[str] = []
        self.network_gap = False
        self.closes: dict[str, _Close] = {}
        self.latest_closed: Period | None = None
        self.sources: dict[str, _Source] = {}
        self.entries: dict[str, list[_Entry]] = {}  # member → entries
        self.tainted: dict[str, str] = {}  # period name → why its entries are uncertain
        self.overrides: dict[tuple[str, str], str | None] = {}
        self.checks: list[DecisionCheck] = []
        self.later: list[Callable[[], None]] = []  # statements' what-ifs, computed at the end
        #: tier checks, with their decisions and closes: overrides and what-ifs come at the end
        self.decided: list[tuple[DecisionCheck, TierDecided, _Close | None]] = []
        self.today_enabled: dict[str, Any] | None = None
        self.today_activities: dict[Window, dict[str, Activity]] = {}

    # -- the network as of now -------------------------------------------

    @property
    def network(self) -> Network | None:
        return self.history.network

    def enabled(self) -> dict[str, Any]:
        """The network's installed plugins with their validated settings, now."""
        if self.networks is None:
            return {}
        return self.networks.enabled(self.slug)

    def calendar(self) -> Calendar:
        assert self.network is not None
        return Calendar.of(self.network)

    def complete(self) -> str | None:
        """Why the events so far do not hold the whole history (``None``: they do)."""
        if not self.created:
            return "the events do not hold the network's creation (network.created)"
        if self.gaps:
            more = f" (and {len(self.gaps) - 1} more)" if len(self.gaps) > 1 else ""
            return f"the events do not hold the whole history: {self.gaps[0]}{more}"
        return None

    def wanted(self, period: str) -> bool:
        return self.period is None or self.period == period

    # -- reading ----------------------------------------------------------

    def run(self, events: Iterable[Event] | Iterable[tuple[int, Event]]) -> list[DecisionCheck]:
        for position, event in _numbered(events):
            if event.command.network != self.slug:
                continue
            self.log.append((position, event))
            self._gap(event)
            try:
                self.history.apply(position if position is not None else len(self.log), event)
            except Exception as error:  # a stream whose beginning is missing
                self.gaps.append(f"{event.type} {event.command_id} does not apply: {error}")
            if self.networks is None and self.network is not None:
                self.networks = Networks(self.rules, {self.slug: self.network})
            self._handle(position, event)
        for check, command, close in self.decided:
            key = (command.period, command.member)
            if key in self.overrides:  # overridden after the close: shown beside the record
                check.recorded["override"] = self.overrides[key]
            if self.today is not None and close is not None:
                self._tier_what_if(check, command, close, self.today)
        for step in self.later:
            step()
        return self.checks

    def _gap(self, event: Event) -> None:
        tag = _tag(event.command)
        stream = event.originator_id.int  # (an int hashes in C; a UUID in Python)
        last = self.versions.get(stream, 0)
        if event.originator_version != last + 1:
            if event.originator_version <= last:
                problem = f"is version {event.originator_version} again"
            else:
                missing = (
                    f"version {last + 1} of its stream is"
                    if event.originator_version == last + 2
                    else f"versions {last + 1} to {event.originator_version - 1} of its stream are"
                )
                problem = f"comes after a gap ({missing} missing)"
            self.gaps.append(f"{tag} {event.command_id} {problem}")
            if tag.startswith(("network.", "plugin.")):
                self.network_gap = True
        self.versions[stream] = max(last, event.originator_version)
        if tag == "network.created":
            self.created = True

    def _handle(self, position: int | None, event: Event) -> None:
        command = event.command
        if _unhandled(command):  # (most events: nothing below applies to them)
            return
        if isinstance(command, ReferralConverted | ReferralReversed):
            self._source(position, event)
        elif (booked := _booked(event)) is not None:
            self.sources[event.command_id] = _Source(position, event, {})
            member, kind, amount, note = booked
            self._place(event, [(member, PAYOUT_PLUGIN, PAYOUT_VERSION, kind, amount, note)])
        elif isinstance(command, PeriodClosed):
            self._closed(position, event, command)
        elif isinstance(command, TierDecided):
            self.sources[event.command_id] = _Source(position, event, {})
            self._tier(position, event, command)
        elif isinstance(command, TierOverridden):
            self.overrides[(command.period, command.member)] = command.tier
            close = self.closes.get(command.period)
            if close is not None and command.member in close.tiers:
                close.tiers[command.member] = (command.tier, close.tiers[command.member][1])
        elif isinstance(command, StatementClosed):
            self._statement(position, event, command)

    # -- the ledger, rebuilt ---------------------------------------------

    def _landing(self, moment: datetime) -> Period:
        """The period an entry of this business time lands in (as the ledger view places it)."""
        calendar = self.calendar()
        period = calendar.containing(moment)
        if self.latest_closed is not None and period <= self.latest_closed:
            return calendar.after(self.latest_closed)
        return period

    def _place(
        self, event: Event, lines: Sequence[tuple[str, str, str, str, Decimal, str]]
    ) -> None:
        if not lines or self.network is None or not self.created:
            return
        period = self._landing(event.occurred_at)
        for member, plugin, version, kind, amount, note in lines:
            self.entries.setdefault(member, []).append(
                _Entry(
                    member,
                    period,
                    event.command_id,
                    plugin,
                    version,
                    kind,
                    amount,
                    note,
                    event.occurred_at,
                    event.type,
                )
            )

    def _source(self, position: int | None, event: Event) -> None:
        network = self.network
        if network is None:
            return
        source = _Source(position, event, dict(network.plugins))
        self.sources[event.command_id] = source
        enabled = self.enabled()
        for name, raw in network.plugins.items():
            if name in enabled:
                continue
            if self.rules.plugin(name) is None:
                source.unavailable[name] = f"plugin {name!r} is not installed"
            else:
                try:
                    self.rules.settings(name, raw)
                except DomainError as error:
                    source.unavailable[name] = f"its settings then are refused now: {error.reason}"
        if source.unavailable and self.created:
            landing = self._landing(event.occurred_at)
            self.tainted.setdefault(
                landing.name,
                f"entries of {landing.name} (never closed) come from plugins not available "
                f"here: {', '.join(source.unavailable)}",
            )
        if not enabled:
            return
        referral = self.history.aggregates.get(event.originator_id)
        try:
            assert referral is not None
            source.facts = self.history.facts(referral)  # type: ignore[arg-type]
            source.terms = self.history.terms_between(
                source.facts.from_member, source.facts.to_member
            )
        except (AssertionError, KeyError, AttributeError):
            source.problem = "the referral's history before this event is not among the events"
            return
        try:
            source.decisions = self.rules.incentives(
                event, enabled, referral=source.facts, terms=source.terms
            )
        except PluginFailed as error:
            source.problem = error.reason
            return
        lines = []
        for decision in source.decisions:
            entry = decision.value
            assert isinstance(entry, LedgerEntry)
            if entry.currency != network.currency:
                continue  # the ledger keeps the network's currency only
            lines.append(
                (
                    entry.member,
                    decision.plugin,
                    decision.version,
                    entry.kind,
                    entry.amount,
                    entry.note,
                )
            )
        self._place(event, lines)

    # -- the close --------------------------------------------------------

    def _closed(self, position: int | None, event: Event, command: PeriodClosed) -> None:
        network = self.network
        if network is None or not self.created:
            return
        frozen = copy.copy(network)  # as it stands at the close
        frozen.plugins = dict(network.plugins)
        try:
            period = self.calendar().parse(command.period, recorded=True)
        except DomainError:
            return
        self.closes[command.period] = _Close(
            period, position, len(self.log) - 1, command.rules, frozen
        )
        if self.latest_closed is None or period > self.latest_closed:
            self.latest_closed = period

    def _available(self, name: str, version: str) -> str | None:
        """Why a recorded plugin cannot be used here (``None``: it can)."""
        plugin = self.rules.plugin(name)
        if plugin is None:
            return f"plugin {name!r} (recorded at version {version}) is not installed"
        installed = plugin_version(plugin)
        if installed != version:
            return (
                f"plugin {name!r} was recorded at version {version} and version {installed} is "
                "installed: a recorded decision is never re-decided with other rules"
            )
        return None

    def _settings(self, name: str, raw: Mapping[str, Any]) -> tuple[Any, str | None]:
        try:
            return self.rules.settings(name, raw), None
        except DomainError as error:
            return None, f"the recorded settings of {name!r} are refused: {error}"

    def _close_enabled(self, close: _Close) -> dict[str, Any]:
        """The plugins the close recorded, with their settings, where available here."""
        enabled: dict[str, Any] = {}
        for rule in close.rules:
            if self._available(rule.plugin, rule.version) is None:
                settings, problem = self._settings(rule.plugin, rule.settings)
                if problem is None:
                    enabled[rule.plugin] = settings
        return enabled

    def _activities(self, close: _Close, window: Window) -> dict[str, Activity]:
        found = close.activities.get(window)
        if found is None:
            events = (e for _, e in self.log[: close.index])
            found = close.activities[window] = activities_of(events, self.slug, window)
        return found

    # -- a tier decision --------------------------------------------------

    def _tier(self, position: int | None, event: Event, command: TierDecided) -> None:
        close = self.closes.get(command.period)
        if close is not None:
            close.tiers[command.member] = (_decided(command.tier), self._streak(command, close))
            close.decisions.append((position, event))
        if not self.wanted(command.period):
            return
        details: list[Detail] = []
        own = digest_of(command.inputs)
        if own != command.inputs_digest:
            details.append(
                Detail(
                    "inputs_digest",
                    "is not the SHA-256 of the recorded inputs",
                    recorded=command.inputs_digest,
                    recomputed=own,
                )
            )
        called, used = self._deciders(command, close, details)
        inputs, window, previous, below = self._tier_inputs(command, close, details)
        score, tier, ran = self._decide_again(command, close, called, inputs, details)
        scored = command.score is not None and command.score.plugin in called
        recomputed = None
        if ran or inputs is not None:
            recomputed = {
                "rules": used,
                "scoring": _named(score) if scored else None,
                "tiering": _named(tier),
                "inputs_digest": digest_of(inputs) if inputs is not None else None,
                "window": _window(window),
                "previous": previous,
                "periods_below": below,
                "result": _tier_result(score if scored else None, tier),
            }
        check = DecisionCheck(
            kind="tier",
            network=self.slug,
            period=command.period,
            member=command.member,
            position=position,
            command_id=event.command_id,
            recorded={
                "rules": [_rule(r) for r in command.rules],
                "scoring": _named(command.score),
                "tiering": _named(command.tier),
                "inputs_digest": command.inputs_digest,
                "window": _window(command.inputs.window),
                "previous": command.previous,
                "periods_below": command.periods_below,
                "result": _tier_result(command.score, command.tier),
            },
            recomputed=recomputed,
            status=_status(details),
            details=details,
        )
        self.checks.append(check)
        self.decided.append((check, command, close))

    def _deciders(
        self, command: TierDecided, close: _Close | None, details: list[Detail]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The recorded scoring and tiering plugins that can be used here, with their settings."""
        recorded = {r.plugin: r for r in command.rules}
        for in_force in close.rules if close is not None else ():
            recorded.setdefault(in_force.plugin, in_force)
        called: dict[str, Any] = {}
        used: list[dict[str, Any]] = []
        for kind, decision in (("score", command.score), ("tier", command.tier)):
            if decision is None:
                continue
            rule = recorded.get(decision.plugin)
            if rule is not None and rule.version != decision.version:
                details.append(
                    Detail(
                        f"rules.{decision.plugin}.version",
                        f"the {kind} decision names version {decision.version}, the rules "
                        f"recorded with it {rule.version}",
                        recorded=decision.version,
                        recomputed=rule.version,
                    )
                )
            problem = self._available(decision.plugin, decision.version)
            if problem is None:
                raw = rule.settings if rule is not None else {}
                settings, problem = self._settings(decision.plugin, raw)
                if problem is None and decision.plugin not in called:
                    called[decision.plugin] = settings
                    used.append(
                        {
                            "plugin": decision.plugin,
                            "version": decision.version,
                            "settings": _plain(raw),
                        }
                    )
            if problem is not None:
                details.append(Detail(f"rules.{decision.plugin}", problem, "rules unavailable"))
        return called, used

    def _tier_inputs(
        self, command: TierDecided, close: _Close | None, details: list[Detail]
    ) -> tuple[Activity | None, Window, str | None, int]:
        """A tier decision's inputs recomputed from the log, and what they are read with.

        Returns the inputs (``None`` when the events cannot give them), the
        window scored, the previous tier and the periods below it.
        """
        window = command.inputs.window
        missing = self.complete()
        if missing is None and close is None:
            missing = "the period's close is not among the events"
        if missing is not None or close is None:
            details.append(Detail("inputs", str(missing), "inputs unavailable"))
            return None, window, command.previous, command.periods_below
        enabled = self._close_enabled(close)
        scorer = command.score.plugin if command.score else None
        if scorer is None or scorer in enabled:
            window = period_window(self.rules, enabled, close.period)
            if window != command.inputs.window:
                details.append(
                    Detail(
                        "inputs.window",
                        "is not the window the recorded rules score",
                        recorded=_window(command.inputs.window),
                        recomputed=_window(window),
                    )
                )
        else:
            details.append(
                Detail(
                    "inputs.window",
                    "taken as recorded (the scoring plugin is not available to say which "
                    "window it scores)",
                    _NOTE,
                )
            )
        inputs = None
        found = self._activities(close, window).get(command.member)
        if found is None:
            details.append(
                Detail(
                    "inputs.member",
                    f"no member {command.member!r} appears in the events before the close",
                )
            )
        else:
            inputs = like_view(found)
            digest = digest_of(inputs)
            if digest != command.inputs_digest:
                details.append(
                    Detail(
                        "inputs_digest",
                        "the inputs recomputed from the log differ",
                        recorded=command.inputs_digest,
                        recomputed=digest,
                    )
                )
                details.extend(_activity_differences(command.inputs, inputs))
        previous, below, note = self._previous(command, close)
        if note is not None:
            details.append(Detail("previous", note, _NOTE))
        for name, mine, theirs in (
            ("previous", command.previous, previous),
            ("periods_below", command.periods_below, below),
        ):
            if mine != theirs:
                details.append(
                    Detail(
                        name,
                        "differs from the previous period's recorded decision",
                        recorded=mine,
                        recomputed=theirs,
                    )
                )
        return inputs, window, previous, below

    def _decide_again(
        self,
        command: TierDecided,
        close: _Close | None,
        called: dict[str, Any],
        inputs: Activity | None,
        details: list[Detail],
    ) -> tuple[Decision | None, Decision | None, bool]:
        """The recorded rules on the recomputed inputs (else on the recorded ones).

        Returns the score and the tier decided again, and whether any rule ran.
        A score that cannot be decided again is read as recorded by the tier rule.
        """
        score: Decision | None = None
        tier: Decision | None = None
        ran = False
        if inputs is None and called:
            details.append(Detail("inputs", "the rules ran on the recorded inputs", _NOTE))
        on = inputs if inputs is not None else command.inputs
        if command.score is not None and command.score.plugin in called:
            ran = True
            try:
                score = self.rules.score(on, {command.score.plugin: called[command.score.plugin]})
            except PluginFailed as error:
                details.append(
                    Detail("score", f"the recorded scoring plugin fails: {error.reason}")
                )
            details.extend(_compare("score", command.score, score))
        elif command.score is not None:
            score = command.score
        # The ladder is the network's at the close: unknown when the network's stream is not whole.
        if (
            command.tier is not None
            and command.tier.plugin in called
            and close is not None
            and not self.network_gap
        ):
            ran = True
            value = score.value if score is not None else None
            if isinstance(value, Score):
                try:
                    tier = self.rules.tier(
                        value,
                        close.network.tiers,
                        {command.tier.plugin: called[command.tier.plugin]},
                        previous=command.previous,
                        periods_below=command.periods_below,
                    )
                except PluginFailed as error:
                    details.append(
                        Detail("tier", f"the recorded tiering plugin fails: {error.reason}")
                    )
            details.extend(_compare("tier", command.tier, tier))
        return score, tier, ran

    def _streak(self, command: TierDecided, close: _Close) -> int:
        """The periods in a row kept in a tier while below it, as the standings view counts."""
        name = _decided(command.tier)
        value = command.score.value if command.score else None
        ladder = _ladder(close.network, self.enabled())
        kept = (
            name is not None
            and name == command.previous
            and isinstance(value, Score)
            and value.total < ladder.get(name, Decimal("-Infinity"))
        )
        return command.periods_below + 1 if kept else 0

    def _previous(self, command: TierDecided, close: _Close) -> tuple[str | None, int, str | None]:
        """The previous tier and periods below it, from the previous period's recorded close."""
        before = self.calendar().before(close.period)
        found = self.closes.get(before.name)
        if found is None or found.index > close.index:
            return (
                command.previous,
                command.periods_below,
                f"taken as recorded: {before.name} was not closed before this close",
            )
        held, streak = found.tiers.get(command.member, (None, 0))
        return held, streak, None

    def _today_enabled(self, today: Rules) -> dict[str, Any]:
        """Today's rules: the plugins installed in ``today`` with the network's current settings."""
        if self.today_enabled is None:
            assert self.network is not None
            self.today_enabled = Networks(today, {self.slug: self.network}).enabled(self.slug)
        return self.today_enabled

    def _today_rules(self, today: Rules) -> list[dict[str, Any]]:
        assert self.network is not None
        return [
            {
                "plugin": name,
                "version": plugin_version(today.plugin(name)),
                "settings": _plain(self.network.plugins.get(name, {})),
            }
            for name in self._today_enabled(today)
        ]

    def _tier_what_if(
        self, check: DecisionCheck, command: TierDecided, close: _Close, today: Rules
    ) -> None:
        network = self.network
        if network is None or not self.created:
            return
        enabled = self._today_enabled(today)
        window = period_window(today, enabled, close.period)
        found = self.today_activities.get(window)
        if found is None:
            events = (e for _, e in self.log)
            found = self.today_activities[window] = activities_of(events, self.slug, window)
        activity = found.get(command.member)
        key = (command.period, command.member)
        recorded = _recorded_standing(command, self.overrides.get(key), key in self.overrides)
        now = None
        if activity is not None:
            now = decide(
                today,
                network,
                enabled,
                close.period,
                like_view(activity),
                command.previous,
                command.periods_below,
            )
        what_if = WhatIf(command.member, recorded, now).as_dict()
        what_if["rules"] = self._today_rules(today)
        if now is not None and now.problem:
            what_if["problem"] = now.problem
        check.what_if = what_if

    # -- a statement ------------------------------------------------------

    def _bonuses(self, close: _Close) -> list[tuple[Event, Decision]]:
        """The tier bonuses the recorded rules give for the close's decisions so far."""
        if close.bonuses is None:
            close.bonuses = []
            enabled = self._close_enabled(close)
            for _, event in close.decisions:
                command = event.command
                assert isinstance(command, TierDecided)
                choice = command.tier.value if command.tier else None
                if not isinstance(choice, TierChoice) or not enabled:
                    continue
                try:
                    decisions = self.rules.incentives(event, enabled, tier=choice)
                except PluginFailed:
                    continue
                close.bonuses.extend((event, d) for d in decisions)
        return close.bonuses

    def _statement(self, position: int | None, event: Event, command: StatementClosed) -> None:
        close = self.closes.get(command.period)
        network = self.network
        if close is None or network is None or not self.created:
            if self.wanted(command.period):
                self._unavailable_statement(position, event, command)
            return
        period = close.period
        mine = self.entries.get(command.member, [])
        earlier = [e for e in mine if e.period < period]
        opening = sum((e.amount for e in earlier), Decimal(0))
        expected = [e for e in mine if e.period == period]
        for bonus_event, decision in self._bonuses(close):
            entry = decision.value
            assert isinstance(entry, LedgerEntry)
            if entry.member == command.member and entry.currency == network.currency:
                expected.append(
                    _Entry(
                        command.member,
                        period,
                        bonus_event.command_id,
                        decision.plugin,
                        decision.version,
                        entry.kind,
                        entry.amount,
                        entry.note,
                        bonus_event.occurred_at,
                        bonus_event.type,
                    )
                )
        if self.wanted(command.period):
            self._check_statement(position, event, command, close, opening, earlier, expected)
        # From now on the ledger holds the recorded lines (as the view does).
        kept = [e for e in mine if e.period != period]
        kept.extend(
            _Entry(
                command.member,
                period,
                line.source,
                line.plugin,
                line.version,
                line.kind,
                line.amount,
                line.note,
                line.occurred_at,
                line.source_type,
                recorded=True,
            )
            for line in command.entries
        )
        self.entries[command.member] = kept

    def _unavailable_statement(
        self, position: int | None, event: Event, command: StatementClosed
    ) -> None:
        missing = self.complete() or "the period's close is not among the events"
        self.checks.append(
            DecisionCheck(
                kind="statement",
                network=self.slug,
                period=command.period,
                member=command.member,
                position=position,
                command_id=event.command_id,
                recorded=_statement_side(command.opening, command.closing, len(command.entries)),
                recomputed=None,
                status="inputs unavailable",
                details=[Detail("inputs", missing, "inputs unavailable")],
            )
        )

    def _check_statement(
        self,
        position: int | None,
        event: Event,
        command: StatementClosed,
        close: _Close,
        opening: Decimal,
        earlier: list[_Entry],
        expected: list[_Entry],
    ) -> None:
        details: list[Detail] = []
        missing = self.complete()
        recorded_total = command.opening + sum((x.amount for x in command.entries), Decimal(0))
        if recorded_total != command.closing:
            details.append(
                Detail(
                    "closing",
                    "is not the opening plus the entries",
                    recorded=money(command.closing),
                    recomputed=money(recorded_total),
                )
            )
        entry_checks = []
        unmatched = list(expected)
        total = Decimal(0)
        counted: dict[tuple[str, str], int] = {}
        for index, line in enumerate(command.entries):
            key = (line.source, line.plugin)
            nth = counted.get(key, 0)
            counted[key] = nth + 1
            check, amount = self._check_entry(position, event, command, close, index, line, nth)
            entry_checks.append(check)
            total += amount if amount is not None else line.amount
            if check.status == "rules unavailable":
                unmatched = [e for e in unmatched if (e.source, e.plugin) != key]
                continue
            same = [e for e in unmatched if (e.source, e.plugin) == key]
            if same:
                unmatched.remove(same[0])
        for status in ("mismatch", "rules unavailable", "inputs unavailable"):
            flagged = [c.entry for c in entry_checks if c.status == status]
            if flagged:
                listed = ", ".join(str(i) for i in flagged)
                word = "entry" if len(flagged) == 1 else "entries"
                details.append(
                    Detail(
                        "entries",
                        f"{word} {listed}: {status} (see the {word}' own checks)"
                        if len(flagged) > 1
                        else f"{word} {listed}: {status} (see the entry's own check)",
                        status,
                    )
                )
        if missing is None:
            for entry in unmatched:
                details.append(
                    Detail(
                        "entries",
                        f"the rules give an entry the statement lacks: "
                        f"{entry.kind} {money(entry.amount)} from {entry.source_type} "
                        f"{entry.source} ({entry.plugin} {entry.version})",
                        recorded=None,
                        recomputed=money(entry.amount),
                    )
                )
                total += entry.amount
        uncertain = sorted(
            {
                self.tainted[e.period.name]
                for e in earlier
                if e.period.name in self.tainted and not e.recorded
            }
        )
        recomputed: dict[str, Any] | None = None
        if missing is not None:
            details.append(Detail("opening", missing, "inputs unavailable"))
        else:
            if uncertain:
                details.extend(Detail("opening", why, "rules unavailable") for why in uncertain)
            elif opening != command.opening:
                details.append(
                    Detail(
                        "opening",
                        "is not the member's balance of the earlier periods",
                        recorded=money(command.opening),
                        recomputed=money(opening),
                    )
                )
            closing = opening + total
            if not uncertain and closing != command.closing and recorded_total == command.closing:
                details.append(
                    Detail(
                        "closing",
                        "differs from the recomputed entries",
                        recorded=money(command.closing),
                        recomputed=money(closing),
                    )
                )
            recomputed = _statement_side(opening, closing, len(command.entries) + len(unmatched))
        recorded = _statement_side(command.opening, command.closing, len(command.entries))
        recorded["currency"] = command.currency
        recorded["rules"] = _line_rules(command.entries)
        if recomputed is not None:
            recomputed["rules"] = [
                r
                for r in _line_rules(command.entries)
                if self._available(r["plugin"], r["version"]) is None
                or r["plugin"] == PAYOUT_PLUGIN
            ]
        check = DecisionCheck(
            kind="statement",
            network=self.slug,
            period=command.period,
            member=command.member,
            position=position,
            command_id=event.command_id,
            recorded=recorded,
            recomputed=recomputed,
            status=_status(details),
            details=details,
        )
        self.checks.append(check)
        self.checks.extend(entry_checks)
        if self.today is not None:
            today = self.today
            self.later.append(lambda: self._statement_what_if(check, entry_checks, command, today))

    def _check_entry(
        self,
        position: int | None,
        event: Event,
        command: StatementClosed,
        close: _Close,
        index: int,
        line: StatementLine,
        nth: int,
    ) -> tuple[DecisionCheck, Decimal | None]:
        details: list[Detail] = []
        recorded: dict[str, Any] = {
            "plugin": line.plugin,
            "version": line.version,
            "settings": None,
            "result": _line(line),
        }
        recomputed: dict[str, Any] | None = None
        amount: Decimal | None = None
        source = self.sources.get(line.source)
        missing = self.complete()

        def done() -> tuple[DecisionCheck, Decimal | None]:
            check = DecisionCheck(
                kind="statement_entry",
                network=self.slug,
                period=command.period,
                member=command.member,
                position=position,
                command_id=event.command_id,
                recorded=recorded,
                recomputed=recomputed,
                status=_status(details),
                details=details,
                entry=index,
            )
            return check, amount

        if source is None:
            reason = f"no event {line.source} ({line.source_type}) comes before the statement"
            details.append(
                Detail("source", reason, "inputs unavailable" if missing else "mismatch")
            )
            return done()
        if source.event.type != line.source_type:
            details.append(
                Detail(
                    "source_type",
                    "is not the source event's type",
                    recorded=line.source_type,
                    recomputed=source.event.type,
                )
            )
        booked = _booked(source.event)
        if booked is not None:
            member, kind, amount, note = booked
            theirs = StatementLine(
                source=line.source,
                source_type=source.event.type,
                occurred_at=source.event.occurred_at,
                plugin=PAYOUT_PLUGIN,
                version=PAYOUT_VERSION,
                kind=kind,  # type: ignore[arg-type]  # "payout" or "adjustment"
                amount=amount,
                note=note,
            )
            if member != command.member:
                details.append(
                    Detail(
                        "member",
                        f"the {source.event.type} event is another member's",
                        recorded=command.member,
                        recomputed=member,
                    )
                )
            if (line.plugin, line.version) != (PAYOUT_PLUGIN, PAYOUT_VERSION):
                details.append(
                    Detail(
                        "plugin",
                        f"a {source.event.type} entry is booked by {PAYOUT_PLUGIN} "
                        f"{PAYOUT_VERSION}, not by a plugin",
                        recorded=f"{line.plugin} {line.version}",
                        recomputed=f"{PAYOUT_PLUGIN} {PAYOUT_VERSION}",
                    )
                )
            recomputed = {
                "plugin": PAYOUT_PLUGIN,
                "version": PAYOUT_VERSION,
                "settings": None,
                "result": _line(theirs),
            }
            details.extend(_compare_lines(line, theirs))
            return done()
        problem = self._available(line.plugin, line.version)
        bonus = isinstance(source.event.command, TierDecided)
        if bonus:
            rule = next((r for r in close.rules if r.plugin == line.plugin), None)
            raw = rule.settings if rule is not None else None
        else:
            raw = source.settings.get(line.plugin)
        recorded["settings"] = _plain(raw) if raw is not None else None
        if raw is None:
            when = "at the close" if bonus else "when the source event was recorded"
            details.append(Detail("plugin", f"{line.plugin!r} was not enabled {when}"))
            return done()
        if problem is None:
            settings, problem = self._settings(line.plugin, raw)
        if problem is not None:
            details.append(Detail(f"rules.{line.plugin}", problem, "rules unavailable"))
            return done()
        if source.problem is not None and not bonus:
            status = "inputs unavailable" if missing else "mismatch"
            details.append(Detail("source", source.problem, status))
            return done()
        try:
            if bonus:
                decided = source.event.command
                assert isinstance(decided, TierDecided)
                choice = decided.tier.value if decided.tier else None
                decisions = (
                    self.rules.incentives(source.event, {line.plugin: settings}, tier=choice)
                    if isinstance(choice, TierChoice)
                    else []
                )
            else:
                decisions = [d for d in source.decisions if d.plugin == line.plugin]
        except PluginFailed as error:
            details.append(Detail("plugin", f"the recorded plugin fails: {error.reason}"))
            return done()
        mine = [
            d.value
            for d in decisions
            if isinstance(d.value, LedgerEntry) and d.value.member == command.member
        ]
        if nth >= len(mine):
            details.append(
                Detail(
                    "entry",
                    f"the recorded rules give no such entry for {command.member!r} "
                    f"from {line.source_type} {line.source}",
                    recorded=money(line.amount),
                    recomputed=None,
                )
            )
            if missing is not None:
                details.append(Detail("inputs", missing, "inputs unavailable"))
            recomputed = {
                "plugin": line.plugin,
                "version": line.version,
                "settings": _plain(raw),
                "result": None,
            }
            amount = Decimal(0)
            return done()
        entry = mine[nth]
        theirs = StatementLine(
            source=entry.source,
            source_type=source.event.type,
            occurred_at=source.event.occurred_at,
            plugin=line.plugin,
            version=plugin_version(self.rules.plugin(line.plugin)),
            kind=entry.kind,
            amount=entry.amount,
            note=entry.note,
        )
        recomputed = {
            "plugin": line.plugin,
            "version": theirs.version,
            "settings": _plain(raw),
            "result": _line(theirs),
        }
        details.extend(_compare_lines(line, theirs))
        if missing is not None:
            details.append(Detail("inputs", missing, "inputs unavailable"))
        amount = entry.amount
        return done()

    def _today_entries(
        self, source: _Source, today: Rules, enabled: dict[str, Any]
    ) -> list[Decision] | str:
        """What today's rules give for a source event (or why they cannot say)."""
        command = source.event.command
        try:
            if isinstance(command, TierDecided):
                choice = command.tier.value if command.tier else None
                if not isinstance(choice, TierChoice):
                    return []
                return today.incentives(source.event, enabled, tier=choice)
            if source.facts is None:
                return source.problem or "the source event's referral is not among the events"
            return today.incentives(
                source.event, enabled, referral=source.facts, terms=source.terms
            )
        except PluginFailed as error:
            return error.reason

    def _statement_what_if(
        self,
        check: DecisionCheck,
        entries: list[DecisionCheck],
        command: StatementClosed,
        today: Rules,
    ) -> None:
        network = self.network
        if network is None:
            return
        enabled = self._today_enabled(today)
        cache: dict[str, list[Decision] | str] = {}

        def of(source: _Source) -> list[Decision] | str:
            key = source.event.command_id
            if key not in cache:
                cache[key] = self._today_entries(source, today, enabled)
            return cache[key]

        total = Decimal(0)
        problems: list[str] = []
        counted: dict[tuple[str, str], int] = {}
        for entry_check, line in zip(entries, command.entries, strict=True):
            key = (line.source, line.plugin)
            nth = counted.get(key, 0)
            counted[key] = nth + 1
            source = self.sources.get(line.source)
            if source is None:
                entry_check.what_if = {
                    "note": "the source event is not among the events",
                    "result": None,
                    "changed": None,
                }
                continue
            if _booked(source.event) is not None:
                entry_check.what_if = {
                    "plugin": PAYOUT_PLUGIN,
                    "version": PAYOUT_VERSION,
                    "result": _line(line),
                    "changed": False,
                }
                continue
            if line.plugin not in enabled:
                entry_check.what_if = {
                    "note": f"{line.plugin} is not enabled today",
                    "result": None,
                    "changed": True,
                }
                continue
            found = of(source)
            if isinstance(found, str):
                entry_check.what_if = {"note": found, "result": None, "changed": None}
                continue
            mine = [
                d.value
                for d in found
                if d.plugin == line.plugin
                and isinstance(d.value, LedgerEntry)
                and d.value.member == command.member
            ]
            result = None
            if nth < len(mine):
                result = {
                    **_line(line),
                    "kind": mine[nth].kind,
                    "amount": money(mine[nth].amount),
                    "note": mine[nth].note,
                }
            entry_check.what_if = {
                "plugin": line.plugin,
                "version": plugin_version(today.plugin(line.plugin)),
                "settings": _plain(network.plugins.get(line.plugin, {})),
                "result": result,
                "changed": result is None
                or (result["amount"], result["kind"], result["note"])
                != (money(line.amount), line.kind, line.note),
                **({} if result is not None else {"note": f"{line.plugin} gives nothing today"}),
            }
        for source_id in dict.fromkeys(line.source for line in command.entries):
            source = self.sources.get(source_id)
            if source is None:
                problems.append(f"{source_id} is not among the events")
                continue
            booked = _booked(source.event)
            if booked is not None:
                if booked[0] == command.member:
                    total += booked[2]
                continue
            found = of(source)
            if isinstance(found, str):
                problems.append(found)
                continue
            for decision in found:
                value = decision.value
                if (
                    isinstance(value, LedgerEntry)
                    and value.member == command.member
                    and value.currency == network.currency
                ):
                    total += value.amount
        opening = (
            Decimal(check.recomputed["result"]["opening"])
            if check.recomputed is not None
            else command.opening
        )
        closing = opening + total
        check.what_if = {
            "rules": self._today_rules(today),
            "result": {
                "opening": money(opening),
                "closing": money(closing),
                "entries": sum(1 for c in entries if c.what_if and c.what_if.get("result")),
            },
            "changed": closing - opening != command.closing - command.opening,
        }
        if problems:
            check.what_if["note"] = "; ".join(dict.fromkeys(problems))


# ------------------------------------------------------------------ helpers


#: Each command class's type tag (``Event.type``, read for every event).
_TAGS: dict[type, str] = {}


def _tag(command: Any) -> str:
    cls = type(command)
    tag = _TAGS.get(cls)
    if tag is None:
        tag = _TAGS[cls] = command.type
    return tag


_HANDLED = (
    ReferralConverted,
    ReferralReversed,
    PayoutRecorded,
    PeriodClosed,
    TierDecided,
    TierOverridden,
    StatementClosed,
)


#: Per command class: whether ``_Checker._handle`` does nothing with its events.
_UNHANDLED: dict[type, bool] = {}


def _unhandled(command: Any) -> bool:
    cls = type(command)
    found = _UNHANDLED.get(cls)
    if found is None:
        handled = isinstance(command, _HANDLED) or _tag(command) == "ledger.adjusted"
        found = _UNHANDLED[cls] = not handled
    return found


def _numbered(
    events: Iterable[Event] | Iterable[tuple[int, Event]],
) -> Iterator[tuple[int | None, Event]]:
    for item in events:
        if isinstance(item, Event):
            yield None, item
        else:
            position, event = item
            yield position, event


def _booked(event: Event) -> tuple[str, str, Decimal, str] | None:
    """An entry no plugin decides (a payout, a dispute's adjustment): member, kind, amount, note.

    As the incentive ledger books it (:mod:`partnerledger.views.ledger`).
    """
    command: Any = event.command
    if isinstance(command, PayoutRecorded):
        return command.member, "payout", -command.amount, command.reference or ""
    if _tag(command) == "ledger.adjusted":  # a dispute's compensation (docs/disputes.md)
        note = f"dispute {command.dispute}: {command.reason}"
        return command.member, "adjustment", Decimal(command.amount), note
    return None


def _decided(tier: Decision | None) -> str | None:
    value = tier.value if tier is not None else None
    return value.tier if isinstance(value, TierChoice) else None


def _status(details: Iterable[Detail]) -> Status:
    found = {d.status for d in details}
    for status in ("mismatch", "rules unavailable", "inputs unavailable"):
        if status in found:
            return status
    return "match"


def _compare(name: str, recorded: Decision | None, recomputed: Decision | None) -> list[Detail]:
    """Field-by-field differences between a recorded and a recomputed decision."""
    if recorded is None and recomputed is None:
        return []
    if recorded is None or recomputed is None:
        return [
            Detail(
                name,
                "decided on one side only",
                recorded=_plain(recorded) if recorded else None,
                recomputed=_plain(recomputed) if recomputed else None,
            )
        ]
    found = []
    if recorded.plugin != recomputed.plugin:
        found.append(
            Detail(
                f"{name}.plugin", "differs", recorded=recorded.plugin, recomputed=recomputed.plugin
            )
        )
    mine = msgspec.to_builtins(recorded.value, enc_hook=str)
    theirs = msgspec.to_builtins(recomputed.value, enc_hook=str)
    a, b = recorded.value, recomputed.value
    if type(a) is not type(b):
        return [*found, Detail(name, "differs", recorded=mine, recomputed=theirs)]
    for key in sorted(set(mine) | set(theirs)):
        if key == "type":
            continue
        left, right = getattr(a, key, None), getattr(b, key, None)
        if isinstance(left, dict) and isinstance(right, dict):
            for inner in sorted(set(left) | set(right)):
                if left.get(inner) != right.get(inner):
                    found.append(
                        Detail(
                            f"{name}.{key}.{inner}",
                            "differs",
                            recorded=_plain(left.get(inner)),
                            recomputed=_plain(right.get(inner)),
                        )
                    )
        elif left != right:
            found.append(
                Detail(f"{name}.{key}", "differs", recorded=_plain(left), recomputed=_plain(right))
            )
    return found


def _compare_lines(recorded: StatementLine, recomputed: StatementLine) -> list[Detail]:
    found = []
    for name in ("source_type", "occurred_at", "kind", "amount", "note"):
        mine, theirs = getattr(recorded, name), getattr(recomputed, name)
        if mine != theirs:
            found.append(Detail(name, "differs", recorded=_plain(mine), recomputed=_plain(theirs)))
    return found


def _statement_side(opening: Decimal, closing: Decimal, entries: int) -> dict[str, Any]:
    return {"result": {"opening": money(opening), "closing": money(closing), "entries": entries}}


def _line_rules(lines: Iterable[StatementLine]) -> list[dict[str, str]]:
    return [
        {"plugin": plugin, "version": version}
        for plugin, version in dict.fromkeys((x.plugin, x.version) for x in lines)
    ]


def _recorded_standing(command: TierDecided, override: str | None, overridden: bool) -> Standing:
    return Standing(
        network=command.network,
        period=command.period,
        member=command.member,
        status="",
        window=command.inputs.window,
        activity=command.inputs,
        score=command.score,
        tier=command.tier,
        previous=command.previous,
        periods_below=command.periods_below,
        streak=0,
        closed=True,
        override=override,
        override_reason="overridden" if overridden else None,
    )


# ------------------------------------------------------------------ entry points


def check_decisions(
    events: Iterable[Event] | Iterable[tuple[int, Event]],
    rules: Rules,
    network: str,
    *,
    period: str | None = None,
    today: Rules | None = None,
) -> list[DecisionCheck]:
    """Check every recorded decision of a network (or of one closed period) against the log.

    ``events`` are in log order: :class:`~partnerledger.events.Event` objects,
    or ``(position, event)`` pairs as :meth:`Store.read` gives them (the
    positions are then reported). Events of other networks are skipped.
    ``rules`` are the plugins to recompute with (each used only at the
    version recorded); ``today``, when given, the rules of the what-if, with
    the network's settings as of the last event. ``period`` is a recorded
    period name, as ``period.closed`` writes it. Writes nothing.
    """
    return _Checker(rules, network, period, today).run(events)


def check_store(
    store: Store,
    rules: Rules,
    network: str,
    *,
    period: str | None = None,
    today: Rules | None = None,
) -> list[DecisionCheck]:
    """:func:`check_decisions` over a store's whole log (with positions)."""
    return check_decisions(store.read(), rules, network, period=period, today=today)


def closed_periods(
    events: Iterable[Event] | Iterable[tuple[int, Event]], network: str
) -> list[str]:
    """The network's closed periods, in the order they were closed."""
    return [
        e.command.period
        for _, e in _numbered(events)
        if isinstance(e.command, PeriodClosed) and e.network == network
    ]


__all__ = [
    "STATUSES",
    "DecisionCheck",
    "Detail",
    "check_decisions",
    "check_store",
    "closed_periods",
    "like_view",
    "summary",
]
