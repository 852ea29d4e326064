"""partnerledger: an event-sourced partner-program platform.

The package root is the kernel (``core/`` in the source tree): commands,
events, the domain model, the event store and the application service.
``partnerledger.cli``, ``partnerledger.web`` and ``partnerledger.plugins``
are the shells and rules around it.
"""

from .commands import Command, command_schema, decode_command, encode_command
from .errors import (
    AlreadyExists,
    ConcurrencyConflict,
    DomainError,
    InvalidCommand,
    InvalidTransition,
    NotFound,
    StoreUnavailable,
)
from .events import Event
from .hookspecs import hookimpl
from .ledger import Ledger, Outcome, UnitOfWork
from .store import Database, Store

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "Command",
    "ConcurrencyConflict",
    "Database",
    "DomainError",
    "Event",
    "InvalidCommand",
    "InvalidTransition",
    "Ledger",
    "NotFound",
    "Outcome",
    "Store",
    "StoreUnavailable",
    "UnitOfWork",
    "__version__",
    "command_schema",
    "decode_command",
    "encode_command",
    "hookimpl",
]
