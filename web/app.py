"""The web application: ``create_app`` wires the areas, security, templates and assets.

Each area of the domain is a module of this package that exposes ``ROUTES``
(its route handlers) and may add links to :data:`partnerledger.web.pages.NAV`;
:func:`create_app` finds them all. Pages are jinja2 templates from
``web/templates``, enhanced with htmx; static assets (htmx, Chart.js) are
served from ``web/static``, vendored from the npm registry, so the pages work
with no internet.

Security: server-side sessions in a :class:`~litestar.stores.file.FileStore`
(shared by the workers of one machine), CSRF protection on every form and
htmx request (the JSON API, which authenticates with tokens, not cookies,
is exempt), and the guards of :mod:`partnerledger.web.security`.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Response, Router, get
from litestar.config.csrf import CSRFConfig
from litestar.enums import MediaType
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.base import DefineMiddleware
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.htmx import HTMXPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.stores.file import FileStore
from litestar.template.config import TemplateConfig

from partnerledger import DomainError, __version__
from partnerledger.errors import StoreUnavailable
from partnerledger.store import Database, unavailable

from .api import ApiDocument
from .api_common import DRIVER_ERRORS, RETRY_AFTER, too_large
from .security import (
    PUBLIC,
    AuthMiddleware,
    RotatingSessionConfig,
    add_security_headers,
)
from .services import Services

HERE = Path(__file__).parent
SECRET_ENV = "PARTNERLEDGER_SECRET"  # noqa: S105  # the name of a variable
SESSIONS_ENV = "PARTNERLEDGER_SESSIONS"
log = logging.getLogger("partnerledger.web")


#: Paths the session middleware skips (see :func:`create_app`).
SESSIONLESS = ["^/api/", "^/static/", "^/healthz$", "^/readyz$", "^/schema"]


def _templates_fixed(engine: JinjaTemplateEngine) -> None:
    """Templates are read once per process: no check of each file's time on every use.

    jinja2 checks (``stat``) a cached template's file each time it is used,
    includes and imports too: some 60 times for one pipeline page. The
    templates ship with the package and change only with it (``debug``
    keeps the check, for editing them).
    """
    engine.engine.auto_reload = False


def _areas() -> list[Any]:
    """Every route handler of every area module (those exposing ``ROUTES``)."""
    handlers: list[Any] = []
    for info in sorted(pkgutil.iter_modules([str(HERE)]), key=lambda i: i.name):
        module = importlib.import_module(f"{__package__}.{info.name}")
        routes = getattr(module, "ROUTES", ())
        if isinstance(routes, list | tuple):
            handlers.extend(h for h in routes if isinstance(h, BaseRouteHandler | Router))
    return handlers


@get("/healthz", operation_id="health", include_in_schema=False, sync_to_thread=False)
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok", "version": __version__}


@get("/readyz", operation_id="ready", include_in_schema=False, sync_to_thread=False)
def readyz(request: Request[Any, Any, Any]) -> dict[str, str]:
    """Readiness: the process answers and its database does (503 when it is away)."""
    services = request.app.state.services
    services.store.last_position()  # the event store's pool
    services.accounts.db.execute("SELECT 1")  # and our own connections
    services.projector.db.execute("SELECT 1")
    return {"status": "ready", "version": __version__}


def _is_api(request: Request[Any, Any, Any]) -> bool:
    return request.url.path.startswith("/api/")


def _unauthorized(request: Request[Any, Any, Any], error: NotAuthorizedException) -> Response[Any]:
    if _is_api(request):
        return _problem(request, 401, "Not signed in", error.detail)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.headers.get("hx-request") == "true":
        return Response(content="", status_code=401, headers={"HX-Redirect": "/login"})
    return Redirect(path=f"/login?next={target}")


def _problem(
    request: Request[Any, Any, Any],
    status: int,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[Any]:
    """An RFC 9457 problem details response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    body["instance"] = request.url.path
    return Response(
        content=body, status_code=status, media_type="application/problem+json", headers=headers
    )


_TITLES = {400: "Bad request", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
           409: "Conflict", 413: "Request too large", 422: "Invalid input",
           429: "Too many requests", 502: "Plugin failed"}  # fmt: skip
#: The largest request body (JSON, forms) a route takes unless it sets its own
#: (dispute evidence uploads do: see web/disputes.py); larger is refused with 413.
MAX_BODY = 1024 * 1024


def _http_error(request: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    status = error.status_code
    title = _TITLES.get(status, "Error")
    if status == 413:
        error = HTTPException(status_code=413, detail=too_large(request))
    if _is_api(request):
        extra = {"errors": error.extra} if isinstance(error.extra, list) else {}
        # The exception's headers too: a 405 says which methods are allowed (Allow).
        return _problem(request, status, title, str(error.detail), error.headers, **extra)
    if status >= 500:
        detail = "Something went wrong on our side; nothing was written."
    else:
        detail = str(error.detail)
    return Template(
        media_type=MediaType.HTML,
        template_name="error.html",
        context={
            "status": status,
            "title": title,
            "detail": detail,
            "user": request.scope.get("user"),
        },
        status_code=status,
    )


def _unavailable(request: Request[Any, Any, Any], error: StoreUnavailable) -> Response[Any]:
    """503: the database is away (restarting, locked, full). Nothing was written."""
    log.warning("%s %s: %s", request.method, request.url.path, error)
    detail = f"{error.public}; nothing was written. Try again in a moment."
    headers = {"Retry-After": str(RETRY_AFTER)}
    if _is_api(request) or request.url.path == "/readyz":
        return _problem(
            request, 503, "Service unavailable", detail, headers,
            errors=[{"field": error.field, "reason": error.public, "code": error.code}],
        )  # fmt: skip
    return Template(
        media_type=MediaType.HTML,
        template_name="error.html",
        context={"status": 503, "title": "Service unavailable", "detail": detail,
                 "user": request.scope.get("user")},
        status_code=503,
        headers=headers,
    )  # fmt: skip


def _driver_error(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    """A database driver's error that escaped without being named: the database is away."""
    services = getattr(request.app.state, "services", None)
    database = services.database if services is not None else Database.parse(None)
    return _unavailable(request, unavailable(database, error))


def _domain_error(request: Request[Any, Any, Any], error: DomainError) -> Response[Any]:
    if isinstance(error, StoreUnavailable):
        return _unavailable(request, error)
    status = {"not_found": 404, "already_exists": 409, "conflict": 409, "plugin_failed": 502,
              "store_unavailable": 503}.get(error.code, 422)  # fmt: skip
    if _is_api(request):
        return _problem(
            request, status, _TITLES.get(status, "Error"), f"{error.field}: {error.reason}",
            errors=[{"field": error.field, "reason": error.reason, "code": error.code}],
        )  # fmt: skip
    return Template(
        media_type=MediaType.HTML,
        template_name="error.html",
        context={"status": status, "title": _TITLES.get(status, "Error"),
                 "detail": f"{error.field}: {error.reason}", "user": request.scope.get("user")},
        status_code=status,
    )  # fmt: skip


def create_app(
    database: Database | str | None = None,
    *,
    secret: str | None = None,
    sessions: Path | str | None = None,
    inline: bool | None = None,
    debug: bool = False,
) -> Litestar:
    """The application over a store (``--database`` / ``PARTNERLEDGER_DATABASE`` by default).

    ``secret`` signs CSRF tokens (``PARTNERLEDGER_SECRET``; a random one per
    process when unset, which is fine for one worker). ``sessions`` is the
    folder of the session files (``PARTNERLEDGER_SESSIONS``, default
    ``.partnerledger-sessions``). ``inline`` makes this process bring the
    views up to date itself (default: yes, unless ``PARTNERLEDGER_VIEWS=worker``).
    """
    found = database if isinstance(database, Database) else Database.parse(database)
    key = secret or os.environ.get(SECRET_ENV) or secrets.token_hex(32)
    session_dir = Path(sessions or os.environ.get(SESSIONS_ENV) or ".partnerledger-sessions")

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.services = Services(found, inline=inline)
        try:
            yield
        finally:
            app.state.services.close()

    static = create_static_files_router(
        path="/static", directories=[HERE / "static"], include_in_schema=False
    )
    # The JSON API authenticates with tokens only, and health checks and assets need no
    # session: no session file read, written (a new one per cookie-less API call) or
    # cookie set for them.
    session_config = RotatingSessionConfig(
        store="sessions", max_age=8 * 3600, samesite="lax", exclude=SESSIONLESS
    )
    return Litestar(
        route_handlers=[healthz, readyz, *_areas(), static],
        lifespan=[lifespan],
        stores={"sessions": FileStore(session_dir)},
        before_send=[add_security_headers],
        middleware=[
            session_config.middleware,
            DefineMiddleware(AuthMiddleware, exclude=[f"^{p}" for p in PUBLIC]),
        ],
        csrf_config=CSRFConfig(secret=key, exclude=["/api/"], cookie_samesite="lax"),
        template_config=TemplateConfig(
            directory=HERE / "templates",
            engine=JinjaTemplateEngine,
            engine_callback=_templates_fixed if not debug else None,
        ),
        plugins=[HTMXPlugin()],
        exception_handlers={
            NotAuthorizedException: _unauthorized,
            HTTPException: _http_error,
            DomainError: _domain_error,
            # never expected to escape unnamed, but if one does: 503, not a stack trace
            **dict.fromkeys(DRIVER_ERRORS, _driver_error),
        },
        openapi_config=OpenAPIConfig(
            title="partnerledger API",
            version=__version__,
            description="The JSON API of partnerledger: networks, members, referrals, "
            "agreements, standings, scorecards, statements and events. Authenticate with an "
            "API token: `Authorization: Bearer plt_...` (create one under Account → API tokens).",
            path="/schema",
            # The document itself at /schema (and /schema/openapi.json): no page that
            # loads a viewer from a CDN, so it works offline.
            render_plugins=[ApiDocument(path=["/", "/openapi.json"])],
            use_handler_docstrings=True,
            components=Components(
                security_schemes={
                    "BearerToken": SecurityScheme(
                        type="http", scheme="bearer", description="An API token: plt_..."
                    )
                }
            ),
            security=[{"BearerToken": []}],
        ),
        request_max_body_size=MAX_BODY,
        debug=debug,
    )


__all__ = ["create_app"]
