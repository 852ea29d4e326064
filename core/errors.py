"""Typed domain errors.

Every error names the field of the command that caused it and the reason, so
the CLI, the import report and (later) the web forms can show it next to the
field. Raising one of these means nothing was written.
"""

from __future__ import annotations

import re

import msgspec


class DomainError(Exception):
    """A command was refused. ``field`` names the input at fault, ``reason`` says why."""

    code = "invalid"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def as_dict(self) -> dict[str, str]:
        """The error as plain data, for JSON reports."""
        return {"code": self.code, "field": self.field, "reason": self.reason}


class InvalidCommand(DomainError):
    """The command is malformed or breaks a rule that needs no stored state."""

    code = "invalid"


class NotFound(DomainError):
    """The command refers to a network, member, referral or agreement that does not exist."""

    code = "not_found"


class AlreadyExists(DomainError):
    """The command would create something whose identifier is already taken."""

    code = "already_exists"


class InvalidTransition(DomainError):
    """The command is not allowed in the current state (converting a declined referral...)."""

    code = "invalid_transition"


class ConcurrencyConflict(DomainError):
    """Another writer changed the same aggregate first; nothing of this command was written."""

    code = "conflict"


class VersionConflict(ConcurrencyConflict):
    """The append lost a race: an aggregate it extends got the same version from another writer.

    Deciding the commands again on the new state is as good as sending them
    again, which is why :meth:`partnerledger.Ledger.execute` retries these
    (docs/operations.md, "Concurrent changes").
    """


class LogChanged(ConcurrencyConflict):
    """Events that matter were stored after the log position a decision was based on.

    A period close is decided from the views as of one position and written
    only if no event of its network was stored since (``Store.append``'s
    ``unchanged_after``); otherwise it is decided again.
    """


class StoreUnavailable(DomainError):
    """The event store cannot be reached or used (bad URL, server down, locked file, full disk).

    ``reason`` names the database; ``public`` says what went wrong without its
    address (what a web page shows).
    """

    code = "store_unavailable"

    def __init__(self, field: str, reason: str, *, public: str | None = None) -> None:
        super().__init__(field, reason)
        self.public = public or "the database is not available right now"


_AT_PATH = re.compile(r"^(?P<reason>.*?) - at `\$(?P<path>[^`]*)`$")
_UNKNOWN = re.compile(
    r"^Object contains unknown field `(?P<field>[^`]+)`(?: - at `\$(?P<path>[^`]*)`)?$"
)
_MISSING = re.compile(
    r"^Object missing required field `(?P<field>[^`]+)`(?: - at `\$(?P<path>[^`]*)`)?$"
)
_REGEX = re.compile(r"matching regex '[^']*'")
# A refusal of a Struct's own check (``__post_init__``): "field: reason",
# with msgspec's "- at `$path`" when the Struct is nested.
_OWN = re.compile(
    r"^(?P<field>[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*): (?P<reason>.+?)"
    r"(?: - at `\$(?P<path>[^`]*)`)?$",
    re.S,
)


def _dotted(path: str) -> str:
    # msgspec paths look like ".terms.targets" or ".tiers[1].name": the domain's own form
    return path.lstrip(".") or "-"


def from_validation_error(error: msgspec.ValidationError | msgspec.DecodeError) -> InvalidCommand:
    """Turn a msgspec decoding error into an :class:`InvalidCommand` naming the field."""
    message = str(error)
    if isinstance(error, msgspec.DecodeError) and not isinstance(error, msgspec.ValidationError):
        return InvalidCommand("-", f"not valid JSON: {message}")
    for pattern, reason in ((_UNKNOWN, "unknown field"), (_MISSING, "required field is missing")):
        match = pattern.match(message)
        if match:
            prefix = _dotted(match["path"]) + "." if match["path"] else ""
            return InvalidCommand(prefix + match["field"], reason)
    match = _OWN.match(message)
    if match:
        prefix = _dotted(match["path"]) + "." if match["path"] else ""
        return InvalidCommand(prefix + match["field"], match["reason"])
    match = _AT_PATH.match(message)
    if match:
        reason = _REGEX.sub("in the allowed form (see `partnerledger schema`)", match["reason"])
        if match["path"] == ".type" and reason.startswith("Invalid value"):
            reason = reason.replace("Invalid value", "unknown command type")
        return InvalidCommand(_dotted(match["path"]), reason)
    if message.startswith("Expected `object`"):
        return InvalidCommand("-", "each line must be a JSON object")
    return InvalidCommand("-", message)
