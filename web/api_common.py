"""What every part of the JSON API shares: errors, pagination, writes and who may act.

* **Errors** are RFC 9457 problem documents (``application/problem+json``)
  that name the field at fault in ``errors``: a body or query parameter that
  does not decode, and every refused command, come out the same way.
* **Pagination**: list endpoints take ``limit`` (1 to :data:`MAX_LIMIT`)
  and ``cursor`` (opaque; the ``next`` of the previous page) and answer
  ``{"items": [...], "next": ...}``; ``next`` is ``null`` on the last page.
* **Writes** go through the same application services as the pages and
  answer with the recorded event (``201``), or with the event recorded
  earlier for an idempotent repeat of the same ``command_id`` (``200``).
* **Who may act**: the routes' guards admit roles per network; a member
  acts only for their own business (:func:`require_self`).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import re
import secrets
import sqlite3
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import msgspec
import psycopg
from eventsourcing.persistence import PersistenceError
from litestar import Request, Response, get, patch, post
from litestar.exceptions import (
    HTTPException,
    PermissionDeniedException,
    SerializationException,
    ValidationException,
)
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIFormat
from litestar.params import QueryParameter
from litestar.types import ExceptionHandlersMap

from partnerledger import Database, DomainError
from partnerledger.accounts import Grant
from partnerledger.commands import Command, derived_command_id
from partnerledger.domain import ROUTES as _RULES  # not `ROUTES`: create_app collects those
from partnerledger.errors import InvalidCommand, StoreUnavailable
from partnerledger.events import Event
from partnerledger.store import unavailable
from partnerledger.types import CommandId, Text

from .security import current_user, network_guard, services_of
from .services import Services

_log = logging.getLogger(__name__)

#: Items per page when ``limit`` is not given, and the most a page holds.
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
PROBLEM_JSON = "application/problem+json"

Limit = Annotated[
    int,
    QueryParameter(ge=1, le=MAX_LIMIT, description=f"Items per page (1 to {MAX_LIMIT})."),
]
#: The longest cursor this API gives (a position in a list, as digits).
MAX_CURSOR = 18
#: A time in a body as a client writes it: RFC 3339 text with an offset (a JSON
#: number is no time, as in an import line); the command parses and checks it.
TimeText = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        extra_json_schema={
            "description": "RFC 3339 time with an offset, from 1900 up to 2200 (exclusive); "
            "stored in UTC.",
            "extra": {"format": "date-time"},
        },
    ),
]


def time_query(description: str) -> Any:
    """A query parameter holding a time (parse it with :func:`parse_time`)."""
    return Annotated[
        str | None,
        QueryParameter(format=OpenAPIFormat.DATE_TIME, description=description),
    ]


def parse_time(text: str | None, field: str) -> datetime | None:
    """A time a query parameter gives: RFC 3339 with an offset (InvalidCommand on ``field``)."""
    if text is None:
        return None
    try:
        moment = msgspec.convert(text, datetime)
    except msgspec.ValidationError:
        raise InvalidCommand(
            field, f"{text!r} is not an RFC 3339 time, e.g. 2025-03-01T00:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise InvalidCommand(field, "give a time with an offset, e.g. Z or +02:00")
    return moment


Cursor = Annotated[
    str | None,
    QueryParameter(
        max_length=MAX_CURSOR,
        pattern=rf"^[0-9]{{0,{MAX_CURSOR}}}$",
        description="Where the page starts: the `next` of the previous page.",
    ),
]


# ------------------------------------------------------------------ errors


class FieldError(msgspec.Struct, kw_only=True):
    """The input at fault and why."""

    field: str
    reason: str
    code: str = "invalid"


class Problem(msgspec.Struct, kw_only=True):
    """An RFC 9457 problem document; ``errors`` names the fields at fault.

    No ``instance``: a refusal never echoes the path back (it may name
    another network's records).
    """

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldError] = msgspec.field(default_factory=list)


_TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal error",
    502: "Plugin failed",
    503: "Service unavailable",
}
_STATUS = {
    "not_found": 404,
    "already_exists": 409,
    "invalid_transition": 409,
    "conflict": 409,
    # A plugin of this server raised, returned the wrong type or timed out:
    # the request may be fine, something the server relies on failed.
    "plugin_failed": 502,
    "store_unavailable": 503,
}


def problem(
    status: int,
    detail: str,
    errors: Iterable[FieldError] = (),
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    """A problem details response."""
    body = Problem(
        title=_TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        errors=list(errors),
    )
    return Response(
        content=msgspec.to_builtins(body),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


#: Seconds a client is asked to wait (``Retry-After``) when the database is away.
RETRY_AFTER = 5
#: Errors of the database drivers, should one escape unnamed: the database is away.
DRIVER_ERRORS = (
    PersistenceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlite3.OperationalError,
)


def unavailable_problem(request: Request[Any, Any, Any], error: StoreUnavailable) -> Response[Any]:
    """503: the database is away (restarting, locked, full); nothing was written.

    The detail says so without the database's address; the log has it all.
    """
    _log.warning("%s %s: %s", request.method, request.url.path, error)
    detail = f"{error.public}; nothing was written. Try again in a moment."
    field = FieldError(field=error.field, reason=error.public, code=error.code)
    return problem(503, detail, [field], {"Retry-After": str(RETRY_AFTER)})


def _domain_error(request: Request[Any, Any, Any], error: DomainError) -> Response[Any]:
    if isinstance(error, StoreUnavailable):
        return unavailable_problem(request, error)
    status = _STATUS.get(error.code, 422)
    # Not found is 404 only for the resource the path names; an unknown
    # member named in a body field is invalid input.
    if status == 404 and error.field not in request.path_params:
        status = 422
    field = FieldError(field=error.field, reason=error.reason, code=error.code)
    return problem(status, f"{error.field}: {error.reason}", [field])


_REGEX = re.compile(r"matching regex '[^']*'")
_NAMED = re.compile(r"^Object (?P<what>contains unknown|missing required) field `(?P<name>[^`]+)`")


def _field_error(item: Any) -> FieldError:
    """One of litestar's validation messages, as the field it names and the reason."""
    if not isinstance(item, dict):
        return FieldError(field="-", reason=str(item))
    key = str(item.get("key") or "")
    reason = str(item.get("message") or "invalid")
    if key == "data":  # the body as a whole
        key = ""
    reason = _REGEX.sub("in the allowed form (see the OpenAPI document at /schema)", reason)
    found = _NAMED.match(reason)
    if found:
        key = f"{key}.{found['name']}" if key else found["name"]
        reason = (
            "unknown field" if found["what"] == "contains unknown" else "required field is missing"
        )
    return FieldError(field=key or "-", reason=reason)


def _wire_name(request: Request[Any, Any, Any], key: str) -> str:
    """The name a client writes for a handler's parameter (``type`` for ``types``)."""
    try:
        parameter = request.route_handler.parsed_fn_signature.parameters.get(key)
    except AttributeError:  # pragma: no cover - every API route is an HTTP handler
        return key
    name = getattr(getattr(parameter, "kwarg_definition", None), "name", None)
    return name if isinstance(name, str) and name else key


def _validation_error(request: Request[Any, Any, Any], error: ValidationException) -> Response[Any]:
    extra = error.extra if isinstance(error.extra, list) else []
    errors = [_field_error(item) for item in extra]
    for found in errors:
        found.field = _wire_name(request, found.field)
    if not errors:
        return problem(400, str(error.detail))
    detail = "; ".join(f"{e.field}: {e.reason}" for e in errors)
    return problem(422, detail, errors)


def too_large(request: Request[Any, Any, Any]) -> str:
    """What a 413 says: the limit of the route the body was sent to."""
    try:
        limit = request.route_handler.resolve_request_max_body_size()
    except AttributeError:  # pragma: no cover - every route is an HTTP handler
        limit = None
    if not limit:
        return "The request body is too large; nothing was written."
    return (
        f"The request body is larger than {limit:,} bytes ({limit / 1024 / 1024:g} MiB), "
        "the most this operation accepts; nothing was written."
    )


def _http_error(request: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    status = error.status_code
    detail = str(error.detail) if status < 500 else "Something went wrong on our side."
    if status == 413:
        return problem(status, too_large(request), [FieldError(field="body", reason="too large")])
    if isinstance(error.__cause__, SerializationException):  # the body does not decode
        return problem(status, detail, [FieldError(field="body", reason=detail)])
    return problem(status, detail)


def _server_error(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    if isinstance(error, DRIVER_ERRORS):
        services = getattr(request.app.state, "services", None)
        database = services.database if services is not None else Database.parse(None)
        return unavailable_problem(request, unavailable(database, error))
    # The client learns nothing of the internals; the log keeps the traceback.
    _log.error("%s %s failed", request.method, request.url.path, exc_info=error)
    return problem(500, "Something went wrong on our side.")


#: The API router's exception handlers: every error is a problem document.
EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ValidationException: _validation_error,
    HTTPException: _http_error,
    DomainError: _domain_error,
    Exception: _server_error,
}

_ERRORS = {
    400: "The body is not JSON (or not the JSON object the operation takes).",
    401: "No valid API token (`Authorization: Bearer plt_...`).",
    403: "Your role in the network does not allow this, or you act for another business.",
    404: "No such network for you (or no such resource in it).",
    409: "The resource's state does not allow this (e.g. accepting a declined referral).",
    413: "The body is larger than the operation's limit (1 MiB); nothing was written.",
    422: "Invalid input: `errors` names each field and the reason; nothing was written.",
    502: "A plugin the network enabled failed (raised, returned the wrong type or timed "
    "out); `errors` names it (field `plugin`, code `plugin_failed`); nothing was written.",
}


def _responses(codes: Iterable[int], *, repeat: bool = False) -> dict[int, ResponseSpec]:
    found = {
        code: ResponseSpec(
            data_container=Problem,
            description=_ERRORS[code],
            media_type=PROBLEM_JSON,
            generate_examples=False,
        )
        for code in (400, *codes)
    }
    if repeat:
        found[200] = ResponseSpec(
            data_container=Written,
            description="An idempotent repeat: the `command_id` was recorded before; "
            "`recorded` is false and `event` is the event recorded then.",
            generate_examples=False,
        )
    return found


# ------------------------------------------------------------------ routes


def _described(fn: Callable[..., Any]) -> tuple[str, str]:
    text = inspect.cleandoc(fn.__doc__ or "")
    if not text:
        raise TypeError(f"{fn.__name__}: an API handler needs a docstring (its description)")
    return text.split("\n\n", 1)[0].replace("\n", " "), text


def api_get(
    path: str, *, operation_id: str, tag: str, opt: dict[str, Any] | None = None
) -> Callable[[Callable[..., Any]], HTTPRouteHandler]:
    """A GET operation: its docstring becomes the summary and description."""

    def wrap(fn: Callable[..., Any]) -> HTTPRouteHandler:
        summary, description = _described(fn)
        guarded = "{network" in path
        return get(
            path,
            operation_id=operation_id,
            summary=summary,
            description=description,
            tags=[tag],
            guards=[network_guard] if guarded else None,
            opt=opt or {},
            responses=_responses((401, 403, 404, 422) if guarded else (401, 422)),
            response_description="The resource.",
        )(fn)

    return wrap


def api_post(
    path: str,
    *,
    operation_id: str,
    tag: str,
    opt: dict[str, Any] | None = None,
    method: str = "POST",
) -> Callable[[Callable[..., Any]], HTTPRouteHandler]:
    """A write operation (201 with the recorded event); the docstring describes it."""

    def wrap(fn: Callable[..., Any]) -> HTTPRouteHandler:
        summary, description = _described(fn)
        decorator = patch if method == "PATCH" else post
        return decorator(
            path,
            operation_id=operation_id,
            summary=summary,
            description=description,
            tags=[tag],
            guards=[network_guard],
            opt=opt or {},
            status_code=201,
            responses=_responses((401, 403, 404, 409, 413, 422, 502), repeat=True),
            response_description="Recorded: `event` is the new event of the log.",
        )(fn)

    return wrap


# ------------------------------------------------------------------ paging


def offset(cursor: str | None) -> int:
    """The position a page starts at, from the cursor (InvalidCommand on ``cursor``)."""
    if cursor is None or cursor == "":
        return 0
    if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= MAX_CURSOR):
        raise InvalidCommand("cursor", "not a cursor this API gave: pass back a page's `next`")
    return int(cursor)


T = TypeVar("T")


def slice_page(items: list[T], cursor: str | None, limit: int) -> tuple[list[T], str | None]:
    """One page of a list held in memory, and the cursor of the next."""
    start = offset(cursor)
    end = start + limit
    return items[start:end], (str(end) if end < len(items) else None)


# ------------------------------------------------------------------ events


class LogEvent(msgspec.Struct, kw_only=True):
    """One event of the log: where it is, what it says, who and when."""

    position: int
    type: str
    network: str
    actor: str
    command_id: str
    occurred_at: datetime
    recorded_at: datetime
    #: The command as recorded (money as strings, times in RFC 3339).
    command: dict[str, Any]


class Written(msgspec.Struct, kw_only=True):
    """The outcome of a write: the event (``recorded`` false for an idempotent repeat)."""

    recorded: bool
    event: LogEvent


class WriteBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields every write accepts."""

    #: When it happened (business time, from 1900 up to 2200); now when absent.
    occurred_at: TimeText | None = None
    #: An idempotency key: repeating a write with the same key records nothing new.
    command_id: CommandId | None = None


class Reason(WriteBody, kw_only=True):
    """Why (optional)."""

    reason: Text | None = None


_CENT = Decimal("0.01")


def amount(value: Decimal) -> str:
    """Money as text with at least two decimals, never rounded: ``"10000.00"``, ``"12.3456"``."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -2:
        return f"{value.quantize(_CENT):f}"
    return f"{value:f}"


def log_event(position: int, event: Event) -> LogEvent:
    """The API's form of a stored event."""
    return LogEvent(
        position=position,
        type=event.type,
        network=event.network,
        actor=event.actor,
        command_id=event.command_id,
        occurred_at=event.occurred_at,
        recorded_at=event.recorded_at,
        command=msgspec.to_builtins(event.command),
    )


def _locate(services: Services, event: Event, after: int) -> int:
    for position, stored in services.store.read(after=after, topics=[event.type]):
        if stored.command_id == event.command_id and stored.originator_id == event.originator_id:
            return int(position)
    raise InvalidCommand("command_id", "the recorded event is not in the log")  # pragma: no cover


def _earlier(services: Services, command: Command) -> Event | None:
    """The event recorded earlier for the command's identity, if any.

    The identity is the explicit ``command_id``, or without one the digest
    of the command's content: the same write, ``occurred_at`` included,
    sent twice is recorded once, as an import line is.
    """
    route = _RULES.get(type(command))
    if route is None:
        return None
    command_id = derived_command_id(command)
    target = route.key(command, command_id)
    for event in services.store.stream(target):
        if event.command_id == command_id:
            return event
    return None


def fields_of(body: msgspec.Struct | None, **extra: Any) -> dict[str, Any]:
    """A request body as the plain fields of a command (unset fields left out)."""
    fields: dict[str, Any] = msgspec.to_builtins(body) if body is not None else {}
    fields.update(extra)
    return fields


def record(request: Request[Any, Any, Any], fields: dict[str, Any]) -> Response[Written]:
    """Decide and record one command for the signed-in user: 201, or 200 for a repeat.

    A repeat (the same ``command_id``) without ``occurred_at`` takes the
    business time of the event recorded first, so that retrying a request
    is safe; with a different content it is refused (422 on ``command_id``).
    """
    services = services_of(request)
    command = services.command(fields, current_user(request))
    earlier = _earlier(services, command) if command.command_id is not None else None
    if earlier is not None and not fields.get("occurred_at"):
        command = msgspec.structs.replace(command, occurred_at=earlier.occurred_at)
    before = services.store.last_position()
    recorded = services.run([command])
    if recorded:
        event = recorded[0]
        position = _locate(services, event, before)
        event = services.ledger.vault.reveal_events([event])[0]  # personal data: docs/privacy.md
        return Response(Written(recorded=True, event=log_event(position, event)), status_code=201)
    # Nothing new: the same command (same identity, same content) was recorded before.
    event = earlier or _earlier(services, command)
    if event is None:  # pragma: no cover - the ledger found it, so must we
        raise RuntimeError(f"{command.type}: recorded before, yet not found in the log")
    position = _locate(services, event, 0)
    event = services.ledger.vault.reveal_events([event])[0]  # sealed in the log: revealed
    return Response(Written(recorded=False, event=log_event(position, event)), status_code=200)


def new_slug(prefix: str, network: str, command_id: str | None) -> str:
    """An id for a new record: derived from the ``command_id`` (so a retry finds it) or random."""
    if command_id is None:
        return f"{prefix}-{secrets.token_hex(5)}"
    digest = hashlib.sha256(f"{network}\n{command_id}".encode()).hexdigest()
    return f"{prefix}-{digest[:10]}"


# ------------------------------------------------------------------ access


def grant_of(request: Request[Any, Any, Any], network: str) -> Grant:
    """The user's grant in the network (the guard has checked there is one)."""
    grant = current_user(request).grants.get(network)
    if grant is None:  # pragma: no cover - network_guard answers 404 first
        raise PermissionDeniedException(f"no role in {network}")
    return grant


def own_business(request: Request[Any, Any, Any], network: str) -> str | None:
    """The business a member acts for; ``None`` for a coordinator or an auditor."""
    grant = grant_of(request, network)
    if grant.role != "member":
        return None
    if grant.member is None:
        raise PermissionDeniedException("your member role names no business; ask a coordinator")
    return str(grant.member)


def require_self(request: Request[Any, Any, Any], network: str, member: str, what: str) -> None:
    """A member may act only for their own business (403 otherwise)."""
    own = own_business(request, network)
    if own is not None and member != own:
        raise PermissionDeniedException(
            f"a member acts only for their own business ({own}); {what} is {member!r}"
        )


def may_see(request: Request[Any, Any, Any], network: str, members: Iterable[str]) -> bool:
    """Coordinators and auditors see everything; a member what concerns their business."""
    own = own_business(request, network)
    return own is None or own in set(members)


def require_party(
    request: Request[Any, Any, Any], network: str, members: Iterable[str], what: str
) -> None:
    """A member may read only what concerns their own business (403 otherwise)."""
    if not may_see(request, network, members):
        raise PermissionDeniedException(
            f"a member sees only what concerns their own business; {what} does not"
        )


def only_self(request: Request[Any, Any, Any], network: str, member: str | None) -> str | None:
    """The member filter a reader gets: a member's own business, whatever they asked."""
    own = own_business(request, network)
    if own is None:
        return member
    if member is not None and member != own:
        raise PermissionDeniedException(
            f"a member sees only their own business ({own}), not {member!r}"
        )
    return own


def services(request: Request[Any, Any, Any]) -> Services:
    """The application services (shorthand)."""
    return services_of(request)


__all__ = [
    "DEFAULT_LIMIT",
    "EXCEPTION_HANDLERS",
    "MAX_LIMIT",
    "Cursor",
    "FieldError",
    "Limit",
    "LogEvent",
    "Problem",
    "Reason",
    "TimeText",
    "WriteBody",
    "Written",
    "amount",
    "api_get",
    "api_post",
    "fields_of",
    "grant_of",
    "log_event",
    "may_see",
    "new_slug",
    "offset",
    "only_self",
    "own_business",
    "parse_time",
    "problem",
    "record",
    "require_party",
    "require_self",
    "services",
    "slice_page",
    "time_query",
]
