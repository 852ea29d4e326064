"""The constrained scalar types every message of the ledger is built from."""

from __future__ import annotations

from datetime import datetime
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
CommandId = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$",
        description="Optional idempotency key; defaults to a digest of the command.",
    ),
]
Days = Annotated[int, msgspec.Meta(ge=1, le=36500)]


__all__ = ["AwareDatetime", "CommandId", "Currency", "Days", "Name", "Slug", "Text"]
