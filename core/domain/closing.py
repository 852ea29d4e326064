"""Period close and payouts: decisions recorded for good, and money paid out.

A period's close is one aggregate (one stream per network and period):
``period.closed`` first, then one ``tier.decided`` per member and one
``statement.closed`` per member with a statement, all in one transaction
(see :mod:`partnerledger.closing`). ``tier.overridden`` corrects a decided
tier later, with a reason. A payout is its own aggregate.
"""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

from ..commands import (
    Command,
    PayoutRecorded,
    PeriodClosed,
    PeriodCommand,
    StatementClosed,
    TierDecided,
    TierOverridden,
)
from ..errors import AlreadyExists, InvalidCommand, InvalidTransition
from ..identity import aggregate_id
from ..rules import inputs_digest
from .base import Aggregate, Lookup, money, network_currency, positive_money, rule
from .network import Network


def closing_id(network: str, period: str) -> UUID:
    """The aggregate id of a period's close."""
    return aggregate_id("closing", network, period)


def payout_id(network: str, payout: str) -> UUID:
    """The aggregate id of a payout."""
    return aggregate_id("payout", network, payout)


class Closing(Aggregate):
    """The close of one evaluation period of a network."""

    kind = "closing"

    def __init__(self, id: UUID) -> None:
        super().__init__(id)
        self.period = ""
        self.closed = False
        #: member → the tier decided (after any override)
        self.tiers: dict[str, str | None] = {}
        self.statements: set[str] = set()

    def when(self, command: Command) -> None:
        if isinstance(command, PeriodClosed):
            self.period = command.period
            self.closed = True
        elif isinstance(command, TierDecided):
            self.tiers[command.member] = (
                getattr(command.tier.value, "tier", None) if command.tier else None
            )
        elif isinstance(command, TierOverridden):
            self.tiers[command.member] = command.tier
        elif isinstance(command, StatementClosed):
            self.statements.add(command.member)
        else:
            super().when(command)


class Payout(Aggregate):
    """Money paid to a member."""

    kind = "payout"

    def when(self, command: Command) -> None:
        if not isinstance(command, PayoutRecorded):
            super().when(command)


def _key(command: PeriodCommand, _: str) -> UUID:
    return closing_id(command.network, command.period)


#: The most periods in a row a member can have been kept in a tier while below it.
MAX_PERIODS_BELOW = 1_000_000


def _period_of(lookup: Lookup, command: PeriodCommand) -> Network:
    """The network, with the period checked against its calendar."""
    from ..periods import Calendar  # periods imports the domain package

    network = lookup.network(command.network)
    period = Calendar.of(network).parse(command.period)
    if period.name != command.period:
        raise InvalidCommand("period", f"write the period as {period.name!r}")
    if command.occurred_at < period.end:
        raise InvalidTransition(
            "period",
            f"period {period.name} has not ended yet (it ends {period.end:%Y-%m-%d %H:%M} UTC)",
        )
    return network


def _closed(closing: Closing | None, period: str) -> Closing:
    if closing is None or not closing.closed:
        raise InvalidTransition("period", f"period {period} is not closed")
    return closing


@rule(PeriodClosed, Closing, _key)
def close_period(lookup: Lookup, closing: Closing | None, command: PeriodClosed) -> None:
    _period_of(lookup, command)
    if closing is not None and closing.closed:
        raise AlreadyExists("period", f"period {command.period} is already closed")


@rule(TierDecided, Closing, _key)
def decide_tier(lookup: Lookup, closing: Closing | None, command: TierDecided) -> None:
    found = _closed(closing, command.period)
    lookup.member(command.network, command.member, "member")
    if (command.inputs.network, command.inputs.member) != (command.network, command.member):
        raise InvalidCommand(
            "inputs.member",
            f"the inputs are {command.inputs.member!r}'s in {command.inputs.network!r}, "
            f"not {command.member!r}'s in {command.network!r}",
        )
    if command.inputs_digest != inputs_digest(command.inputs):
        raise InvalidCommand("inputs_digest", "does not match the inputs (SHA-256 of their JSON)")
    if command.periods_below > MAX_PERIODS_BELOW:  # the views keep 64-bit integers
        raise InvalidCommand("periods_below", f"at most {MAX_PERIODS_BELOW}")
    if command.member in found.tiers:
        raise AlreadyExists(
            "member", f"the tier of {command.member!r} in {command.period} is already decided"
        )


@rule(TierOverridden, Closing, _key)
def override_tier(lookup: Lookup, closing: Closing | None, command: TierOverridden) -> None:
    found = _closed(closing, command.period)
    if command.member not in found.tiers:
        raise InvalidTransition(
            "member", f"no tier was decided for {command.member!r} in {command.period}"
        )
    ladder = [tier.name for tier in lookup.network(command.network).tiers]
    if command.tier is not None and ladder and command.tier not in ladder:
        raise InvalidCommand(
            "tier", f"{command.tier!r} is not on the network's ladder ({', '.join(ladder)})"
        )
    if found.tiers[command.member] == command.tier:
        raise InvalidTransition(
            "tier", f"{command.member!r} already holds {command.tier or 'no tier'} in this period"
        )


@rule(StatementClosed, Closing, _key)
def close_statement(lookup: Lookup, closing: Closing | None, command: StatementClosed) -> None:
    found = _closed(closing, command.period)
    network = lookup.network(command.network)
    lookup.member(command.network, command.member, "member")
    network_currency("currency", command.currency, network)
    if command.member in found.statements:
        raise AlreadyExists(
            "member", f"the statement of {command.member!r} for {command.period} is closed"
        )
    money("opening", command.opening)
    money("closing", command.closing)
    for index, line in enumerate(command.entries):
        money(f"entries[{index}].amount", line.amount)
    total = command.opening + sum((line.amount for line in command.entries), Decimal(0))
    if total != command.closing:
        raise InvalidCommand(
            "closing",
            f"opening {command.opening} plus the entries ({total - command.opening}) is "
            f"{total}, not {command.closing}",
        )


@rule(PayoutRecorded, Payout, lambda c, _: payout_id(c.network, c.payout))
def record_payout(lookup: Lookup, payout: Payout | None, command: PayoutRecorded) -> None:
    if payout is not None:
        raise AlreadyExists("payout", f"payout {command.payout!r} is already recorded")
    network = lookup.network(command.network)
    lookup.member(command.network, command.member, "member")
    positive_money("amount", command.amount)
    network_currency("currency", command.currency, network)
