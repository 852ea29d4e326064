"""The JSON API's networks and members.

Every role reads the network and its member directory. A coordinator
invites, admits, updates, suspends and reinstates members; a member may
update their own business's profile and leave the network.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.params import FromPath, FromQuery, JSONBody

from partnerledger import DomainError
from partnerledger.commands import Contact, MemberStatus, Period, Tier
from partnerledger.domain import Member, Network
from partnerledger.errors import StoreUnavailable
from partnerledger.types import CommandId, Name, Slug

from .api_common import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    Reason,
    TimeText,
    WriteBody,
    Written,
    api_get,
    api_post,
    fields_of,
    grant_of,
    record,
    require_self,
    services,
    slice_page,
)
from .security import COORDINATOR, COORDINATOR_OR_MEMBER, current_user

TAG_NETWORKS = "networks"
TAG_MEMBERS = "members"

# ---------------------------------------------------------------- networks


class NetworkOut(msgspec.Struct, kw_only=True):
    """A network and the caller's role in it."""

    network: str
    name: str
    currency: str
    #: How periods are cut: month, quarter or rolling (blocks of ``rolling_days``).
    period: Period
    rolling_days: int | None
    tiers: list[Tier]
    #: The plugins the network uses.
    plugins: list[str]
    #: The caller's role: coordinator, member or auditor.
    role: str
    #: The business a member acts for (``null`` for other roles).
    member: str | None


class NetworkPage(msgspec.Struct, kw_only=True):
    """A page of networks."""

    items: list[NetworkOut]
    next: str | None


def network_out(request: Request[Any, Any, Any], network: Network) -> NetworkOut:
    """The API's form of a network, for the caller."""
    grant = grant_of(request, network.network)
    return NetworkOut(
        network=network.network,
        name=network.name,
        currency=network.currency,
        period=network.period,
        rolling_days=network.rolling_days,
        tiers=list(network.tiers),
        plugins=sorted(network.plugins),
        role=grant.role,
        member=grant.member,
    )


@api_get("/networks", operation_id="listNetworks", tag=TAG_NETWORKS)
async def list_networks(
    request: Request[Any, Any, Any], limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> NetworkPage:
    """The networks you have a role in.

    Sorted by slug; each says your role and, for a member, the business you act for.
    """
    found = []
    for slug in sorted(current_user(request).grants):
        try:
            found.append(network_out(request, services(request).network(slug)))
        except StoreUnavailable:
            raise
        except DomainError:  # a role in a network that is not (yet) in the log
            continue
    items, following = slice_page(found, cursor, limit)
    return NetworkPage(items=items, next=following)


@api_get("/networks/{network:str}", operation_id="getNetwork", tag=TAG_NETWORKS)
async def get_network(request: Request[Any, Any, Any], network: FromPath[str]) -> NetworkOut:
    """One network: currency, evaluation period, tier ladder, plugins and your role."""
    return network_out(request, services(request).network(network))


# ----------------------------------------------------------------- members


class MemberOut(msgspec.Struct, kw_only=True):
    """A member business of a network."""

    member: str
    name: str
    category: str
    service_area: str | None
    contact: Contact | None
    #: invited, active, suspended or left.
    status: MemberStatus
    #: When the member was invited or joined (business time).
    since: datetime | None
    updated_at: datetime | None


class MemberPage(msgspec.Struct, kw_only=True):
    """A page of members."""

    items: list[MemberOut]
    next: str | None


def member_out(member: Member) -> MemberOut:
    """The API's form of a member."""
    return MemberOut(
        member=member.slug,
        name=member.name,
        category=member.category,
        service_area=member.service_area,
        contact=member.contact,
        status=member.status,
        since=member.created_at,
        updated_at=member.updated_at,
    )


@api_get("/networks/{network:str}/members", operation_id="listMembers", tag=TAG_MEMBERS)
async def list_members(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    status: FromQuery[MemberStatus | None] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> MemberPage:
    """The network's members, in the order they were invited or joined.

    Filter by ``status`` (invited, active, suspended, left). Every role reads
    the directory.
    """
    found = [
        member_out(m)
        for m in services(request).members(network)
        if status is None or m.status == status
    ]
    items, following = slice_page(found, cursor, limit)
    return MemberPage(items=items, next=following)


@api_get("/networks/{network:str}/members/{member:str}", operation_id="getMember", tag=TAG_MEMBERS)
async def get_member(
    request: Request[Any, Any, Any], network: FromPath[str], member: FromPath[str]
) -> MemberOut:
    """One member: profile and status."""
    work = services(request).ledger.unit_of_work()
    work.network(network)
    return member_out(work.member(network, member, "member"))


class InviteMember(WriteBody, kw_only=True):
    """A business to invite into the network."""

    #: The new member's id (a slug: letters, digits, ``. _ : @ -``).
    member: Slug
    name: Name
    category: Name
    service_area: Name | None = None
    contact: Contact | None = None


@api_post("/networks/{network:str}/members", operation_id="inviteMember", tag=TAG_MEMBERS,
          opt=COORDINATOR)  # fmt: skip
async def invite_member(
    request: Request[Any, Any, Any], network: FromPath[str], data: JSONBody[InviteMember]
) -> Response[Written]:
    """Invite a business (coordinator): it is ``invited`` until it joins.

    Records ``member.invited``.
    """
    return record(request, fields_of(data, type="member.invited", network=network))


class JoinMember(WriteBody, kw_only=True):
    """Profile fields to set as the invited business joins (the invitation's by default)."""

    name: Name | None = None
    category: Name | None = None
    service_area: Name | None = None
    contact: Contact | None = None


@api_post("/networks/{network:str}/members/{member:str}/join", operation_id="admitMember",
          tag=TAG_MEMBERS, opt=COORDINATOR)  # fmt: skip
async def admit_member(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    member: FromPath[str],
    data: JSONBody[JoinMember | None] = None,
) -> Response[Written]:
    """An invited business joins and becomes ``active`` (coordinator).

    Records ``member.joined``.
    """
    return record(request, fields_of(data, type="member.joined", network=network, member=member))


class UpdateMember(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A partial update of a member's profile: only the fields given change."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    category: Name | msgspec.UnsetType = msgspec.UNSET
    service_area: Name | msgspec.UnsetType = msgspec.UNSET
    contact: Contact | msgspec.UnsetType = msgspec.UNSET
    occurred_at: TimeText | msgspec.UnsetType = msgspec.UNSET
    command_id: CommandId | msgspec.UnsetType = msgspec.UNSET


@api_post("/networks/{network:str}/members/{member:str}", operation_id="updateMember",
          tag=TAG_MEMBERS, opt=COORDINATOR_OR_MEMBER, method="PATCH")  # fmt: skip
async def update_member(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    member: FromPath[str],
    data: JSONBody[UpdateMember],
) -> Response[Written]:
    """Change a member's profile: name, category, service area or contact.

    Fields left out keep their value. A coordinator updates any member; a
    member only their own business. Records ``member.updated``.
    """
    require_self(request, network, member, "the member")
    return record(request, fields_of(data, type="member.updated", network=network, member=member))


@api_post("/networks/{network:str}/members/{member:str}/suspend", operation_id="suspendMember",
          tag=TAG_MEMBERS, opt=COORDINATOR)  # fmt: skip
async def suspend_member(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    member: FromPath[str],
    data: JSONBody[Reason | None] = None,
) -> Response[Written]:
    """Suspend an active member (coordinator): they can neither send nor receive referrals.

    Records ``member.suspended``.
    """
    return record(request, fields_of(data, type="member.suspended", network=network,
                                     member=member))  # fmt: skip


@api_post("/networks/{network:str}/members/{member:str}/reinstate",
          operation_id="reinstateMember", tag=TAG_MEMBERS, opt=COORDINATOR)  # fmt: skip
async def reinstate_member(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    member: FromPath[str],
    data: JSONBody[Reason | None] = None,
) -> Response[Written]:
    """Make a suspended member active again (coordinator).

    Records ``member.reinstated``.
    """
    return record(request, fields_of(data, type="member.reinstated", network=network,
                                     member=member))  # fmt: skip


@api_post("/networks/{network:str}/members/{member:str}/leave", operation_id="memberLeaves",
          tag=TAG_MEMBERS, opt=COORDINATOR_OR_MEMBER)  # fmt: skip
async def member_leaves(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    member: FromPath[str],
    data: JSONBody[Reason | None] = None,
) -> Response[Written]:
    """A member leaves the network, for good.

    A coordinator records it for any member; a member only for their own
    business. Records ``member.left``.
    """
    require_self(request, network, member, "the member")
    return record(request, fields_of(data, type="member.left", network=network, member=member))


HANDLERS = [
    list_networks,
    get_network,
    list_members,
    get_member,
    invite_member,
    admit_member,
    update_member,
    suspend_member,
    reinstate_member,
    member_leaves,
]
