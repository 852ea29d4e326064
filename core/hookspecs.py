"""Every hook a partnerledger plugin can implement, in one place.

Hook names start with ``partnerledger_``. A plugin implements any of them
with ``@hookimpl`` (``from partnerledger import hookimpl``) and names only the
arguments it needs: pluggy passes an implementation just those, so hooks can
gain arguments without breaking old plugins.

Every hook that decides something receives ``settings``: the plugin's own
settings for the network at hand (an instance of the Struct its
``partnerledger_settings`` returns, validated, defaults filled in), or
``None`` for a plugin without settings. The application calls only the
plugins a network enabled, each with its own settings, and records every
decision with the plugin's name and version.

*Single decision* hooks (``firstresult``): the first enabled plugin that
returns something other than ``None`` decides; return ``None`` to let the
next one try. *Collections*: every enabled plugin contributes; ``None`` or
an empty list means "nothing from me".

A plugin that raises, returns another type than its hook's, or takes longer
than ``PARTNERLEDGER_PLUGIN_TIMEOUT`` seconds fails with ``PluginFailed``
naming it: the operation writes nothing, except where a hook below says the
plugin is skipped instead (notify). See docs/plugins.md, "When a plugin
misbehaves".
"""

from __future__ import annotations

from typing import Any

import msgspec
import pluggy

from .commands import Command, Terms, Tier
from .domain import Lookup
from .events import Event
from .rules import (
    Activity,
    Credit,
    LedgerEntry,
    Message,
    ReferralFacts,
    Score,
    TierChoice,
    Veto,
)

PROJECT = "partnerledger"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def partnerledger_settings() -> type[msgspec.Struct] | None:
    """Declare the plugin's settings: a msgspec Struct class whose fields all have defaults.

    Receives nothing. Returns the Struct class, or ``None`` for a plugin with no
    settings. A network's ``plugin.configured`` command is validated against it:
    a bad value is refused with the field and the reason.
    Called for each plugin on its own (not a decision, not a collection).
    """


@hookspec(firstresult=True)
def partnerledger_score(activity: Activity, settings: Any) -> Score | None:
    """Score one member's activity in a window. Single decision (``firstresult``).

    Receives the member's :class:`~partnerledger.rules.Activity` (counts and sums
    over the window) and the plugin's settings. Returns a
    :class:`~partnerledger.rules.Score` (total, breakdown by component, optional
    label such as a colour), or ``None`` to leave the decision to another plugin.
    """


@hookspec(firstresult=True)
def partnerledger_tier(
    score: Score,
    ladder: tuple[Tier, ...],
    previous: str | None,
    periods_below: int,
    settings: Any,
) -> TierChoice | None:
    """Turn a score into a tier. Single decision (``firstresult``).

    Receives the score, the network's tier ladder (lowest rung first), the tier
    the member held in the previous period (``None`` if none), how many periods
    in a row before this one the member already scored below that tier's
    threshold (``0`` if none; for grace periods) and the settings.
    Returns a :class:`~partnerledger.rules.TierChoice` (its ``tier`` is ``None``
    when the score earns no rung), or ``None`` to leave it to another plugin.
    """


@hookspec
def partnerledger_incentives(
    event: Event,
    referral: ReferralFacts | None,
    terms: Terms | None,
    tier: TierChoice | None,
    settings: Any,
) -> list[LedgerEntry] | None:
    """Ledger entries an event causes. Collection: every enabled plugin adds its own.

    Receives the event (a conversion, a reversal, a tier decision...), the
    referral it concerns as it stands after the event (``None`` if none), the
    terms in force of the agreement between the referral's members (``None``
    without one), the tier decided (for a tier decision, else ``None``) and
    the settings. Returns the entries:
    referral fees, revenue shares, bonuses, clawbacks (negative amounts), each
    naming the event's command id as its source; ``None`` or ``[]`` for none.
    """


@hookspec(firstresult=True)
def partnerledger_attribute(
    customer: str, referrals: list[ReferralFacts], settings: Any
) -> list[Credit] | None:
    """Share the credit when two or more referrals send the same customer to the same member.

    Single decision (``firstresult``). Receives the customer's data subject (a
    pseudonym, never the name) and the competing referrals, oldest first, and
    the settings. Returns the credits, whose shares
    add up to 1, or ``None`` to leave the decision to another plugin.
    """


@hookspec
def partnerledger_notify(event: Event, lookup: Lookup, settings: Any) -> list[Message] | None:
    """Messages an event should send. Collection: every enabled plugin adds its own.

    Receives a recorded event, a ``lookup`` of the network's state (members'
    contacts...) and the settings. Returns messages (inbox, email,
    webhook), or ``None`` / ``[]`` for none. A plugin that fails here never
    stops the others and never loses or delays an event.
    """


@hookspec
def partnerledger_validate(command: Command, lookup: Lookup, settings: Any) -> Veto | None:
    """Veto a command before it is recorded. Collection: any veto refuses the command.

    Receives the command about to be decided, a ``lookup`` of the network's
    state as the command would see it (``lookup.member(network, slug, field)``,
    ``lookup.referral(...)``, ``lookup.agreements_of(network, member)``...) and
    the settings. Returns a
    :class:`~partnerledger.rules.Veto` (field and reason) to refuse it, or
    ``None`` to let it through. The command is then refused with that field and
    reason and nothing is written.
    """


__all__ = [
    "Activity",
    "Credit",
    "LedgerEntry",
    "Message",
    "ReferralFacts",
    "Score",
    "TierChoice",
    "Veto",
    "hookimpl",
]
