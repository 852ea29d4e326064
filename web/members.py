"""Members: the list, a member's profile, standing history and scorecards, and their status.

Every role of the network reads these pages; only a coordinator invites a
business (``member.invited``), marks an invited one as joined
(``member.joined``), suspends, reinstates or records that a member left.
A refused command writes nothing: the form comes back (422) with the reason
next to the field at fault. A member's page takes ``as_of`` and
``as_of_recorded``: the profile, standing history and scorecards as of that
moment, computed from the log, without the status actions
(:mod:`partnerledger.web.asof`).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from partnerledger import DomainError
from partnerledger.domain import Member
from partnerledger.errors import NotFound, StoreUnavailable
from partnerledger.views.asof import Cut
from partnerledger.views.scorecards import scorecards
from partnerledger.views.standings import history

from .asof import context as asof_context
from .asof import page_cut, page_views
from .dashboard import cards_of, latest_standings, money_text
from .pages import NAV, NavItem, page, read_form
from .security import COORDINATOR, current_user, network_guard, services_of
from .services import Services, ensure_network

NAV.append(NavItem("Members", "/members", order=20))

#: The invitation form's inputs, and the command field each one fills.
INVITE_FIELDS = ("member", "name", "category", "service_area", "contact_email")
#: What each status change records, its label, and the statuses it applies to.
ACTIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "join": ("member.joined", "Mark as joined", ("invited",)),
    "suspend": ("member.suspended", "Suspend", ("active",)),
    "reinstate": ("member.reinstated", "Reinstate", ("suspended",)),
    "leave": ("member.left", "Record that the member left", ("invited", "active", "suspended")),
}


def _text(form: dict[str, Any], name: str) -> str:
    value = form.get(name, "")
    return str(value[-1] if isinstance(value, list) else value).strip()


def _invite_errors(error: DomainError) -> dict[str, str]:
    """The refused field, named as the invitation form's input."""
    name = error.field
    if name.startswith("contact"):
        name = "contact_email"
    return {name: error.reason}


def _members_page(
    request: Request[Any, Any, Any],
    network: str,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Template:
    services = services_of(request)
    found = ensure_network(services, network)
    period, standing = latest_standings(services.db, network)
    members = sorted(services.members(network), key=lambda m: (m.name.lower(), m.slug))
    return page(
        request, "members.html", network=network, info=found, members=members, period=period,
        standing=standing, errors=errors or {}, values=values or {}, status_code=status_code,
    )  # fmt: skip


@get(
    "/n/{network:str}/members",
    operation_id="membersPage",
    guards=[network_guard],
    include_in_schema=False,
)
async def members_page(request: Request[Any, Any, Any], network: FromPath[str]) -> Template:
    """The network's members with their status and latest standing."""
    return _members_page(request, network)


@post(
    "/n/{network:str}/members",
    operation_id="inviteMember",
    guards=[network_guard],
    opt=COORDINATOR,
    include_in_schema=False,
)
async def invite_member(request: Request[Any, Any, Any], network: FromPath[str]) -> Any:
    """Invite a business to the network (a coordinator only)."""
    services = services_of(request)
    form = await read_form(request)
    values = {name: _text(form, name) for name in INVITE_FIELDS}
    email = values["contact_email"]
    fields = {
        "type": "member.invited",
        "network": network,
        "member": values["member"],
        "name": values["name"],
        "category": values["category"],
        "service_area": values["service_area"],
        "contact": {"email": email} if email else None,
    }
    try:
        services.execute(fields, current_user(request))
    except StoreUnavailable:
        raise
    except DomainError as error:
        return _members_page(
            request, network, errors=_invite_errors(error), values=values, status_code=422
        )
    return Redirect(path=f"/n/{network}/members/{values['member']}", status_code=303)


def _member(services: Services, network: str, slug: str) -> Member:
    """The member, or NotFound (a 404 page)."""
    ensure_network(services, network)
    found: Member = services.ledger.unit_of_work().member(network, slug, "member")
    return found


def _member_page(
    request: Request[Any, Any, Any],
    network: str,
    slug: str,
    *,
    cut: Cut | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Template:
    services = services_of(request)
    if cut is not None:
        return _member_as_of(request, network, slug, cut)
    info = ensure_network(services, network)
    member = _member(services, network, slug)
    db = services.db
    names = {m.slug: m.name for m in services.members(network)}
    periods = history(db, network, slug)
    cards = cards_of(db, network, slug)
    chart = {
        "labels": [s.period for s in periods],
        "scores": [str(s.total) if s.total is not None else None for s in periods],
        "tiers": [s.tier_name for s in periods],
    }
    # A refused action keeps its form, so its reason shows next to it.
    failed = {name.removesuffix("_reason") for name in errors or {}}
    actions = [
        (name, label) for name, (_, label, statuses) in ACTIONS.items()
        if member.status in statuses or name in failed
    ]  # fmt: skip
    role = current_user(request).role_in(network)
    return page(
        request, "members_detail.html", network=network, info=info, member=member,
        periods=list(reversed(periods)), history_chart=chart, cards=cards, names=names,
        money=lambda value: money_text(value, info.currency), actions=actions,
        errors=errors or {}, values=values or {}, status_code=status_code,
        **asof_context(None, role, f"/n/{network}/members/{slug}"),
    )  # fmt: skip


def _member_as_of(request: Request[Any, Any, Any], network: str, slug: str, cut: Cut) -> Template:
    """A member's page as of a moment: the profile, standing history and scorecards of then,
    computed from the log; no status actions (history is read-only)."""
    services = services_of(request)
    with page_views(services, network, cut) as views:
        info = views.network
        assert info is not None
        member = views.member(slug)
        if member is None:
            raise NotFound("member", f"no member {slug!r} in {network!r} {cut.describe()}")
        names = {m.slug: m.name for m in views.members()}
        periods = history(views, network, slug)
        try:
            cards = scorecards(views, network, member=slug, as_of=cut.moment)
        except NotFound:
            cards = []
    chart = {
        "labels": [s.period for s in periods],
        "scores": [str(s.total) if s.total is not None else None for s in periods],
        "tiers": [s.tier_name for s in periods],
    }
    role = current_user(request).role_in(network)
    return page(
        request, "members_detail.html", network=network, info=info, member=member,
        periods=list(reversed(periods)), history_chart=chart, cards=cards, names=names,
        money=lambda value: money_text(value, info.currency), actions=[], errors={}, values={},
        **asof_context(cut, role, f"/n/{network}/members/{slug}"),
    )  # fmt: skip


@get(
    "/n/{network:str}/members/{member:str}",
    operation_id="memberPage",
    guards=[network_guard],
    include_in_schema=False,
)
async def member_page(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    member: FromPath[str],
    as_of: FromQuery[str | None] = None,
    as_of_recorded: FromQuery[str | None] = None,
) -> Template:
    """A member's profile, standing in every period, and scorecard with each partner.

    With ``as_of`` or ``as_of_recorded``, as of that moment, computed from the log.
    """
    return _member_page(request, network, member, cut=page_cut(as_of, as_of_recorded))


async def _change_status(
    request: Request[Any, Any, Any], network: str, member: str, action: str
) -> Any:
    services = services_of(request)
    _member(services, network, member)
    form = await read_form(request)
    reason = _text(form, f"{action}_reason")
    fields: dict[str, Any] = {"type": ACTIONS[action][0], "network": network, "member": member}
    if action != "join":
        fields["reason"] = reason
    try:
        services.execute(fields, current_user(request))
    except StoreUnavailable:
        raise
    except DomainError as error:
        name = f"{action}_reason" if error.field == "reason" else action
        return _member_page(
            request, network, member, errors={name: error.reason},
            values={f"{action}_reason": reason}, status_code=422,
        )  # fmt: skip
    return Redirect(path=f"/n/{network}/members/{member}", status_code=303)


#: What each status action records, as its help says (a coordinator only).
STATUS_ACTIONS = {
    "join": "record that an invited business joined",
    "suspend": "suspend an active member, with a reason",
    "reinstate": "make a suspended member active again",
    "leave": "record that a member left the network, for good",
}


@post(
    "/n/{network:str}/members/{member:str}/{action:str}",
    operation_id="memberStatus",
    guards=[network_guard],
    opt=COORDINATOR,
    include_in_schema=False,
)
async def change_member_status(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    member: FromPath[str],
    action: FromPath[str],
) -> Any:
    """Join, suspend, reinstate or leave: a member's status changes (a coordinator only)."""
    if action not in STATUS_ACTIONS:
        raise NotFoundException(f"no action {action!r} on members")
    return await _change_status(request, network, member, action)


ROUTES = [
    members_page,
    invite_member,
    member_page,
    change_member_status,
]
