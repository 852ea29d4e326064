"""The referral pipeline: referrals in columns by status, moved along with htmx.

* ``GET /n/{network}/referrals``: a column per status (sent, accepted,
  converted, declined, lost, reversed) of cards (from → to, customer, dates,
  value), with the transitions each card allows the signed-in user, a form
  to send a referral and one to report a thank-you for closed business.
* ``POST /n/{network}/referrals``: send a referral.
* ``POST /n/{network}/referrals/{referral}/{action}``: ``accept``,
  ``decline`` (reason), ``lose`` (reason), ``convert`` (deal value and
  currency) or ``reverse`` (amount and reason).
* ``POST /n/{network}/tyfcb``: a thank-you for closed business.
* ``POST /n/{network}/referrals/{referral}/erase``: erase the personal data
  of the referral's customer (its data subject, with every referral of it),
  with a reason: a coordinator's action (docs/privacy.md).

Who may do what: a coordinator acts on any referral; a member sends only
from their own business, and accepts, declines, converts or loses only the
referrals sent to it (a reversal is the coordinator's); an auditor reads.
A member sees the referrals their business sent or received.

An htmx request gets the pipeline back (the ``#pipeline`` fragment), with
the errors of a refused form next to its fields (status 422); a plain form
post is redirected back to the page, or gets the whole page with the
errors. Nothing is written when a form is refused.

The cards are read from the pipeline view (one row per referral with its
status now; :mod:`partnerledger.views.pipeline`): each column its latest
:data:`COLUMN_LIMIT` cards, with a LIMIT, and an "Older" link to the next
page of that column (a cursor: the last card's time and position), so the
page's work grows with what it shows, not with the history. The customer's
personal data is sealed there and revealed here (``[erased]`` once erased).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from litestar import Request, get, post
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from partnerledger import DomainError
from partnerledger.errors import StoreUnavailable
from partnerledger.privacy import ERASED, erase_subject
from partnerledger.sql import utc_text
from partnerledger.views.pipeline import PipelineRow, counts
from partnerledger.views.pipeline import columns as read_columns

from .pages import NAV, NavItem, page, read_form
from .security import COORDINATOR_OR_MEMBER, current_user, network_guard, services_of
from .services import Services

NAV.append(NavItem("Pipeline", "/referrals", order=30))

#: The pipeline's columns, in order.
STATUSES = ("sent", "accepted", "converted", "declined", "lost", "reversed")
#: Transition → the status a referral must have for it.
ACTIONS = {
    "accept": ("sent",),
    "decline": ("sent",),
    "lose": ("accepted",),
    "convert": ("accepted",),
    "reverse": ("converted", "reversed"),
}
#: Transition → the event type it records and the form fields it takes.
_EVENTS = {
    "accept": ("referral.accepted", ()),
    "decline": ("referral.declined", ("reason",)),
    "lose": ("referral.lost", ("reason",)),
    "convert": ("referral.converted", ("deal_value", "currency")),
    "reverse": ("referral.reversed", ("amount", "currency", "reason")),
}
#: Cards shown per column (a page; the "Older" link shows the next).
COLUMN_LIMIT = 10
_CENT = Decimal("0.01")
SEND_FIELDS = ("referral", "from_member", "to_member", "customer", "customer_contact", "note")
TYFCB_FIELDS = ("member", "thanked_member", "amount", "currency", "referral", "note")


# ------------------------------------------------------------ shared helpers


def acting_member(request: Request[Any, Any, Any], network: str) -> str | None:
    """The business a member acts for in the network (``None`` for other roles)."""
    grant = current_user(request).grants.get(network)
    member: str | None = grant.member if grant is not None and grant.role == "member" else None
    return member


def show_money(amount: Decimal | None, currency: str | None = None) -> str:
    """Money as pages show it: two decimals, thousands separated, with the currency."""
    if amount is None:
        return ""
    text = f"{amount.quantize(_CENT, rounding=ROUND_HALF_EVEN):,}"
    return f"{text} {currency}" if currency else text


def show_time(moment: datetime | None) -> str:
    """A UTC date (and time when not midnight) as pages show it."""
    if moment is None:
        return ""
    if (moment.hour, moment.minute, moment.second) == (0, 0, 0):
        return f"{moment:%Y-%m-%d}"
    return f"{moment:%Y-%m-%d %H:%M}"


@dataclass
class Errors:
    """A refused form: which form, its errors by field, and those no field of it shows."""

    form: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    general: str = ""

    def __bool__(self) -> bool:
        return bool(self.form)

    @classmethod
    def of(cls, form: str, error: DomainError, known: tuple[str, ...]) -> Errors:
        """The error of a refused command, next to its field when the form has that field."""
        if error.field in known:
            return cls(form, {error.field: error.reason})
        return cls(form, {}, f"{error.field}: {error.reason}")

    def on(self, form: str) -> dict[str, str]:
        """The field errors of one form (none when another form was refused)."""
        return self.fields if form == self.form else {}

    def general_on(self, form: str) -> str:
        """The message for the whole of one form."""
        return self.general if form == self.form else ""


def see_other(path: str) -> Redirect:
    """After a successful post: back to a page (303, so the browser GETs it)."""
    return Redirect(path=path, status_code=303)


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    """Whether htmx sent the request (and expects a fragment)."""
    return request.headers.get("hx-request") == "true"


def new_id(prefix: str) -> str:
    """An id for a new record when the form left it empty."""
    return f"{prefix}-{secrets.token_hex(4)}"


# ------------------------------------------------------------------ reading


@dataclass
class Card:
    """One referral as the pipeline shows it."""

    slug: str
    from_member: str = ""
    to_member: str = ""
    customer: str = ""
    customer_contact: str | None = None
    subject: str = ""
    note: str | None = None
    status: str = "sent"
    sent_at: datetime | None = None
    accepted_at: datetime | None = None
    ended_at: datetime | None = None  # declined or lost
    converted_at: datetime | None = None
    updated_at: datetime | None = None
    deal_value: Decimal | None = None
    currency: str | None = None
    reversed_amount: Decimal = Decimal(0)
    reason: str | None = None
    #: The log position of its ``referral.sent``.
    position: int = 0

    @property
    def net_value(self) -> Decimal:
        """The converted value after reversals."""
        return (self.deal_value or Decimal(0)) - self.reversed_amount

    def involves(self, member: str) -> bool:
        """Whether the member sent or received it."""
        return member in (self.from_member, self.to_member)


def card_of(row: PipelineRow, customer: str, contact: str | None) -> Card:
    """A pipeline view's row as a card, its customer revealed."""
    return Card(
        slug=row.referral, from_member=row.from_member, to_member=row.to_member,
        customer=customer, customer_contact=contact, subject=row.subject, note=row.note,
        status=row.status, sent_at=row.sent_at, accepted_at=row.accepted_at,
        ended_at=row.ended_at, converted_at=row.converted_at, updated_at=row.moved_at,
        deal_value=row.deal_value, currency=row.currency, reversed_amount=row.reversed_amount,
        reason=row.reason, position=row.position,
    )  # fmt: skip


def cards_of(services: Services, network: str, rows: list[PipelineRow]) -> list[Card]:
    """Cards of pipeline rows, every customer revealed with one read of the keys."""
    shown = services.reveal_many(
        network,
        [(f, v) for r in rows for f, v in (("customer", r.customer),
                                           ("customer_contact", r.customer_contact))],
    )  # fmt: skip
    return [card_of(r, shown[2 * i] or "", shown[2 * i + 1]) for i, r in enumerate(rows)]


def cursor_of(card: Card) -> str:
    """Where a column's next page starts: after this card (its time moved and position)."""
    moved = card.updated_at or datetime.min.replace(tzinfo=UTC)
    return f"{utc_text(moved)}_{card.position}"


def parse_cursor(text: str | None) -> tuple[datetime, int] | None:
    """A column's cursor (``before``), or ``None`` for the first page; NotFound if malformed."""
    if not text:
        return None
    moment, _, position = text.rpartition("_")
    try:
        return datetime.fromisoformat(moment), int(position)
    except ValueError:
        raise NotFoundException(f"no page {text!r} of the pipeline") from None


def allowed_actions(card: Card, role: str | None, me: str | None) -> list[str]:
    """The transitions the user may make on a card now."""
    if role not in ("coordinator", "member"):
        return []
    found = [a for a, states in ACTIONS.items() if card.status in states]
    if "reverse" in found and card.net_value <= 0:
        found.remove("reverse")
    if role == "member":
        found = [a for a in found if a != "reverse" and card.to_member == me]
    return found


# ------------------------------------------------------------------- pages


def _pipeline(
    request: Request[Any, Any, Any],
    network: str,
    *,
    errors: Errors | None = None,
    values: dict[str, Any] | None = None,
    older: tuple[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    """The pipeline: each column's latest :data:`COLUMN_LIMIT` cards (read from the
    pipeline view with a LIMIT), and the count of each; ``older`` = (status, cursor)
    starts that column after the cursor."""
    services = services_of(request)
    found = services.network(network)
    user = current_user(request)
    role = user.role_in(network)
    me = acting_member(request, network)
    db = services.db
    mine = me if role == "member" else None
    if role == "member" and me is None:
        totals: dict[str, int] = {}
    else:
        totals = counts(db, network, member=mine)
    cursor = parse_cursor(older[1]) if older is not None else None
    before = (older[0], cursor) if older is not None and cursor is not None else None
    # Every column asked, even an empty one, in one statement: the same whatever the history.
    found_rows = read_columns(
        db, network, STATUSES, member=mine, before=before, limit=COLUMN_LIMIT + 1
    )
    pages: list[tuple[str, list[PipelineRow], bool]] = [
        (status, found_rows[status], before is not None and before[0] == status)
        for status in STATUSES
    ]
    shown = cards_of(services, network, [r for _, rows, _ in pages for r in rows[:COLUMN_LIMIT]])
    columns = []
    thanked: list[Card] = []
    for status, rows, paged in pages:
        cards, shown = shown[: min(len(rows), COLUMN_LIMIT)], shown[min(len(rows), COLUMN_LIMIT) :]
        columns.append({
            "status": status, "cards": cards, "total": totals.get(status, 0),
            "older": cursor_of(cards[-1]) if len(rows) > COLUMN_LIMIT else None,
            "paged": paged,
        })  # fmt: skip
        if status in ("converted", "reversed"):
            thanked.extend(c for c in cards if me is None or c.to_member == me)
    members = services.members(network, db)
    active = [m for m in members if m.status == "active"]
    names = {m.slug: m.name for m in members}
    active_options = [(m.slug, f"{m.name} ({m.slug})") for m in active]
    return page(
        request,
        "referrals.html",
        network=network,
        status_code=status_code,
        columns=columns,
        currency=found.currency,
        names=names,
        active_options=active_options,
        to_options=[o for o in active_options if o[0] != me],
        referral_options=[
            (c.slug, f"{c.slug}: {c.customer}, from {names.get(c.from_member, c.from_member)}")
            for c in thanked
        ],
        me=me,
        can_write=role in ("coordinator", "member"),
        actions_for=lambda card: allowed_actions(card, role, me),
        erased=ERASED,
        errors=errors or Errors(),
        values=values or {},
        money=show_money,
        when=show_time,
    )


@get(
    "/n/{network:str}/referrals",
    operation_id="referralsPage",
    guards=[network_guard],
    include_in_schema=False,
)
async def referrals_page(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    status: FromQuery[str | None] = None,
    before: FromQuery[str | None] = None,
) -> Template:
    """The referral pipeline: a column per status, with the transitions the user may make.

    Each column shows its latest cards; ``?status=sent&before=CURSOR`` (a
    column's "Older" link) shows the sent column's next older page.
    """
    older = (status, before) if status in STATUSES and before else None
    return _pipeline(request, network, older=older)


def _respond(
    request: Request[Any, Any, Any], network: str, errors: Errors | None, values: dict[str, Any]
) -> Any:
    """After a post: the pipeline fragment for htmx, else a redirect (or the page with errors)."""
    if errors:
        return _pipeline(request, network, errors=errors, values=values, status_code=422)
    if is_htmx(request):
        return _pipeline(request, network)
    return see_other(f"/n/{network}/referrals")


@post(
    "/n/{network:str}/referrals",
    operation_id="sendReferral",
    guards=[network_guard],
    opt=COORDINATOR_OR_MEMBER,
    include_in_schema=False,
)
async def send_referral(request: Request[Any, Any, Any], network: FromPath[str]) -> Any:
    """Send a referral: a member sends only from their own business."""
    services = services_of(request)
    form = await read_form(request)
    me = acting_member(request, network)
    if me is not None and form.get("from_member", me) != me:
        raise PermissionDeniedException(f"a member of {network} sends referrals only as {me}")
    fields = {
        "type": "referral.sent",
        "network": network,
        "referral": str(form.get("referral", "")).strip() or new_id("r"),
        "from_member": me or form.get("from_member"),
        "to_member": form.get("to_member"),
        "customer": str(form.get("customer", "")).strip(),
        "customer_contact": str(form.get("customer_contact", "")).strip(),
        "note": str(form.get("note", "")).strip(),
    }
    try:
        services.execute(fields, current_user(request))
    except StoreUnavailable:
        raise
    except DomainError as error:
        return _respond(request, network, Errors.of("send", error, SEND_FIELDS), form)
    return _respond(request, network, None, {})


@post(
    "/n/{network:str}/referrals/{referral:str}/{action:str}",
    operation_id="moveReferral",
    guards=[network_guard],
    opt=COORDINATOR_OR_MEMBER,
    include_in_schema=False,
)
async def move_referral(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    referral: FromPath[str],
    action: FromPath[str],
) -> Any:
    """Accept, decline, lose, convert or reverse a referral.

    A member acts only on referrals sent to their business, and never reverses.
    ``erase`` erases the customer's personal data (a coordinator only).
    """
    if action == "erase":
        return await _erase_customer(request, network, referral)
    if action not in _EVENTS:
        raise NotFoundException(f"no action {action!r} on a referral")
    services = services_of(request)
    found = services.ledger.unit_of_work().referral(network, referral, "referral")
    me = acting_member(request, network)
    if me is not None and (action == "reverse" or found.to_member != me):
        raise PermissionDeniedException(
            f"a member acts only on referrals sent to their business ({me})"
            if action != "reverse"
            else "only a coordinator reverses a conversion"
        )
    form = await read_form(request)
    kind, names = _EVENTS[action]
    fields: dict[str, Any] = {"type": kind, "network": network, "referral": referral}
    for name in names:
        fields[name] = str(form.get(name, "")).strip()
    if action == "convert" and not fields["currency"]:
        fields["currency"] = services.network(network).currency
    try:
        services.execute(fields, current_user(request))
    except StoreUnavailable:
        raise
    except DomainError as error:
        errors = Errors.of(f"{referral}:{action}", error, names)
        return _respond(request, network, errors, form)
    return _respond(request, network, None, {})


async def _erase_customer(request: Request[Any, Any, Any], network: str, referral: str) -> Any:
    """Erase the personal data of a referral's customer: ``subject.erased``, then its key goes.

    Every referral of the same data subject shows ``[erased]`` afterwards.
    """
    user = current_user(request)
    if user.role_in(network) != "coordinator":
        raise PermissionDeniedException("only a coordinator erases a customer's personal data")
    services = services_of(request)
    found = services.ledger.unit_of_work().referral(network, referral, "referral")
    form = await read_form(request)
    reason = str(form.get("reason", "")).strip()
    try:
        erase_subject(services.ledger, network, found.subject, actor=user.email, reason=reason)
    except StoreUnavailable:
        raise
    except DomainError as error:
        return _respond(request, network, Errors.of(f"{referral}:erase", error, ("reason",)), form)
    if services.inline:
        services.projector.catch_up()
    return _respond(request, network, None, {})


@post(
    "/n/{network:str}/tyfcb",
    operation_id="reportTyfcb",
    guards=[network_guard],
    opt=COORDINATOR_OR_MEMBER,
    include_in_schema=False,
)
async def report_tyfcb(request: Request[Any, Any, Any], network: FromPath[str]) -> Any:
    """Report a thank-you for closed business: a member reports only as their own business."""
    services = services_of(request)
    form = await read_form(request)
    me = acting_member(request, network)
    if me is not None and form.get("member", me) != me:
        raise PermissionDeniedException(f"a member of {network} reports thanks only as {me}")
    fields = {
        "type": "tyfcb.reported",
        "network": network,
        "member": me or form.get("member"),
        "thanked_member": form.get("thanked_member"),
        "amount": str(form.get("amount", "")).strip(),
        "currency": str(form.get("currency", "")).strip() or services.network(network).currency,
        "referral": str(form.get("referral", "")).strip(),
        "note": str(form.get("note", "")).strip(),
    }
    try:
        services.execute(fields, current_user(request))
    except StoreUnavailable:
        raise
    except DomainError as error:
        return _respond(request, network, Errors.of("tyfcb", error, TYFCB_FIELDS), form)
    return _respond(request, network, None, {})


ROUTES = [referrals_page, send_referral, move_referral, report_tyfcb]

__all__ = [
    "ACTIONS",
    "ROUTES",
    "STATUSES",
    "Card",
    "Errors",
    "acting_member",
    "allowed_actions",
    "cards_of",
    "is_htmx",
    "new_id",
    "see_other",
    "show_money",
    "show_time",
]
