"""Deterministic aggregate identities.

An aggregate's UUID is derived from its network and its identifier in the
domain (a member slug, a referral id...), so the same command always targets
the same aggregate. That is what makes imports idempotent and lets two
stores built from the same file hold the same history.
"""

from __future__ import annotations

from functools import lru_cache
from uuid import UUID, uuid5

NAMESPACE = UUID("6c1f3d52-4a8e-5b3c-9a57-2f2e9d0c8b11")


@lru_cache(maxsize=1 << 16)  # a network and its members are named in most commands
def aggregate_id(kind: str, network: str, key: str = "") -> UUID:
    """The UUID of the ``kind`` aggregate named ``key`` in ``network``."""
    return uuid5(NAMESPACE, f"{kind}\x1f{network}\x1f{key}")
