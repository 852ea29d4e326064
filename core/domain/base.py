"""The aggregate base class and the table that routes each command to its rule.

A *rule* decides whether a command is allowed, given the aggregate it
targets (``None`` when it would create it) and a :class:`Lookup` of the rest
of the network. It raises a :class:`~partnerledger.errors.DomainError` to
refuse; it never changes state. State changes only when the event is
applied (:meth:`Aggregate.apply`), the same way when a command is accepted
and when history is replayed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar
from uuid import UUID

from ..commands import Command, content_digest
from ..errors import InvalidCommand

if TYPE_CHECKING:
    from ..events import Event
    from ..privacy import Sealed
    from .agreement import Agreement
    from .member import Member
    from .network import Network
    from .referral import Referral


class Aggregate:
    """State rebuilt from one stream of events."""

    kind: ClassVar[str]

    def __init__(self, id: UUID) -> None:
        self.id = id
        self.version = 0
        self.network = ""
        #: Identity of every command applied → its explicit ``command_id``'s content
        #: digest (``None`` when the identity is itself the content digest).
        self.command_ids: dict[str, str | None] = {}
        self.created_at: datetime | None = None
        self.updated_at: datetime | None = None

    def apply(self, event: Event) -> None:
        """Evolve by one event of this aggregate's stream."""
        command: Command = event.command
        if self.version == 0:
            self.network = command.network
            self.created_at = command.occurred_at
        self.version = event.originator_version
        self.command_ids[event.command_id] = (
            None if command.command_id is None else content_digest(command)  # as it returns
        )
        self.updated_at = command.occurred_at
        self.when(command)

    def when(self, command: Command) -> None:
        """Change state for an accepted command. Subclasses implement it."""
        raise TypeError(f"{type(self).__name__} cannot apply {command.type}")


AnyAggregate = TypeVar("AnyAggregate", bound=Aggregate)


class Lookup(Protocol):
    """What a rule may read besides its own aggregate."""

    def network(self, slug: str) -> Network:
        """The network, or NotFound on field ``network``."""
        ...

    def member(self, network: str, slug: str, field: str) -> Member:
        """A member of the network, or NotFound on ``field``."""
        ...

    def referral(self, network: str, slug: str, field: str) -> Referral:
        """A referral of the network, or NotFound on ``field``."""
        ...

    def agreement(self, network: str, slug: str, field: str) -> Agreement:
        """An agreement of the network, or NotFound on ``field``."""
        ...

    def agreements_of(self, network: str, member: str) -> list[Agreement]:
        """Every agreement the member is (or was) a party to, oldest first."""
        ...

    def check_plugin(self, plugin: str, settings: Mapping[str, Any]) -> None:
        """Refuse an unknown plugin (field ``plugin``) or bad settings (``settings.<name>``)."""
        ...

    def load(self, cls: type[AnyAggregate], aggregate_id: UUID) -> AnyAggregate | None:
        """Any aggregate as of the last decided command, or ``None`` if it does not exist."""
        ...

    def subject_referrals(
        self, network: str, subject: str, since_erasure: bool = False
    ) -> list[str]:
        """The referrals of a data subject (only those after its last erasure, if asked)."""
        ...

    def reveal(self, network: str, value: str | Sealed | None, field: str = "customer") -> str:
        """A personal field as people read it: the text, ``[erased]``, or ``""`` for none."""
        ...


A = TypeVar("A", bound=Aggregate)
C = TypeVar("C", bound=Command)


@dataclass(frozen=True)
class Route(Generic[C, A]):
    """Which aggregate a command targets and the rule that decides it."""

    aggregate: type[A]
    key: Callable[[C, str], UUID]
    decide: Callable[[Lookup, A | None, C], None]


ROUTES: dict[type[Command], Route[Any, Any]] = {}


def rule(
    command: type[C], aggregate: type[A], key: Callable[[C, str], UUID]
) -> Callable[[Callable[[Lookup, A | None, C], None]], Callable[[Lookup, A | None, C], None]]:
    """Register the rule for ``command``; ``key(command, command_id)`` names the target."""

    def register(
        decide: Callable[[Lookup, A | None, C], None],
    ) -> Callable[[Lookup, A | None, C], None]:
        if command in ROUTES:
            raise TypeError(f"two rules for {command.__name__}")
        ROUTES[command] = Route(aggregate, key, decide)
        return decide

    return register


# ------------------------------------------------------------ shared checks


#: Amounts stay below this (a trillion): sums of many of them still fit the
#: views' 64-bit integers of 1/10000 units and a Decimal's 28 digits.
MAX_MONEY = Decimal(10) ** 12


def money(field: str, value: Decimal) -> None:
    """An amount (a balance may be negative): finite, below :data:`MAX_MONEY` either way."""
    if not value.is_finite():
        raise InvalidCommand(field, "must be a finite amount")
    if abs(value) >= MAX_MONEY:
        raise InvalidCommand(field, f"must be less than {MAX_MONEY:,f} (either way), got {value}")


def positive_money(field: str, value: Decimal) -> None:
    """Money must be a finite amount above zero, below :data:`MAX_MONEY`, to 4 decimals."""
    money(field, value)
    if value <= 0:
        raise InvalidCommand(field, f"must be greater than zero, got {value}")
    if value.normalize().as_tuple().exponent < -4:  # type: ignore[operator]
        raise InvalidCommand(field, "at most 4 decimal places")


def network_currency(field: str, currency: str, network: Network) -> None:
    """Amounts in a network are in the network's currency."""
    if currency != network.currency:
        raise InvalidCommand(
            field, f"{currency} is not the network's currency ({network.currency})"
        )


def fraction(field: str, value: Decimal) -> None:
    """A rate expressed as a fraction between 0 and 1."""
    if not value.is_finite() or not Decimal(0) <= value <= Decimal(1):
        raise InvalidCommand(field, f"must be a fraction between 0 and 1, got {value}")


def missing(aggregate: Aggregate | None, exists: Callable[[], Exception]) -> None:
    """Raise ``exists()`` when the aggregate to be created is already there."""
    if aggregate is not None:
        raise exists()


def active_member(lookup: Lookup, network: str, slug: str, field: str) -> Member:
    """A member who can take part in something new, or an error on ``field``."""
    member = lookup.member(network, slug, field)
    if not member.can_act:
        from ..errors import InvalidTransition

        raise InvalidTransition(field, f"member {slug!r} is {member.status}, not active")
    return member


def distinct(field: str, slug: str, other: str, what: str) -> None:
    """Refuse a relation of a member with themselves."""
    if slug == other:
        raise InvalidCommand(field, f"{what} must be another member than {other!r}")
