"""The JSON API's referrals: the pipeline and every transition of its lifecycle.

sent → accepted | declined; accepted → converted | lost; converted →
reversed (in full or in part). A member sends referrals from their own
business and answers (accepts, declines, converts, loses) only those sent
to it; a coordinator acts for anyone and alone records reversals; an
auditor reads. A member sees the referrals their business sent or received.

The customer's name and contact are personal data, sealed in the log: they
read ``[erased]`` once the customer's data subject is erased (docs/privacy.md).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.params import FromPath, FromQuery, JSONBody

from partnerledger import DomainError
from partnerledger.domain import Referral
from partnerledger.domain.referral import ReferralStatus
from partnerledger.errors import StoreUnavailable
from partnerledger.types import Currency, Name, Slug, Text
from partnerledger.views.pipeline import PipelineRow, in_order_sent
from partnerledger.views.trail import entities, trail

from .api_common import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    LogEvent,
    Reason,
    WriteBody,
    Written,
    amount,
    api_get,
    api_post,
    fields_of,
    new_slug,
    offset,
    only_self,
    own_business,
    record,
    require_party,
    require_self,
    services,
)
from .security import COORDINATOR, COORDINATOR_OR_MEMBER

TAG = "referrals"


class ReferralOut(msgspec.Struct, kw_only=True):
    """A referral and what became of it (amounts in the network's currency)."""

    referral: str
    from_member: str
    to_member: str
    #: The customer's name, or ``[erased]``.
    customer: str
    #: The customer's email or phone, ``[erased]``, or ``null`` when none was given.
    customer_contact: str | None
    #: The customer's data subject (a pseudonym; see docs/privacy.md).
    subject: str
    #: sent, accepted, declined, converted, lost or reversed.
    status: ReferralStatus
    sent_at: datetime | None
    updated_at: datetime | None
    #: Money as a string with at least two decimals: ``"10000.00"``.
    deal_value: str | None
    currency: str | None
    converted_at: datetime | None
    #: The amount reversed so far (refunds, clawbacks).
    reversed_amount: str
    #: The deal value after reversals.
    net_value: str


class ReferralDetail(ReferralOut, kw_only=True):
    """A referral with its events, in log order."""

    events: list[LogEvent]


class ReferralPage(msgspec.Struct, kw_only=True):
    """A page of referrals, in the order they were sent."""

    items: list[ReferralOut]
    next: str | None


def _fields(request: Request[Any, Any, Any], referrals: list[Referral]) -> list[dict[str, Any]]:
    """The API's fields of referrals of one network, personal data revealed in one read."""
    if not referrals:
        return []
    shown = services(request).reveal_many(
        referrals[0].network,
        [
            item
            for r in referrals
            for item in (("customer", r.customer), ("customer_contact", r.customer_contact))
        ],
    )
    return [_one(r, shown[2 * i] or "", shown[2 * i + 1]) for i, r in enumerate(referrals)]


def _one(referral: Referral, customer: str, contact: str | None) -> dict[str, Any]:
    return {
        "referral": referral.slug,
        "from_member": referral.from_member,
        "to_member": referral.to_member,
        "customer": customer,
        "customer_contact": contact,
        "subject": referral.subject,
        "status": referral.status,
        "sent_at": referral.created_at,
        "updated_at": referral.updated_at,
        "deal_value": amount(referral.deal_value) if referral.deal_value is not None else None,
        "currency": referral.currency,
        "converted_at": referral.converted_at,
        "reversed_amount": amount(referral.reversed_amount),
        "net_value": amount(referral.net_value),
    }


def record_events(request: Request[Any, Any, Any], network: str, entity: str) -> list[LogEvent]:
    """A record's events from the audit trail view."""
    try:
        found = trail(services(request).db, network, entity)
    except StoreUnavailable:
        raise
    except DomainError:  # the view has not read the record yet
        return []
    return [
        LogEvent(
            position=e.position,
            type=e.type,
            network=e.network,
            actor=e.actor,
            command_id=e.command_id,
            occurred_at=e.occurred_at,
            recorded_at=e.recorded_at,
            command=e.command,
        )
        for e in found
    ]


def record_positions(
    request: Request[Any, Any, Any], network: str, kind: str
) -> list[tuple[int, str]]:
    """The network's records of one kind (referral, agreement): (first position, id), in order."""
    try:
        found = entities(services(request).db, network, kind=kind)
    except StoreUnavailable:
        raise
    except DomainError:  # the view has not read the network yet
        return []
    return sorted((e.first_position, e.entity.partition(":")[2]) for e in found)


def _row_fields(
    request: Request[Any, Any, Any], network: str, rows: list[PipelineRow]
) -> list[dict[str, Any]]:
    """The API's fields of pipeline view rows, personal data revealed in one read."""
    shown = services(request).reveal_many(
        network,
        [(f, v) for r in rows for f, v in (("customer", r.customer),
                                           ("customer_contact", r.customer_contact))],
    )  # fmt: skip
    return [
        {
            "referral": r.referral,
            "from_member": r.from_member,
            "to_member": r.to_member,
            "customer": shown[2 * i] or "",
            "customer_contact": shown[2 * i + 1],
            "subject": r.subject,
            "status": r.status,
            "sent_at": r.sent_at,
            "updated_at": r.updated_at,
            "deal_value": amount(r.deal_value) if r.deal_value is not None else None,
            "currency": r.currency,
            "converted_at": r.converted_at,
            "reversed_amount": amount(r.reversed_amount),
            "net_value": amount(r.net_value),
        }
        for i, r in enumerate(rows)
    ]


@api_get("/networks/{network:str}/referrals", operation_id="listReferrals", tag=TAG)
async def list_referrals(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    status: FromQuery[ReferralStatus | None] = None,
    member: FromQuery[str | None] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> ReferralPage:
    """The network's referrals, in the order they were sent.

    Filter by ``status`` and by ``member`` (sent or received by that
    business). A member sees only their own business's referrals. A page is
    read from the pipeline view with a LIMIT: its work grows with ``limit``,
    not with the network's history.
    """
    member = only_self(request, network, member)
    rows = in_order_sent(services(request).db, network, after=offset(cursor), status=status,
                         member=member, limit=limit + 1)  # fmt: skip
    following = str(rows[limit - 1].position) if len(rows) > limit else None
    items = _row_fields(request, network, rows[:limit])
    return ReferralPage(items=[ReferralOut(**fields) for fields in items], next=following)


def _load(request: Request[Any, Any, Any], network: str, referral: str) -> Referral:
    work = services(request).ledger.unit_of_work()
    work.network(network)
    return work.referral(network, referral, "referral")


@api_get("/networks/{network:str}/referrals/{referral:str}", operation_id="getReferral", tag=TAG)
async def get_referral(
    request: Request[Any, Any, Any], network: FromPath[str], referral: FromPath[str]
) -> ReferralDetail:
    """One referral, with every event of its lifecycle.

    A member may read the referrals their business sent or received (403 otherwise).
    """
    found = _load(request, network, referral)
    require_party(request, network, (found.from_member, found.to_member), "the referral")
    return ReferralDetail(
        **_fields(request, [found])[0],
        events=record_events(request, network, f"referral:{referral}"),
    )


class SendReferral(WriteBody, kw_only=True):
    """A lead to send to another member."""

    #: The receiving member.
    to_member: Slug
    #: The customer (a name, never more personal data than needed); stored encrypted.
    customer: Name
    #: How to reach the customer (an email or a phone number); stored encrypted.
    customer_contact: Name | None = None
    #: The customer's data subject id, e.g. your CRM's; derived from the name when absent.
    subject: Slug | None = None
    #: The sending member; a member's own business by default.
    from_member: Slug | None = None
    #: The referral's id; generated when absent (from ``command_id`` when given).
    referral: Slug | None = None
    note: Text | None = None


@api_post("/networks/{network:str}/referrals", operation_id="sendReferral", tag=TAG,
          opt=COORDINATOR_OR_MEMBER)  # fmt: skip
async def send_referral(
    request: Request[Any, Any, Any], network: FromPath[str], data: JSONBody[SendReferral]
) -> Response[Written]:
    """Send a referral: a lead from one member to another.

    A member sends from their own business (``from_member`` defaults to it);
    a coordinator names the sender. The new referral's id is in the event's
    ``command.referral``. Records ``referral.sent``.
    """
    sender = data.from_member or own_business(request, network)
    if sender is not None:
        require_self(request, network, sender, "from_member")
    slug = data.referral or new_slug("r", network, data.command_id)
    return record(request, fields_of(data, type="referral.sent", network=network,
                                     from_member=sender, referral=slug))  # fmt: skip


def _answer(
    request: Request[Any, Any, Any],
    network: str,
    referral: str,
    kind: str,
    body: msgspec.Struct | None,
    **extra: Any,
) -> Response[Written]:
    """A transition the receiving member (or a coordinator) records."""
    found = _load(request, network, referral)
    require_self(request, network, found.to_member, "the referral's receiver")
    return record(request, fields_of(body, type=kind, network=network, referral=referral, **extra))


@api_post("/networks/{network:str}/referrals/{referral:str}/accept",
          operation_id="acceptReferral", tag=TAG, opt=COORDINATOR_OR_MEMBER)  # fmt: skip
async def accept_referral(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    referral: FromPath[str],
    data: JSONBody[WriteBody | None] = None,
) -> Response[Written]:
    """The receiving member takes the lead on (``sent`` → ``accepted``).

    A member answers only referrals sent to their business. Records ``referral.accepted``.
    """
    return _answer(request, network, referral, "referral.accepted", data)


@api_post("/networks/{network:str}/referrals/{referral:str}/decline",
          operation_id="declineReferral", tag=TAG, opt=COORDINATOR_OR_MEMBER)  # fmt: skip
async def decline_referral(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    referral: FromPath[str],
    data: JSONBody[Reason | None] = None,
) -> Response[Written]:
    """The receiving member turns the lead down (``sent`` → ``declined``).

    A member answers only referrals sent to their business. Records ``referral.declined``.
    """
    return _answer(request, network, referral, "referral.declined", data)


@api_post("/networks/{network:str}/referrals/{referral:str}/lose",
          operation_id="loseReferral", tag=TAG, opt=COORDINATOR_OR_MEMBER)  # fmt: skip
async def lose_referral(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    referral: FromPath[str],
    data: JSONBody[Reason | None] = None,
) -> Response[Written]:
    """An accepted lead did not become business (``accepted`` → ``lost``).

    A member answers only referrals sent to their business. Records ``referral.lost``.
    """
    return _answer(request, network, referral, "referral.lost", data)


class Conversion(WriteBody, kw_only=True):
    """The business a lead became: its value (``occurred_at`` is the deal's date)."""

    #: The deal's value, e.g. ``"10000.00"`` (a string keeps every digit).
    deal_value: Decimal
    #: The network's currency by default.
    currency: Currency | None = None


@api_post("/networks/{network:str}/referrals/{referral:str}/convert",
          operation_id="convertReferral", tag=TAG, opt=COORDINATOR_OR_MEMBER)  # fmt: skip
async def convert_referral(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    referral: FromPath[str],
    data: JSONBody[Conversion],
) -> Response[Written]:
    """An accepted lead became business worth ``deal_value`` (``accepted`` → ``converted``).

    A member answers only referrals sent to their business. Fees and
    revenue shares owed follow from the network's incentive rules. Records
    ``referral.converted``.
    """
    currency = data.currency or services(request).network(network).currency
    return _answer(request, network, referral, "referral.converted", data, currency=currency)


class Reversal(WriteBody, kw_only=True):
    """Part or all of a conversion's value taken back."""

    #: The amount reversed, at most the value left.
    amount: Decimal
    reason: Text
    currency: Currency | None = None


@api_post("/networks/{network:str}/referrals/{referral:str}/reverse",
          operation_id="reverseReferral", tag=TAG, opt=COORDINATOR)  # fmt: skip
async def reverse_referral(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    referral: FromPath[str],
    data: JSONBody[Reversal],
) -> Response[Written]:
    """Reverse part or all of a conversion: a refund or a clawback (coordinator).

    Incentives earned on it are clawed back in proportion. Records ``referral.reversed``.
    """
    _load(request, network, referral)
    return record(request, fields_of(data, type="referral.reversed", network=network,
                                     referral=referral))  # fmt: skip


HANDLERS = [
    list_referrals,
    get_referral,
    send_referral,
    accept_referral,
    decline_referral,
    lose_referral,
    convert_referral,
    reverse_referral,
]
