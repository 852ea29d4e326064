"""The JSON API's agreements: proposals, acceptance, pilots, amendments, renewals, endings.

proposed → (every party accepts) → pilot → active, or straight to active
without a pilot; a live agreement is amended (a new terms version every
party accepted), renewed, or terminated. A member proposes agreements their
business is a party to, accepts for their business and may terminate their
own agreements; activating, amending and renewing are the coordinator's.
A member sees the agreements their business is a party to.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, FromQuery, JSONBody

from partnerledger.commands import AgreementKind, Pilot, Terms
from partnerledger.domain import Agreement, agreement_id
from partnerledger.domain.agreement import AgreementStatus
from partnerledger.types import Days, Slug, Text

from .api_common import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    LogEvent,
    WriteBody,
    Written,
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
from .api_referrals import record_events, record_positions
from .security import COORDINATOR, COORDINATOR_OR_MEMBER

TAG = "agreements"


class AgreementOut(msgspec.Struct, kw_only=True):
    """An agreement, its status and the terms in force."""

    agreement: str
    #: referral, co-marketing, channel, joint-venture or supply-chain.
    kind: AgreementKind
    #: Member ids; ``program`` stands for the network's program itself.
    parties: list[str]
    #: proposed, pilot, active, amended, renewed, terminated or expired.
    status: AgreementStatus
    #: The parties that accepted the proposal so far.
    accepted_by: list[str]
    #: 1 for the original terms, 2 after the first amendment...
    terms_version: int
    terms: Terms
    pilot: Pilot | None
    proposed_at: datetime | None
    started_at: datetime | None
    pilot_ends_at: datetime | None
    ends_at: datetime | None
    termination_reason: str | None
    updated_at: datetime | None


class TermsVersion(msgspec.Struct, kw_only=True):
    """One version of an agreement's terms."""

    version: int
    terms: Terms


class AgreementDetail(AgreementOut, kw_only=True):
    """An agreement with every version of its terms and its events."""

    versions: list[TermsVersion]
    events: list[LogEvent]


class AgreementPage(msgspec.Struct, kw_only=True):
    """A page of agreements, in the order they were proposed."""

    items: list[AgreementOut]
    next: str | None


def _fields(agreement: Agreement) -> dict[str, Any]:
    return {
        "agreement": agreement.slug,
        "kind": agreement.kind_of,
        "parties": list(agreement.parties),
        "status": agreement.status,
        "accepted_by": sorted(agreement.accepted_by),
        "terms_version": agreement.terms_version,
        "terms": agreement.current_terms,
        "pilot": agreement.pilot,
        "proposed_at": agreement.created_at,
        "started_at": agreement.started_at,
        "pilot_ends_at": agreement.pilot_ends_at,
        "ends_at": agreement.ends_at,
        "termination_reason": agreement.termination_reason,
        "updated_at": agreement.updated_at,
    }


@api_get("/networks/{network:str}/agreements", operation_id="listAgreements", tag=TAG)
async def list_agreements(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    status: FromQuery[AgreementStatus | None] = None,
    member: FromQuery[str | None] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> AgreementPage:
    """The network's agreements, in the order they were proposed.

    Filter by ``status`` and by ``member`` (a party). A member sees only the
    agreements their business is a party to.
    """
    member = only_self(request, network, member)
    after = offset(cursor)
    work = services(request).ledger.unit_of_work()
    items: list[AgreementOut] = []
    following, last = None, after
    for position, slug in record_positions(request, network, "agreement"):
        if position <= after:
            continue
        found = work.load(Agreement, agreement_id(network, slug))
        if found is None or (status is not None and found.status != status):
            continue
        if member is not None and member not in found.parties:
            continue
        if len(items) == limit:
            following = str(last)
            break
        items.append(AgreementOut(**_fields(found)))
        last = position
    return AgreementPage(items=items, next=following)


def _load(request: Request[Any, Any, Any], network: str, agreement: str) -> Agreement:
    work = services(request).ledger.unit_of_work()
    work.network(network)
    return work.agreement(network, agreement, "agreement")


@api_get("/networks/{network:str}/agreements/{agreement:str}", operation_id="getAgreement",
         tag=TAG)  # fmt: skip
async def get_agreement(
    request: Request[Any, Any, Any], network: FromPath[str], agreement: FromPath[str]
) -> AgreementDetail:
    """One agreement, with every version of its terms and its events.

    A member may read the agreements their business is a party to (403 otherwise).
    """
    found = _load(request, network, agreement)
    require_party(request, network, found.parties, "the agreement")
    return AgreementDetail(
        **_fields(found),
        versions=[TermsVersion(version=i, terms=t) for i, t in enumerate(found.terms, 1)],
        events=record_events(request, network, f"agreement:{agreement}"),
    )


class Proposal(WriteBody, kw_only=True):
    """An agreement to propose, with its first terms."""

    kind: AgreementKind
    #: Two or more member ids (``program`` for the network's program).
    parties: Annotated[list[Slug], msgspec.Meta(min_length=2)]
    terms: Terms
    #: A trial period (90 days by default) before the agreement becomes active.
    pilot: Pilot | None = None
    #: The agreement's id; generated when absent (from ``command_id`` when given).
    agreement: Slug | None = None


@api_post("/networks/{network:str}/agreements", operation_id="proposeAgreement", tag=TAG,
          opt=COORDINATOR_OR_MEMBER)  # fmt: skip
async def propose_agreement(
    request: Request[Any, Any, Any], network: FromPath[str], data: JSONBody[Proposal]
) -> Response[Written]:
    """Propose an agreement between members (or a member and the program).

    A member proposes only agreements their business is a party to. The new
    agreement's id is in the event's ``command.agreement``. Records
    ``agreement.proposed``.
    """
    own = own_business(request, network)
    if own is not None and own not in data.parties:
        raise PermissionDeniedException(
            f"a member proposes only agreements their business ({own}) is a party to"
        )
    slug = data.agreement or new_slug("a", network, data.command_id)
    return record(request, fields_of(data, type="agreement.proposed", network=network,
                                     agreement=slug))  # fmt: skip


class Acceptance(WriteBody, kw_only=True):
    """The party that accepts."""

    #: A member's own business by default; a coordinator names it (or ``program``).
    party: Slug | None = None


@api_post("/networks/{network:str}/agreements/{agreement:str}/accept",
          operation_id="acceptAgreement", tag=TAG, opt=COORDINATOR_OR_MEMBER)  # fmt: skip
async def accept_agreement(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    agreement: FromPath[str],
    data: JSONBody[Acceptance | None] = None,
) -> Response[Written]:
    """One party accepts a proposed agreement; when all have, its pilot (or term) starts.

    A member accepts for their own business only; a coordinator records any
    party's acceptance, the program's among them. Records ``agreement.accepted``.
    """
    _load(request, network, agreement)
    party = (data.party if data else None) or own_business(request, network)
    if party is not None:  # a member never accepts for another party, nor the program
        require_self(request, network, party, "party")
    return record(request, fields_of(data, type="agreement.accepted", network=network,
                                     agreement=agreement, party=party))  # fmt: skip


@api_post("/networks/{network:str}/agreements/{agreement:str}/activate",
          operation_id="activateAgreement", tag=TAG, opt=COORDINATOR)  # fmt: skip
async def activate_agreement(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    agreement: FromPath[str],
    data: JSONBody[WriteBody | None] = None,
) -> Response[Written]:
    """The pilot ended well: the agreement becomes active (coordinator).

    Records ``agreement.activated``.
    """
    _load(request, network, agreement)
    return record(request, fields_of(data, type="agreement.activated", network=network,
                                     agreement=agreement))  # fmt: skip


class Amendment(WriteBody, kw_only=True):
    """A new version of the terms, which every party accepted."""

    terms: Terms
    #: Every party of the agreement: an amendment needs them all.
    accepted_by: Annotated[list[Slug], msgspec.Meta(min_length=1)]


@api_post("/networks/{network:str}/agreements/{agreement:str}/amend",
          operation_id="amendAgreement", tag=TAG, opt=COORDINATOR)  # fmt: skip
async def amend_agreement(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    agreement: FromPath[str],
    data: JSONBody[Amendment],
) -> Response[Written]:
    """Record a new terms version that every party accepted (coordinator).

    The earlier versions stay readable. Records ``agreement.amended``.
    """
    _load(request, network, agreement)
    return record(request, fields_of(data, type="agreement.amended", network=network,
                                     agreement=agreement))  # fmt: skip


class Renewal(WriteBody, kw_only=True):
    """Another term: ``duration_days``, or the terms' own duration."""

    duration_days: Days | None = None


@api_post("/networks/{network:str}/agreements/{agreement:str}/renew",
          operation_id="renewAgreement", tag=TAG, opt=COORDINATOR)  # fmt: skip
async def renew_agreement(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    agreement: FromPath[str],
    data: JSONBody[Renewal | None] = None,
) -> Response[Written]:
    """Renew a live agreement for another term (coordinator).

    Records ``agreement.renewed``.
    """
    _load(request, network, agreement)
    return record(request, fields_of(data, type="agreement.renewed", network=network,
                                     agreement=agreement))  # fmt: skip


class Termination(WriteBody, kw_only=True):
    """Why the agreement ends."""

    reason: Text


@api_post("/networks/{network:str}/agreements/{agreement:str}/terminate",
          operation_id="terminateAgreement", tag=TAG, opt=COORDINATOR_OR_MEMBER)  # fmt: skip
async def terminate_agreement(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    agreement: FromPath[str],
    data: JSONBody[Termination],
) -> Response[Written]:
    """End an agreement early, for a reason.

    A coordinator ends any agreement; a member only one their business is a
    party to. Records ``agreement.terminated``.
    """
    found = _load(request, network, agreement)
    require_party(request, network, found.parties, "the agreement")
    return record(request, fields_of(data, type="agreement.terminated", network=network,
                                     agreement=agreement))  # fmt: skip


HANDLERS = [
    list_agreements,
    get_agreement,
    propose_agreement,
    accept_agreement,
    activate_agreement,
    amend_agreement,
    renew_agreement,
    terminate_agreement,
]
