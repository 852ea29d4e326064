"""Notifications: in-app inbox messages, emails and signed webhooks for what happens.

The plugin only *decides* which messages an event sends; the delivery
worker (:mod:`partnerledger.delivery`, ``partnerledger deliver``) follows the
log after events are recorded, queues these messages and delivers them with
retries, so a message never delays or loses an event.

- inbox: one message per concerned member (``to`` is the member's slug);
- email: the same text to each concerned member's contact email (members
  without one are skipped);
- webhook: one POST per event of the listed types, whose body is the event
  as canonical JSON, signed with HMAC-SHA256 over the body bytes
  (``X-Partnerledger-Signature: sha256=<hex>``).

Who is concerned: for ``referral.sent`` the receiver; for a referral's
acceptance, decline, conversion or reversal the sender; for an agreement the
parties except the program; for ``member.suspended`` the member.

Settings are recorded in the log (``plugin.enabled``). A webhook secret
given as ``env:NAME`` is read from the environment variable ``NAME`` when a
message is signed, so the secret itself never enters the log.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from typing import Any

import msgspec

from partnerledger.commands import (
    COMMAND_TYPES,
    PROGRAM,
    AgreementProposed,
    AgreementTerminated,
    Command,
    MemberSuspended,
    ReferralAccepted,
    ReferralConverted,
    ReferralDeclined,
    ReferralReversed,
    ReferralSent,
)
from partnerledger.domain import Lookup
from partnerledger.errors import DomainError
from partnerledger.events import Event
from partnerledger.hookspecs import hookimpl
from partnerledger.rules import Message

NAME = "notifications"
VERSION = "1.0.0"

DEFAULT_EVENTS: tuple[str, ...] = (
    "referral.sent",
    "referral.accepted",
    "referral.declined",
    "referral.converted",
    "referral.reversed",
    "agreement.proposed",
    "agreement.terminated",
    "member.suspended",
)
SIGNATURE_HEADER = "X-Partnerledger-Signature"
EVENT_HEADER = "X-Partnerledger-Event"
ENV_PREFIX = "env:"


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which events notify, and through which channels."""

    events: tuple[str, ...] = DEFAULT_EVENTS
    inbox: bool = True
    email: bool = False
    webhook_url: str | None = None
    webhook_secret: str | None = None  # or "env:NAME": read from the environment when signing

    def __post_init__(self) -> None:
        for name in self.events:
            if name not in COMMAND_TYPES:
                raise ValueError(f"events: unknown event type {name!r}")
        if self.webhook_url is not None:
            if not self.webhook_url.startswith(("http://", "https://")):
                raise ValueError("webhook_url: must be an http:// or https:// URL")
            if not self.webhook_secret:
                raise ValueError("webhook_secret: required with webhook_url")
        if self.webhook_secret is not None and self.webhook_secret == ENV_PREFIX:
            raise ValueError("webhook_secret: name the environment variable after 'env:'")


@hookimpl
def partnerledger_settings() -> type[Settings]:
    """Declare the settings."""
    return Settings


@hookimpl
def partnerledger_notify(event: Event, lookup: Lookup, settings: Settings) -> list[Message]:
    """The inbox, email and webhook messages of one recorded event."""
    if event.type not in settings.events:
        return []
    messages: list[Message] = []
    if settings.inbox or settings.email:
        for member, subject, body in _texts(event.command, lookup):
            if settings.inbox:
                messages.append(Message(channel="inbox", to=member, subject=subject, body=body))
            if settings.email:
                address = _email(lookup, event.network, member)
                if address is not None:
                    messages.append(
                        Message(channel="email", to=address, subject=subject, body=body)
                    )
    if settings.webhook_url is not None and settings.webhook_secret is not None:
        messages.append(webhook(event, settings.webhook_url, secret(settings.webhook_secret)))
    return messages


# ------------------------------------------------------------------ webhooks


def canonical_body(event: Event) -> bytes:
    """The event as canonical JSON: sorted keys, compact, decimals as strings."""
    document = {
        "type": event.type,
        "network": event.network,
        "command_id": event.command_id,
        "recorded_at": event.recorded_at,
        "command": event.command,
    }
    return msgspec.json.encode(document, order="sorted")


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def secret(value: str) -> str:
    """The secret itself: ``env:NAME`` reads the environment variable ``NAME``."""
    if not value.startswith(ENV_PREFIX):
        return value
    name = value.removeprefix(ENV_PREFIX)
    found = os.environ.get(name)
    if not found:
        raise ValueError(f"webhook_secret: environment variable {name} is not set")
    return found


def webhook(event: Event, url: str, key: str) -> Message:
    """The signed webhook message of an event."""
    body = canonical_body(event)
    return Message(
        channel="webhook",
        to=url,
        subject=f"{event.type} {event.command_id}",
        body=body.decode(),
        headers={
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(key, body),
            EVENT_HEADER: event.type,
        },
    )


# -------------------------------------------------------------- human texts

#: (member, subject, body) for each concerned member.
Texts = list[tuple[str, str, str]]


def _texts(command: Command, lookup: Lookup) -> Texts:
    describe = _DESCRIBE.get(type(command))
    return describe(command, lookup) if describe is not None else []


def _name(lookup: Lookup, network: str, member: str) -> str:
    try:
        return lookup.member(network, member, "member").name or member
    except DomainError:
        return member


def _network(lookup: Lookup, network: str) -> str:
    try:
        return lookup.network(network).name or network
    except DomainError:
        return network


def _email(lookup: Lookup, network: str, member: str) -> str | None:
    try:
        contact = lookup.member(network, member, "member").contact
    except DomainError:
        return None
    return contact.email if contact is not None else None


def _lines(*lines: str | None) -> str:
    return "\n".join(line for line in lines if line)


def _referral_sent(command: ReferralSent, lookup: Lookup) -> Texts:
    sender = _name(lookup, command.network, command.from_member)
    # Personal data is sealed in the event: revealed here ("[erased]" once erased).
    customer = lookup.reveal(command.network, command.customer)
    contact = lookup.reveal(command.network, command.customer_contact, "customer_contact")
    subject = f"New referral {command.referral} from {sender}: customer {customer}"
    body = _lines(
        f"{sender} sent you referral {command.referral} in {_network(lookup, command.network)}.",
        f"Customer: {customer}",
        f"Contact: {contact}" if contact else None,
        f"Note: {command.note}" if command.note else None,
        f"Sent at {command.occurred_at:%Y-%m-%d %H:%M} UTC.",
    )
    return [(command.to_member, subject, body)]


def _referral_outcome(command: Command, lookup: Lookup) -> Texts:
    assert isinstance(
        command, ReferralAccepted | ReferralDeclined | ReferralConverted | ReferralReversed
    )
    referral = lookup.referral(command.network, command.referral, "referral")
    receiver = _name(lookup, command.network, referral.to_member)
    customer = lookup.reveal(command.network, referral.customer)
    what = f"referral {command.referral} (customer {customer})"
    if isinstance(command, ReferralAccepted):
        subject = f"Referral {command.referral} accepted by {receiver}: customer {customer}"
        detail = f"{receiver} accepted your {what}."
    elif isinstance(command, ReferralDeclined):
        subject = f"Referral {command.referral} declined by {receiver}: customer {customer}"
        detail = _lines(
            f"{receiver} declined your {what}.",
            f"Reason: {command.reason}" if command.reason else None,
        )
    elif isinstance(command, ReferralConverted):
        value = f"{command.deal_value} {command.currency}"
        subject = f"Referral {command.referral} converted by {receiver}: {value}"
        detail = f"Your {what} to {receiver} became business worth {value}."
    else:
        currency = command.currency or referral.currency or ""
        amount = f"{command.amount} {currency}".strip()
        subject = f"Referral {command.referral} reversed: {amount}"
        detail = _lines(
            f"{amount} of your {what} to {receiver} was reversed.",
            f"Reason: {command.reason}",
        )
    body = _lines(detail, f"At {command.occurred_at:%Y-%m-%d %H:%M} UTC.")
    return [(referral.from_member, subject, body)]


def _agreement(command: Command, lookup: Lookup) -> Texts:
    assert isinstance(command, AgreementProposed | AgreementTerminated)
    if isinstance(command, AgreementProposed):
        parties = command.parties
    else:
        parties = lookup.agreement(command.network, command.agreement, "agreement").parties
    members = [p for p in parties if p != PROGRAM]
    texts: Texts = []
    for member in members:
        others = [
            "the program" if p == PROGRAM else _name(lookup, command.network, p)
            for p in parties
            if p != member
        ]
        between = " and ".join(others) or "the network"
        if isinstance(command, AgreementProposed):
            subject = f"Agreement {command.agreement} proposed: {command.kind} with {between}"
            body = _lines(
                f"A {command.kind} agreement {command.agreement} with {between} "
                "awaits your acceptance.",
                f"Scope: {command.terms.scope}",
                f"Pilot: {command.pilot.days} days" if command.pilot else None,
            )
        else:
            subject = f"Agreement {command.agreement} with {between} terminated"
            body = f"Agreement {command.agreement} with {between} ended: {command.reason}"
        texts.append((member, subject, body))
    return texts


def _member_suspended(command: MemberSuspended, lookup: Lookup) -> Texts:
    network = _network(lookup, command.network)
    subject = f"Your membership of {network} is suspended"
    body = _lines(
        f"Your membership of {network} was suspended on {command.occurred_at:%Y-%m-%d}.",
        f"Reason: {command.reason}" if command.reason else None,
    )
    return [(command.member, subject, body)]


_DESCRIBE: dict[type[Command], Callable[[Any, Lookup], Texts]] = {
    ReferralSent: _referral_sent,
    ReferralAccepted: _referral_outcome,
    ReferralDeclined: _referral_outcome,
    ReferralConverted: _referral_outcome,
    ReferralReversed: _referral_outcome,
    AgreementProposed: _agreement,
    AgreementTerminated: _agreement,
    MemberSuspended: _member_suspended,
}
