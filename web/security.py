"""Who is asking, and what they may see: authentication and guards.

Pages authenticate with a server-side session (the cookie holds only the
session id; the session holds the user id). The JSON API authenticates with
an API token: ``Authorization: Bearer plt_...``. Every route except the
sign-in page, static assets, the OpenAPI document and the health check
needs one of them; a page without a session redirects to ``/login``.

Roles are per network. :func:`network_guard` reads the route's ``network``
path parameter and the roles the route allows (``opt={"roles": (...)}``,
default any role): a user without a role in that network gets **404**, as
if it did not exist, so one network's pages never reveal another's; a user
whose role is not allowed gets **403**. :func:`admin_guard` admits site
administrators only.

Sessions get a new identifier at sign-in (:func:`rotate_session`), and every
response carries :data:`SECURITY_HEADERS` (a Content-Security-Policy with no
inline script, ``frame-ancestors 'none'``, ``nosniff``, a referrer policy).
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders
from litestar.exceptions import NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.authentication import (
    AbstractAuthenticationMiddleware,
    AuthenticationResult,
)
from litestar.middleware.session.server_side import (
    ServerSideSessionBackend,
    ServerSideSessionConfig,
)
from litestar.types import Message, Scope

from partnerledger.accounts import User

from .services import Services

#: Paths that need no sign-in.
PUBLIC = ("/login", "/static", "/schema", "/healthz", "/readyz", "/favicon.ico")
SESSION_USER = "user_id"


def services_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Services:
    """The process's services, kept in the application's state."""
    found: Services = connection.app.state.services
    return found


class AuthMiddleware(AbstractAuthenticationMiddleware):
    """Sets ``request.user`` from a bearer token or the session."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        accounts = services_of(connection).accounts
        header = connection.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            user = accounts.user_for_token(header[7:].strip())
            if user is None:
                raise NotAuthorizedException("the API token is unknown or revoked")
            return AuthenticationResult(user=user, auth="token")
        if connection.url.path.startswith("/api/"):
            raise NotAuthorizedException("send an API token: Authorization: Bearer <token>")
        user_id = connection.session.get(SESSION_USER) if "session" in connection.scope else None
        user = accounts.user(int(user_id)) if user_id is not None else None
        if user is None:
            raise NotAuthorizedException("sign in first")
        return AuthenticationResult(user=user, auth="session")


def current_user(connection: ASGIConnection[Any, Any, Any, Any]) -> User:
    """The signed-in user."""
    user: User = connection.user
    return user


def network_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Admit users with a role in the route's network (404 otherwise) that the route allows."""
    network = connection.path_params.get("network")
    if network is None:
        return
    user = current_user(connection)
    role = user.role_in(str(network))
    if role is None:
        raise NotFoundException(f"no network {network!r}")
    allowed = handler.opt.get("roles")
    if allowed and role not in allowed:
        raise PermissionDeniedException(f"the {role} role in {network} cannot do this")


def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Admit site administrators only."""
    if not current_user(connection).site_admin:
        raise PermissionDeniedException("only a site administrator can do this")


COORDINATOR = {"roles": ("coordinator",)}
COORDINATOR_OR_MEMBER = {"roles": ("coordinator", "member")}


# ----------------------------------------------------------------- sessions and headers

#: Set in the scope's state by a handler that signs someone in: the session
#: gets a new identifier, and the old one is dropped (no session fixation).
ROTATE_SESSION = "partnerledger_rotate_session"


class RotatingSessionBackend(ServerSideSessionBackend):
    """Server-side sessions whose identifier changes when someone signs in."""

    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        state = connection.scope.get("state", {})
        if state.get(ROTATE_SESSION):
            fresh = state.get(f"{ROTATE_SESSION}_id")
            if fresh is None:
                fresh = state[f"{ROTATE_SESSION}_id"] = self.generate_session_id()
            return str(fresh)
        return super().get_session_id(connection)

    async def store_in_message(
        self, scope_session: Any, message: Any, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> None:
        state = connection.scope.get("state", {})
        old = connection.cookies.get(self.config.key)
        if state.get(ROTATE_SESSION) and old and old != "null":
            await self.delete(old, store=self.config.get_store_from_app(connection.scope["app"]))
        await super().store_in_message(scope_session, message, connection)


class RotatingSessionConfig(ServerSideSessionConfig):
    """Server-side sessions, rotated at sign-in."""

    _backend_class = RotatingSessionBackend


def rotate_session(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Give this connection's session a new identifier when the response is sent."""
    connection.scope.setdefault("state", {})[ROTATE_SESSION] = True  # type: ignore[typeddict-unknown-key]


#: Sent with every response: no inline script, no framing, no sniffing, no referrer leaks.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "cross-origin-opener-policy": "same-origin",
}


async def add_security_headers(message: Message, scope: Scope) -> None:
    """A ``before_send`` hook: :data:`SECURITY_HEADERS` on every response, errors included."""
    if message["type"] == "http.response.start":
        headers = MutableScopeHeaders.from_message(message)
        for name, value in SECURITY_HEADERS.items():
            if name not in headers:
                headers[name] = value


__all__ = [
    "COORDINATOR",
    "COORDINATOR_OR_MEMBER",
    "PUBLIC",
    "SECURITY_HEADERS",
    "SESSION_USER",
    "AuthMiddleware",
    "RotatingSessionConfig",
    "add_security_headers",
    "admin_guard",
    "current_user",
    "network_guard",
    "rotate_session",
    "services_of",
]
