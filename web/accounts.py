"""Signing in and out, the home page, API tokens and the site administration.

* ``/login``: email and password; after five failures for one email (or
  twenty from one address) within five minutes, sign-ins are refused for the
  rest of the window (429), whatever the password.
* ``/``: the networks the user has a role in.
* ``/account/tokens``: the user's API tokens; a new token is shown once.
* ``/admin``: a site administrator creates networks and their coordinators.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.enums import MediaType
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from partnerledger import DomainError
from partnerledger.accounts import MIN_PASSWORD
from partnerledger.errors import StoreUnavailable

from .pages import FormErrors, page, read_form
from .security import SESSION_USER, admin_guard, current_user, rotate_session, services_of

EMAIL_LIMIT = 5
ADDRESS_LIMIT = 20
WINDOW = 300.0


def _safe_next(target: str | None) -> str:
    """Only a path of this site (never another host) to go to after signing in."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


@get("/login", operation_id="loginPage", include_in_schema=False)
async def login_page(
    request: Request[Any, Any, Any], next: FromQuery[str | None] = None
) -> Template:
    """The sign-in form."""
    return Template(
        media_type=MediaType.HTML,
        template_name="login.html",
        context={"next": _safe_next(next), "errors": {}, "email": "", "user": None},
    )


@post("/login", operation_id="login", include_in_schema=False)
async def login(request: Request[Any, Any, Any]) -> Any:
    """Sign in with an email and a password."""
    services = services_of(request)
    accounts = services.accounts
    form = await read_form(request)
    email = str(form.get("email", "")).strip().lower()
    password = str(form.get("password", ""))
    target = _safe_next(form.get("next"))
    address = f"ip:{request.client.host if request.client else '-'}"
    if accounts.locked_out(f"email:{email}", EMAIL_LIMIT, WINDOW) or accounts.locked_out(
        address, ADDRESS_LIMIT, WINDOW
    ):
        raise HTTPException(
            status_code=429,
            detail="Too many failed sign-ins; wait five minutes and try again.",
        )
    user = accounts.authenticate(email, password)
    if user is None:
        accounts.failed_login(f"email:{email}")
        accounts.failed_login(address)
        return Template(
            media_type=MediaType.HTML,
            template_name="login.html",
            context={
                "next": target,
                "email": email,
                "errors": {"password": "the email or the password is wrong"},
                "user": None,
            },
            status_code=401,
        )
    accounts.clear_failures(f"email:{email}")
    request.clear_session()
    rotate_session(request)  # a new session identifier: nothing from before sign-in carries over
    request.set_session({SESSION_USER: user.id})
    return Redirect(path=target)


@post("/logout", operation_id="logout", include_in_schema=False)
async def logout(request: Request[Any, Any, Any]) -> Redirect:
    """Sign out: the session is dropped."""
    request.clear_session()
    return Redirect(path="/login")


@get("/", operation_id="home", include_in_schema=False)
async def home(request: Request[Any, Any, Any]) -> Any:
    """The user's networks; straight to the network when there is only one."""
    user = current_user(request)
    if len(user.grants) == 1 and not user.site_admin:
        return Redirect(path=f"/n/{next(iter(user.grants))}/")
    return page(request, "home.html", grants=sorted(user.grants.values(), key=lambda g: g.network))


# -------------------------------------------------------------- API tokens


@get("/account/tokens", operation_id="tokensPage", include_in_schema=False)
async def tokens_page(request: Request[Any, Any, Any]) -> Template:
    """The user's API tokens."""
    user = current_user(request)
    return page(
        request, "tokens.html", tokens=services_of(request).accounts.tokens(user.id), created=None,
        errors={},
    )  # fmt: skip


@post("/account/tokens", operation_id="createToken", include_in_schema=False)
async def create_token(request: Request[Any, Any, Any]) -> Template:
    """Create an API token; its secret is shown this once."""
    user = current_user(request)
    accounts = services_of(request).accounts
    form = await read_form(request)
    try:
        secret, _ = accounts.create_token(user.id, str(form.get("name", "")))
    except StoreUnavailable:
        raise
    except DomainError as error:
        return page(
            request, "tokens.html", tokens=accounts.tokens(user.id), created=None,
            errors=FormErrors.of(error).fields, status_code=422,
        )  # fmt: skip
    return page(request, "tokens.html", tokens=accounts.tokens(user.id), created=secret, errors={})


@post("/account/tokens/{token_id:int}/revoke", operation_id="revokeToken", include_in_schema=False)
async def revoke_token(request: Request[Any, Any, Any], token_id: FromPath[int]) -> Redirect:
    """Revoke one of the user's tokens."""
    services_of(request).accounts.revoke_token(current_user(request).id, token_id)
    return Redirect(path="/account/tokens")


# ---------------------------------------------------------- administration


def _admin_page(
    request: Request[Any, Any, Any], status_code: int = 200, **context: Any
) -> Template:
    services = services_of(request)
    context.setdefault("errors", {})
    context.setdefault("values", {})
    return page(
        request, "admin.html", networks=services.networks(), users=services.accounts.users(),
        min_password=MIN_PASSWORD, status_code=status_code, **context,
    )  # fmt: skip


@get("/admin", operation_id="adminPage", guards=[admin_guard], include_in_schema=False)
async def admin_page(request: Request[Any, Any, Any]) -> Template:
    """Networks and their coordinators."""
    return _admin_page(request)


@post("/admin/networks", operation_id="adminCreateNetwork", guards=[admin_guard],
      include_in_schema=False)  # fmt: skip
async def admin_create_network(request: Request[Any, Any, Any]) -> Any:
    """Create a network, and its first coordinator's account unless the email has one."""
    services = services_of(request)
    form = await read_form(request)
    user = current_user(request)
    fields = {
        "type": "network.created",
        "network": form.get("network"),
        "name": form.get("name"),
        "currency": form.get("currency"),
        "period": form.get("period") or "month",
        "rolling_days": form.get("rolling_days") or None,
    }
    email = str(form.get("coordinator_email", "")).strip().lower()
    try:
        command = services.command(fields, user)
        coordinator = services.accounts.by_email(email) if email else None
        if email and coordinator is None:
            # Check the account before anything is written: all or nothing.
            name = str(form.get("coordinator_name", "")).strip() or email
            password = str(form.get("coordinator_password", ""))
            services.accounts.check_new_user(email, name, password, prefix="coordinator_")
            services.run([command])
            coordinator = services.accounts.create_user(email, name, password)
        else:
            services.run([command])
        if coordinator is not None:
            services.accounts.grant(coordinator.id, command.network, "coordinator")
    except StoreUnavailable:
        raise
    except DomainError as error:
        return _admin_page(request, 422, errors=FormErrors.of(error).fields, values=form)
    return Redirect(path="/admin")


@post("/admin/roles", operation_id="adminGrantRole", guards=[admin_guard], include_in_schema=False)
async def admin_grant_role(request: Request[Any, Any, Any]) -> Any:
    """Give an existing or new user a role in a network."""
    services = services_of(request)
    form = await read_form(request)
    network = str(form.get("network", ""))
    email = str(form.get("email", "")).strip().lower()
    try:
        services.network(network)
        member = str(form.get("member", "")).strip() or None
        if member is not None:
            services.ledger.unit_of_work().member(network, member, "member")
        found = services.accounts.by_email(email)
        if found is None:
            name, password = str(form.get("name", "")) or email, str(form.get("password", ""))
            services.accounts.check_new_user(email, name, password)
            found = services.accounts.create_user(email, name, password)
        services.accounts.grant(found.id, network, str(form.get("role", "")), member)
    except StoreUnavailable:
        raise
    except DomainError as error:
        return _admin_page(request, 422, errors=FormErrors.of(error).fields, values=form)
    return Redirect(path="/admin")


ROUTES = [
    login_page,
    login,
    logout,
    home,
    tokens_page,
    create_token,
    revoke_token,
    admin_page,
    admin_create_network,
    admin_grant_role,
]
