"""What the rules decide over a network's history, replayed from the log (writes nothing).

The log is read in order and every aggregate is rebuilt in memory as it goes,
so each event is judged with the state and the plugins (and settings) in
force when it was recorded: a conversion recorded before the network enabled
``fees`` earns nothing from it. This is the provisional view; recording the
decisions as they happen is the incentive ledger's job.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from .commands import (
    PROGRAM,
    Command,
    ReferralConverted,
    ReferralReversed,
    ReferralSent,
    Terms,
)
from .domain import ROUTES, Aggregate, Agreement, Network, Referral
from .errors import NotFound
from .events import Event
from .ledger import Ledger
from .rules import Decision, ReferralFacts

LIVE = ("pilot", "active", "amended", "renewed")


@dataclass(frozen=True)
class Judged:
    """A decision about one event of the log."""

    position: int
    event: Event
    decision: Decision


class _History:
    """Aggregates rebuilt in log order, with what the rules need to look up."""

    def __init__(self) -> None:
        self.aggregates: dict[UUID, Aggregate] = {}
        self.network: Network | None = None
        #: referral id → (log position, the referral.sent event), in log order
        self.referral_sent: dict[UUID, tuple[int, Event]] = {}
        self.agreements: dict[frozenset[str], list[Agreement]] = defaultdict(list)

    def apply(self, position: int, event: Event) -> Aggregate:
        command: Command = event.command
        route = ROUTES[type(command)]
        aggregate = self.aggregates.get(event.originator_id)
        if aggregate is None:
            aggregate = route.aggregate(event.originator_id)
            self.aggregates[event.originator_id] = aggregate
            if isinstance(aggregate, Agreement):
                parties = [p for p in getattr(command, "parties", ()) if p != PROGRAM]
                for a in parties:
                    for b in parties:
                        if a < b:
                            self.agreements[frozenset((a, b))].append(aggregate)
        aggregate.apply(event)
        if isinstance(aggregate, Network):
            self.network = aggregate
        if isinstance(command, ReferralSent):
            self.referral_sent[event.originator_id] = (position, event)
        return aggregate

    def facts(self, referral: Referral) -> ReferralFacts:
        _, sent = self.referral_sent[referral.id]
        return ReferralFacts(
            referral=referral.slug,
            from_member=referral.credited,  # the sender, unless a dispute reassigned the credit
            to_member=referral.to_member,
            customer=referral.subject,  # the data subject: rules never see personal data
            status=referral.status,
            sent_at=sent.command.occurred_at,
            deal_value=referral.deal_value,
            reversed_amount=referral.reversed_amount,
            currency=referral.currency,
        )

    def terms_between(self, a: str, b: str) -> Terms | None:
        """The terms in force of the latest live agreement between two members."""
        live = [x for x in self.agreements.get(frozenset((a, b)), []) if x.status in LIVE]
        return live[-1].current_terms if live else None


def _network_events(ledger: Ledger, network: str) -> Iterator[tuple[int, Event]]:
    for position, event in ledger.store.read():
        if event.command.network == network:
            yield position, event


def incentive_entries(ledger: Ledger, network: str) -> list[Judged]:
    """Ledger entries the enabled incentive plugins derive from each conversion and reversal."""
    work = ledger.unit_of_work()
    history = _History()
    judged: list[Judged] = []
    for position, event in _network_events(ledger, network):
        aggregate = history.apply(position, event)
        command = event.command
        if not isinstance(command, ReferralConverted | ReferralReversed):
            continue
        assert isinstance(aggregate, Referral)
        assert history.network is not None
        enabled: dict[str, Any] = work.enabled(history.network)
        if not enabled:
            continue
        facts = history.facts(aggregate)  # as it stands after the event
        terms = history.terms_between(aggregate.credited, aggregate.to_member)
        for decision in ledger.rules.incentives(event, enabled, referral=facts, terms=terms):
            judged.append(Judged(position, event, decision))
    if history.network is None:
        raise NotFound("network", f"no network {network!r}")
    return judged


def attributions(ledger: Ledger, network: str) -> list[Judged]:
    """Credits for every customer sent to the same member by two or more referrals.

    Decided with the plugins in force now, over the referrals as they stand now.
    """
    history = _History()
    for position, event in _network_events(ledger, network):
        history.apply(position, event)
    if history.network is None:
        raise NotFound("network", f"no network {network!r}")
    enabled = ledger.unit_of_work().enabled(history.network)
    # Grouped by data subject: the same customer is one subject, even once erased.
    competing: dict[tuple[str, str], list[ReferralFacts]] = defaultdict(list)
    last_sent: dict[tuple[str, str], tuple[int, Event]] = {}
    for referral_id, sent in history.referral_sent.items():
        referral = history.aggregates[referral_id]
        assert isinstance(referral, Referral)
        key = (referral.to_member, referral.subject)
        competing[key].append(history.facts(referral))
        last_sent[key] = sent
    judged = []
    for key, referrals in competing.items():
        if len(referrals) < 2:
            continue
        position, event = last_sent[key]
        for decision in ledger.rules.attribute(key[1], referrals, enabled):
            judged.append(Judged(position, event, decision))
    return judged
