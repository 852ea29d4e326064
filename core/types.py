"""The constrained scalar types every message of the ledger is built from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import msgspec

Slug = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,99}$",
        description="An identifier: letters, digits and . _ : @ -, at most 100 characters.",
    ),
]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=5000)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Currency = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. USD.")
]
AwareDatetime = Annotated[
    datetime,
    msgspec.Meta(tz=True, description="RFC 3339 time with an offset; stored in UTC."),
]
#: When something happened in the business: an aware time in the range
#: :func:`in_range` checks (Command and the API's bodies check it).
BusinessTime = Annotated[
    datetime,
    msgspec.Meta(
        tz=True,
        description="RFC 3339 time with an offset, from 1900 up to 2200 (exclusive); "
        "stored in UTC.",
    ),
]
CommandId = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$",
        description="Optional idempotency key; defaults to a digest of the command.",
    ),
]
#: The most days a duration spans: 100 years.
MAX_DAYS = 36500
Days = Annotated[int, msgspec.Meta(ge=1, le=MAX_DAYS)]

#: Business times (when something happened, the moment a report is taken
#: at, the periods) lie from EARLIEST up to, not including, LATEST: far
#: enough either way for any partner program, and well inside what every
#: date computation (periods, terms, time zones) and both databases can hold.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
#: Why a business time outside that range is refused.
OUT_OF_RANGE = "must be from 1900-01-01T00:00:00Z up to (not including) 2200-01-01T00:00:00Z"


def in_range(moment: datetime) -> bool:
    """Whether an aware business time lies from :data:`EARLIEST` up to :data:`LATEST`."""
    return EARLIEST <= moment < LATEST


def lone_surrogate(text: str) -> str | None:
    """Why ``text`` cannot be stored (a lone UTF-16 surrogate), or ``None``.

    Such a string is no valid Unicode: it cannot be written as UTF-8, so no
    database or JSON document can hold it. It reaches us from a command
    line whose bytes are not UTF-8, or from Python code.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return (
            f"is not valid Unicode text: a lone surrogate {text[error.start]!r} "
            f"at character {error.start + 1} (is the input UTF-8?)"
        )
    return None


__all__ = [
    "EARLIEST",
    "LATEST",
    "MAX_DAYS",
    "OUT_OF_RANGE",
    "AwareDatetime",
    "BusinessTime",
    "CommandId",
    "Currency",
    "Days",
    "Name",
    "Slug",
    "Text",
    "in_range",
    "lone_surrogate",
]
