"""Disputes: raise one on a referral, a conversion or a ledger entry; comment; resolve.

* ``GET /n/{network}/disputes?status=&on=``: the network's disputes (a
  member: those of their business), and the form to raise one (``on``
  prefills its subject: ``referral:r-1``, ``ledger-entry:ann-law/SOURCE``).
* ``POST /n/{network}/disputes``: raise a dispute, with a statement, a text
  and evidence files (multipart; at most 10 MiB a file).
* ``GET /n/{network}/disputes/{dispute}``: the dispute: subject, statement,
  evidence, comments, compensations, resolution, and the money the ledger
  holds for its subject.
* ``POST …/{dispute}/comments``: a party or a coordinator comments (with evidence).
* ``POST …/{dispute}/withdraw``: whoever raised it withdraws it.
* ``POST …/{dispute}/resolve``: a coordinator resolves it: outcome, reason,
  and compensations (reassign the referral's credit, adjust ledgers,
  reverse entries), recorded in one transaction.
* ``GET …/{dispute}/evidence/{sha256}``: an evidence file, as an attachment.

Who may do what: a member raises disputes on referrals their business sent
or received and on its own ledger entries, and reads and comments on the
disputes it is party to (403 on others); a coordinator does everything;
an auditor reads everything and changes nothing (403). Another network's
users get 404 on every route (the network guard).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, FromQuery
from litestar.response import Template

from partnerledger import DomainError
from partnerledger.disputes import (
    DisputeRecord,
    DisputeService,
    Upload,
    dispute_record,
    dispute_records,
    entry_lines,
    entry_ref,
    parse_subject,
)
from partnerledger.domain import referral_id
from partnerledger.errors import InvalidCommand, NotFound, StoreUnavailable
from partnerledger.evidence import MAX_BYTES, EvidenceStore, plain_media_type
from partnerledger.views import ledger as ledger_view

from .pages import NAV, NavItem, page
from .referrals import Errors, acting_member, new_id, see_other, show_money, show_time
from .security import (
    COORDINATOR,
    COORDINATOR_OR_MEMBER,
    current_user,
    network_guard,
    services_of,
)
from .services import Services

NAV.append(NavItem("Disputes", "/disputes", order=65))

#: Files one form may send; the request body may then be this many times 10 MiB, and a bit.
MAX_FILES = 5
BODY_LIMIT = MAX_FILES * MAX_BYTES + 1024 * 1024
RAISE_FIELDS = ("subject_kind", "subject", "raised_by", "statement", "evidence_text",
                "evidence_file")  # fmt: skip
COMMENT_FIELDS = ("author", "text", "evidence_text", "evidence_file")
RESOLVE_FIELDS = ("outcome", "reason", "reassign_credit", "to_member", "from_member",
                  "adjust", "amount", "member", "reverse_entry", "compensations")  # fmt: skip
KINDS = (
    ("referral", "The referral"),
    ("conversion", "Its conversion"),
    ("attribution", "Its attribution (who gets the credit)"),
    ("ledger_entry", "A ledger entry"),
)
OUTCOMES = (("upheld", "Upheld"), ("partly_upheld", "Partly upheld"), ("rejected", "Rejected"))


def _text(form: dict[str, Any], name: str) -> str:
    value = form.get(name, "")
    if isinstance(value, list):
        value = value[-1] if value else ""
    return value.strip() if isinstance(value, str) else ""


def _texts(form: dict[str, Any], name: str) -> list[str]:
    value = form.get(name, [])
    values = value if isinstance(value, list) else [value]
    return [v.strip() if isinstance(v, str) else "" for v in values]


async def _read(request: Request[Any, Any, Any]) -> tuple[dict[str, Any], list[Upload]]:
    """A (multipart) form's fields, and its evidence files (empty file inputs left out)."""
    data = await request.form()
    fields: dict[str, Any] = {}
    uploads: list[Upload] = []
    for key in data:
        if key == "_csrf_token":
            continue
        values = data.getall(key)
        if key == "evidence_file":
            for item in values:
                if isinstance(item, UploadFile) and (item.filename or ""):
                    content = await item.read()
                    uploads.append(
                        Upload(item.filename, plain_media_type(item.content_type), content)
                    )
            continue
        plain = [v for v in values if isinstance(v, str)]
        fields[key] = plain if len(plain) > 1 else (plain[0] if plain else "")
    if len(uploads) > MAX_FILES:
        raise InvalidCommand("evidence_file", f"at most {MAX_FILES} files at a time")
    return fields, uploads


def _service(services: Services, files: EvidenceStore) -> DisputeService:
    return DisputeService(services.ledger, services.projector, files)


def _visible(request: Request[Any, Any, Any], record: DisputeRecord) -> None:
    """403 for a member whose business is no party to the dispute."""
    me = acting_member(request, record.network)
    if me is not None and me not in record.parties:
        raise PermissionDeniedException(
            f"a member reads the disputes of their business ({me}) only"
        )


def _record(services: Services, network: str, dispute: str) -> DisputeRecord:
    services.network(network)
    return dispute_record(services.db, network, dispute)


def referral_entries(services: Services, network: str, referral: str) -> list[ledger_view.Entry]:
    """The ledger entries a referral's events caused (fees, shares, clawbacks)."""
    sources = {e.command_id for e in services.store.stream(referral_id(network, referral))}
    return [e for e in ledger_view.entries(services.db, network) if e.source in sources]


# ------------------------------------------------------------------ the list


def _list(
    request: Request[Any, Any, Any],
    network: str,
    *,
    status: str | None = None,
    on: str | None = None,
    errors: Errors | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Template:
    services = services_of(request)
    services.network(network)
    role = current_user(request).role_in(network)
    me = acting_member(request, network)
    problem = ""
    chosen = status or None
    try:
        found = dispute_records(services.db, network, status=chosen, member=me)
    except StoreUnavailable:
        raise
    except DomainError as error:
        problem, status_code = error.reason, 422
        found = dispute_records(services.db, network, member=me)
    prefill = dict(values or {})
    if on and not values:
        try:
            kind, subject = parse_subject(on)
            prefill.update(subject_kind=kind, subject=subject)
        except StoreUnavailable:
            raise
        except DomainError as error:
            problem, status_code = error.reason, 422
    members = services.members(network)
    return page(
        request,
        "disputes.html",
        network=network,
        status_code=status_code,
        disputes=found,
        status=chosen or "",
        status_error=problem,
        me=me,
        can_raise=role in ("coordinator", "member"),
        names={m.slug: m.name for m in members},
        member_options=[(m.slug, f"{m.name} ({m.slug})") for m in members],
        kinds=KINDS,
        values=prefill,
        errors=errors or Errors(),
        max_mib=MAX_BYTES // (1024 * 1024),
        max_files=MAX_FILES,
        when=show_time,
    )


@get(
    "/n/{network:str}/disputes",
    operation_id="disputesPage",
    guards=[network_guard],
    include_in_schema=False,
)
async def disputes_page(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    status: FromQuery[str | None] = None,
    on: FromQuery[str | None] = None,
) -> Template:
    """The network's disputes (a member: their business's), and the form to raise one."""
    return _list(request, network, status=status, on=on)


@post(
    "/n/{network:str}/disputes",
    operation_id="raiseDispute",
    guards=[network_guard],
    opt=COORDINATOR_OR_MEMBER,
    include_in_schema=False,
    request_max_body_size=BODY_LIMIT,
)
async def raise_dispute(request: Request[Any, Any, Any], network: FromPath[str]) -> Any:
    """Raise a dispute: a member raises it for their own business."""
    services = services_of(request)
    services.network(network)
    me = acting_member(request, network)
    try:
        form, uploads = await _read(request)
    except StoreUnavailable:
        raise
    except DomainError as error:
        return _list(request, network, errors=Errors.of("raise", error, RAISE_FIELDS),
                     values={}, status_code=422)  # fmt: skip
    if me is not None and _text(form, "raised_by") not in ("", me):
        raise PermissionDeniedException(f"a member of {network} raises disputes only as {me}")
    slug = _text(form, "dispute") or new_id("d")
    try:
        with EvidenceStore(services.database) as files:
            _service(services, files).raise_dispute(
                network=network, dispute=slug, subject_kind=_text(form, "subject_kind"),
                subject=_text(form, "subject"), statement=_text(form, "statement"),
                raised_by=me or _text(form, "raised_by") or None,
                texts=[_text(form, "evidence_text")], uploads=uploads,
                actor=current_user(request).email, at=datetime.now(UTC),
            )  # fmt: skip
    except StoreUnavailable:
        raise
    except DomainError as error:
        return _list(request, network, errors=Errors.of("raise", error, RAISE_FIELDS),
                     values=form, status_code=422)  # fmt: skip
    return see_other(f"/n/{network}/disputes/{quote(slug, safe='')}")


# ------------------------------------------------------------------ one dispute


def _detail(
    request: Request[Any, Any, Any],
    network: str,
    dispute: str,
    *,
    errors: Errors | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Template:
    services = services_of(request)
    record = _record(services, network, dispute)
    _visible(request, record)
    found = services.network(network)
    role = current_user(request).role_in(network)
    me = acting_member(request, network)
    members = services.members(network)
    open_ = record.status == "raised"
    money_entries: list[ledger_view.Entry] = []
    credited = None
    if record.referral is not None:
        money_entries = referral_entries(services, network, record.referral)
        credited = services.ledger.unit_of_work().referral(network, record.referral, "referral")
    elif record.subject_kind == "ledger_entry":
        money_entries = entry_lines(services.db, network, record.subject)
    return page(
        request,
        "disputes_detail.html",
        network=network,
        status_code=status_code,
        record=record,
        role=role,
        me=me,
        currency=found.currency,
        names={m.slug: m.name for m in members},
        member_options=[(m.slug, f"{m.name} ({m.slug})") for m in members],
        active_options=[(m.slug, f"{m.name} ({m.slug})") for m in members if m.status == "active"],
        referral=credited,
        money_entries=[(e, entry_ref(e.member, e.source)) for e in money_entries],
        can_comment=open_ and (role == "coordinator" or (me is not None and me in record.parties)),
        can_withdraw=open_ and role in ("coordinator", "member") and record.raised_by == me,
        can_resolve=open_ and role == "coordinator",
        outcomes=OUTCOMES,
        subject_link=_subject_link(network, record),
        errors=errors or Errors(),
        values=values or {},
        max_mib=MAX_BYTES // (1024 * 1024),
        max_files=MAX_FILES,
        money=show_money,
        when=show_time,
    )


def _subject_link(network: str, record: DisputeRecord) -> str:
    if record.referral is not None:
        return f"/n/{network}/trail?{urlencode({'entity': 'referral:' + record.referral})}"
    member = record.subject.partition("/")[0]
    return f"/n/{network}/statements?{urlencode({'member': member})}"


@get(
    "/n/{network:str}/disputes/{dispute:str}",
    operation_id="disputePage",
    guards=[network_guard],
    include_in_schema=False,
)
async def dispute_page(
    request: Request[Any, Any, Any], network: FromPath[str], dispute: FromPath[str]
) -> Template:
    """One dispute: subject, statement, evidence, comments, compensations, resolution."""
    return _detail(request, network, dispute)


@post(
    "/n/{network:str}/disputes/{dispute:str}/comments",
    operation_id="commentDispute",
    guards=[network_guard],
    opt=COORDINATOR_OR_MEMBER,
    include_in_schema=False,
    request_max_body_size=BODY_LIMIT,
)
async def comment_dispute(
    request: Request[Any, Any, Any], network: FromPath[str], dispute: FromPath[str]
) -> Any:
    """A party (a member: as their business) or a coordinator comments, with evidence."""
    services = services_of(request)
    _visible(request, _record(services, network, dispute))
    me = acting_member(request, network)
    try:
        form, uploads = await _read(request)
    except StoreUnavailable:
        raise
    except DomainError as error:
        return _detail(request, network, dispute, status_code=422,
                       errors=Errors.of("comment", error, COMMENT_FIELDS))  # fmt: skip
    try:
        with EvidenceStore(services.database) as files:
            _service(services, files).comment(
                network=network, dispute=dispute, text=_text(form, "text"), author=me,
                texts=[_text(form, "evidence_text")], uploads=uploads,
                actor=current_user(request).email, at=datetime.now(UTC),
            )  # fmt: skip
    except StoreUnavailable:
        raise
    except DomainError as error:
        return _detail(request, network, dispute, values=form, status_code=422,
                       errors=Errors.of("comment", error, COMMENT_FIELDS))  # fmt: skip
    return see_other(f"/n/{network}/disputes/{quote(dispute, safe='')}#comments")


@post(
    "/n/{network:str}/disputes/{dispute:str}/withdraw",
    operation_id="withdrawDispute",
    guards=[network_guard],
    opt=COORDINATOR_OR_MEMBER,
    include_in_schema=False,
)
async def withdraw_dispute(
    request: Request[Any, Any, Any], network: FromPath[str], dispute: FromPath[str]
) -> Any:
    """Whoever raised the dispute withdraws it (a member: only their own)."""
    services = services_of(request)
    record = _record(services, network, dispute)
    _visible(request, record)
    me = acting_member(request, network)
    if record.raised_by != me:
        raiser = record.raised_by or "a coordinator"
        raise PermissionDeniedException(
            f"only who raised dispute {dispute} ({raiser}) withdraws it"
        )
    form, _ = await _read(request)
    try:
        with EvidenceStore(services.database) as files:
            _service(services, files).withdraw(
                network=network, dispute=dispute, by=me, reason=_text(form, "reason") or None,
                actor=current_user(request).email, at=datetime.now(UTC),
            )  # fmt: skip
    except StoreUnavailable:
        raise
    except DomainError as error:
        return _detail(request, network, dispute, values=form, status_code=422,
                       errors=Errors.of("withdraw", error, ("reason",)))  # fmt: skip
    return see_other(f"/n/{network}/disputes/{quote(dispute, safe='')}")


def _pairs(form: dict[str, Any], left: str, right: str) -> list[tuple[str, str]]:
    """Rows of two repeated inputs, the empty rows left out."""
    firsts, seconds = _texts(form, left), _texts(form, right)
    return [(a, b) for a, b in zip(firsts, seconds, strict=False) if a or b]


@post(
    "/n/{network:str}/disputes/{dispute:str}/resolve",
    operation_id="resolveDispute",
    guards=[network_guard],
    opt=COORDINATOR,
    include_in_schema=False,
)
async def resolve_dispute(
    request: Request[Any, Any, Any], network: FromPath[str], dispute: FromPath[str]
) -> Any:
    """A coordinator resolves the dispute with its compensating events, all or nothing."""
    services = services_of(request)
    _record(services, network, dispute)
    form, _ = await _read(request)
    try:
        reassign = _pairs(form, "reassign_referral", "reassign_to")
        for referral, to_member in reassign:
            if not referral or not to_member:
                raise InvalidCommand("reassign_credit", "give the referral and the new member")
        adjust: list[tuple[str, str | Decimal]] = []
        for member, amount in _pairs(form, "adjust_member", "adjust_amount"):
            if not member or not amount:
                raise InvalidCommand("adjust", "give the member and the amount of each adjustment")
            adjust.append((member, amount))
        with EvidenceStore(services.database) as files:
            _service(services, files).resolve(
                network=network, dispute=dispute, outcome=_text(form, "outcome"),
                reason=_text(form, "reason"), reassign=reassign, adjust=adjust,
                reverse=[r for r in _texts(form, "reverse_entry") if r],
                actor=current_user(request).email, at=datetime.now(UTC),
            )  # fmt: skip
    except StoreUnavailable:
        raise
    except DomainError as error:
        return _detail(request, network, dispute, values=form, status_code=422,
                       errors=Errors.of("resolve", error, RESOLVE_FIELDS))  # fmt: skip
    return see_other(f"/n/{network}/disputes/{quote(dispute, safe='')}")


@get(
    "/n/{network:str}/disputes/{dispute:str}/evidence/{sha256:str}",
    operation_id="disputeEvidence",
    guards=[network_guard],
    include_in_schema=False,
)
async def dispute_evidence(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    dispute: FromPath[str],
    sha256: FromPath[str],
) -> Response[bytes]:
    """An evidence file of the dispute, as an attachment (never shown inline)."""
    services = services_of(request)
    record = _record(services, network, dispute)
    _visible(request, record)
    item = record.file(sha256)
    if item is None:
        raise NotFound("sha256", f"dispute {dispute!r} names no file {sha256}")
    with EvidenceStore(services.database) as files:
        found = files.get(network, sha256)
    name = item.name or found.name
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_"
                       for c in name)  # fmt: skip
    return Response(
        content=found.content,
        media_type=found.media_type,
        headers={
            "content-disposition": f'attachment; filename="{fallback}"; '
            f"filename*=UTF-8''{quote(name, safe='')}",
            "x-content-type-options": "nosniff",
        },
    )


ROUTES = [
    disputes_page,
    raise_dispute,
    dispute_page,
    comment_dispute,
    withdraw_dispute,
    resolve_dispute,
    dispute_evidence,
]

__all__ = ["BODY_LIMIT", "MAX_FILES", "ROUTES", "referral_entries"]
