"""``partnerledger audit``: tamper evidence, recorded decisions and audit bundles."""

from __future__ import annotations

from .main import cli


@cli.group()
def audit() -> None:
    """Check history: checkpoints, recorded decisions, audit bundles (see docs/audit.md)."""
