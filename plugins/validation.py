"""Validation rules a network can switch on: vetoes with a field and a reason.

- no self-referral: a member cannot refer a customer to itself;
- only active members send or receive referrals;
- exclusivity: a member bound by a live exclusive agreement with a partner
  refers that partner's category of business only to that partner.

The core already refuses the first two for every network; this plugin
states them as the network's own rules (so a network's rule list is
complete) and adds exclusivity.
"""

from __future__ import annotations

import msgspec

from partnerledger.commands import PROGRAM, Command, ReferralSent
from partnerledger.domain import Lookup
from partnerledger.errors import DomainError
from partnerledger.hookspecs import hookimpl
from partnerledger.rules import Veto

NAME = "validation"
VERSION = "1.0.0"

LIVE = ("pilot", "active", "amended", "renewed")


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which checks are on (all by default)."""

    no_self_referral: bool = True
    only_active_members: bool = True
    exclusivity: bool = True


@hookimpl
def partnerledger_settings() -> type[Settings]:
    """Declare the settings."""
    return Settings


@hookimpl
def partnerledger_validate(command: Command, lookup: Lookup, settings: Settings) -> Veto | None:
    """Veto a referral that breaks one of the enabled checks."""
    if not isinstance(command, ReferralSent):
        return None
    if settings.no_self_referral and command.from_member == command.to_member:
        return Veto(field="to_member", reason="a member cannot refer a customer to itself")
    try:
        sender = lookup.member(command.network, command.from_member, "from_member")
        receiver = lookup.member(command.network, command.to_member, "to_member")
    except DomainError as error:
        return Veto(field=error.field, reason=error.reason)
    if settings.only_active_members:
        for field, member in (("from_member", sender), ("to_member", receiver)):
            if member.status != "active":
                return Veto(field=field, reason=f"member {member.slug!r} is {member.status}")
    if settings.exclusivity:
        return _exclusive(command, lookup, receiver.category)
    return None


def _exclusive(command: ReferralSent, lookup: Lookup, category: str) -> Veto | None:
    for agreement in lookup.agreements_of(command.network, command.from_member):
        if agreement.status not in LIVE or not agreement.current_terms.exclusivity:
            continue
        for partner in agreement.parties:
            if partner in (command.from_member, command.to_member, PROGRAM):
                continue
            bound = lookup.member(command.network, partner, "to_member")
            if bound.category == category:
                return Veto(
                    field="to_member",
                    reason=f"{command.from_member!r} refers {category} business only to "
                    f"{partner!r} under exclusive agreement {agreement.slug!r}",
                )
    return None
