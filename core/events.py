"""Events: accepted commands, as stored in the append-only log.

An event records the command that produced it unchanged, with the identity
of the aggregate it belongs to, its version there, the command's identity
(for idempotency) and the store time (``recorded_at``). The business time,
the actor and the network are the command's own fields. One command
produces exactly one event.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from .commands import AnyCommand, Command
from .types import AwareDatetime


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the log."""

    originator_id: UUID
    originator_version: int
    recorded_at: AwareDatetime
    command_id: str
    command: AnyCommand

    @property
    def type(self) -> str:
        """The event's type, e.g. ``"referral.sent"`` (the command's tag)."""
        return self.command.type

    @property
    def network(self) -> str:
        """The network the event belongs to."""
        return self.command.network

    @property
    def actor(self) -> str:
        """Who issued the command."""
        return self.command.actor

    @property
    def occurred_at(self) -> datetime:
        """Business time: when it happened (UTC)."""
        return self.command.occurred_at


def command_of(event: Event) -> Command:
    """The command recorded in an event."""
    command: Command = event.command
    return command


_encoder = msgspec.json.Encoder(decimal_format="string")
_decoder = msgspec.json.Decoder(Event)


def encode_event(event: Event) -> bytes:
    """The stored form of an event: compact JSON."""
    return _encoder.encode(event)


def decode_event(data: bytes) -> Event:
    """Inverse of :func:`encode_event`."""
    return _decoder.decode(data)
