"""Agreements: propose, accept, activate, amend, renew and terminate; terms versions side by side.

* ``GET /n/{network}/agreements``: every agreement (a member: those their
  business is a party to) with its status, parties and pilot end, the pilots
  ending within 14 days, and the form to propose one.
* ``POST /n/{network}/agreements``: propose an agreement.
* ``GET /n/{network}/agreements/{agreement}?left=&right=``: the agreement,
  its terms versions and a side-by-side diff of two of them (by default the
  latest against the one before), with the forms its status allows.
* ``POST /n/{network}/agreements/{agreement}/{action}``: ``accept`` (a
  party), ``amend`` (new terms, accepted by every party), and the
  coordinator's ``activate``, ``renew`` and ``terminate`` (a reason).

Coordinators act on every agreement; a member proposes, accepts (for their
own business) and amends only agreements their business is a party to;
an auditor reads. A refused form is shown again with the error next to its
field (status 422) and nothing is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from litestar import Request, get, post
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.params import FromPath, FromQuery
from litestar.response import Template

from partnerledger import DomainError
from partnerledger.commands import PROGRAM, AgreementAmended, AgreementProposed, Terms
from partnerledger.domain import Agreement
from partnerledger.domain.agreement import LIVE
from partnerledger.errors import InvalidCommand, StoreUnavailable

from .pages import NAV, NavItem, page, read_form
from .referrals import Errors, acting_member, new_id, see_other, show_money, show_time
from .security import COORDINATOR_OR_MEMBER, current_user, network_guard, services_of
from .services import Services

NAV.append(NavItem("Agreements", "/agreements", order=40))

#: A pilot ending within this many days is listed as ending soon.
PILOT_SOON_DAYS = 14
KINDS = ("referral", "co-marketing", "channel", "joint-venture", "supply-chain")
RENEWALS = ("manual", "automatic", "none")
COMPENSATIONS = (("", "None"), ("referral_fee", "Referral fee"), ("revenue_share", "Revenue share"))
TERMS_FIELDS = (
    "terms.scope",
    "terms.responsibilities",
    "terms.targets.referrals_per_month",
    "terms.targets.conversion_rate",
    "terms.compensation.kind",
    "terms.compensation.amount",
    "terms.compensation.currency",
    "terms.compensation.rate",
    "terms.payment_terms",
    "terms.exclusivity",
    "terms.confidentiality",
    "terms.non_solicitation",
    "terms.duration_days",
    "terms.renewal",
    "terms.termination_notice_days",
)
PROPOSE_FIELDS = ("agreement", "kind", "parties", *TERMS_FIELDS, "pilot.days", "pilot.goals")
AMEND_FIELDS = (*TERMS_FIELDS, "accepted_by")
_FLAGS = ("exclusivity", "confidentiality", "non_solicitation")
#: Action → the roles allowed, the form fields it takes.
_ACTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "accept": (("coordinator", "member"), ("party",)),
    "amend": (("coordinator", "member"), AMEND_FIELDS),
    "activate": (("coordinator",), ()),
    "renew": (("coordinator",), ("duration_days",)),
    "terminate": (("coordinator",), ("reason",)),
}


# ------------------------------------------------------------------ reading


def agreements_of(services: Services, network: str) -> list[Agreement]:
    """Every agreement of the network, in the order they were proposed."""
    return services.agreements(network)


def _visible(request: Request[Any, Any, Any], network: str, agreement: Agreement) -> bool:
    me = acting_member(request, network)
    return me is None or me in agreement.parties


@dataclass(frozen=True)
class Version:
    """One version of an agreement's terms and how it came to be."""

    number: int
    terms: Terms
    occurred_at: datetime
    actor: str
    accepted_by: tuple[str, ...]


def versions(services: Services, agreement: Agreement) -> list[Version]:
    """The agreement's terms versions, oldest first."""
    found: list[Version] = []
    for event in services.ledger.history(agreement.id):
        command = event.command
        if isinstance(command, AgreementProposed | AgreementAmended):
            found.append(
                Version(
                    number=len(found) + 1,
                    terms=command.terms,
                    occurred_at=command.occurred_at,
                    actor=command.actor,
                    accepted_by=(
                        command.accepted_by if isinstance(command, AgreementAmended) else ()
                    ),
                )
            )
    return found


def _decimal(value: Decimal | None) -> str:
    return "" if value is None else f"{value.normalize():f}"


def _fraction(value: Decimal | None) -> str:
    if value is None:
        return "—"
    return f"{value:f} ({_decimal(value * 100)} %)"


def terms_rows(
    terms: Terms, parties: tuple[str, ...], currency: str = ""
) -> list[tuple[str, str, str]]:
    """The terms as (key, label, text) rows, every field shown (— when unset).

    ``currency`` is the network's, which a fee without its own is in.
    """
    pay = terms.compensation
    targets = terms.targets
    yes = {True: "yes", False: "no"}
    rows = [("scope", "Scope", terms.scope)]
    for party in (*parties, *(p for p in terms.responsibilities if p not in parties)):
        rows.append(
            (
                f"responsibilities.{party}",
                f"Responsibilities of {party}",
                terms.responsibilities.get(party, "—"),
            )
        )
    rows += [
        (
            "targets.referrals_per_month",
            "Target: referrals per month",
            str(targets.referrals_per_month)
            if targets and targets.referrals_per_month is not None
            else "—",
        ),
        (
            "targets.conversion_rate",
            "Target: conversion rate",
            _fraction(targets.conversion_rate if targets else None),
        ),
        (
            "compensation.kind",
            "Compensation",
            dict(COMPENSATIONS).get(pay.kind, pay.kind) if pay else "None",
        ),
        (
            "compensation.amount",
            "Fee per converted referral",
            show_money(pay.amount, pay.currency or currency)
            if pay and pay.amount is not None
            else "—",
        ),
        ("compensation.rate", "Revenue share", _fraction(pay.rate if pay else None)),
        ("payment_terms", "Payment terms", terms.payment_terms or "—"),
        ("exclusivity", "Exclusivity", yes[terms.exclusivity]),
        ("confidentiality", "Confidentiality", yes[terms.confidentiality]),
        ("non_solicitation", "Non-solicitation", yes[terms.non_solicitation]),
        (
            "duration_days",
            "Duration",
            f"{terms.duration_days} days" if terms.duration_days else "open-ended",
        ),
        ("renewal", "Renewal", terms.renewal),
        (
            "termination_notice_days",
            "Termination notice",
            f"{terms.termination_notice_days} days",
        ),
    ]
    return rows


@dataclass(frozen=True)
class DiffRow:
    """One field of two terms versions side by side."""

    label: str
    left: str
    right: str

    @property
    def changed(self) -> bool:
        """Whether the two versions differ on this field."""
        return self.left != self.right


def diff(left: Terms, right: Terms, parties: tuple[str, ...], currency: str = "") -> list[DiffRow]:
    """Every field of two terms versions, side by side, in the order of the terms."""
    a = {key: (label, text) for key, label, text in terms_rows(left, parties, currency)}
    b = {key: (label, text) for key, label, text in terms_rows(right, parties, currency)}
    keys = list(dict.fromkeys([*a, *b]))
    return [
        DiffRow(
            (a.get(key) or b[key])[0],
            a[key][1] if key in a else "—",
            b[key][1] if key in b else "—",
        )
        for key in keys
    ]


# ------------------------------------------------------------------ forms


def _lines(text: Any) -> list[str]:
    return [line.strip() for line in str(text or "").splitlines() if line.strip()]


def _many(value: Any) -> list[str]:
    """A repeated form field as a list (one value comes as a string)."""
    if value is None or value == "":
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _compact(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v not in (None, "", [], {})}


def terms_from(form: dict[str, Any]) -> dict[str, Any]:
    """The terms a form describes, as command data (empty fields left out)."""

    def text(name: str) -> str:
        return str(form.get(f"terms.{name}", "")).strip()

    responsibilities = {}
    for line in _lines(form.get("terms.responsibilities")):
        party, colon, duty = line.partition(":")
        if not colon or not party.strip() or not duty.strip():
            raise InvalidCommand(
                "terms.responsibilities",
                f"write one party a line, as `party: what they do`: {line!r}",
            )
        responsibilities[party.strip()] = duty.strip()
    compensation = _compact(
        {
            "kind": text("compensation.kind"),
            "amount": text("compensation.amount"),
            "currency": text("compensation.currency"),
            "rate": text("compensation.rate"),
        }
    )
    return _compact(
        {
            "scope": text("scope"),
            "responsibilities": responsibilities,
            "targets": _compact(
                {
                    "referrals_per_month": text("targets.referrals_per_month"),
                    "conversion_rate": text("targets.conversion_rate"),
                }
            ),
            "compensation": compensation if compensation.get("kind") else {},
            "payment_terms": text("payment_terms"),
            **{flag: f"terms.{flag}" in form for flag in _FLAGS},
            "duration_days": text("duration_days"),
            "renewal": text("renewal"),
            "termination_notice_days": text("termination_notice_days"),
        }
    )


def terms_values(terms: Terms) -> dict[str, Any]:
    """Form values that describe terms (to amend them)."""
    pay = terms.compensation
    targets = terms.targets
    values: dict[str, Any] = {
        "terms.scope": terms.scope,
        "terms.responsibilities": "\n".join(f"{p}: {t}" for p, t in terms.responsibilities.items()),
        "terms.targets.referrals_per_month": (
            targets.referrals_per_month
            if targets and targets.referrals_per_month is not None
            else ""
        ),
        "terms.targets.conversion_rate": _decimal(targets.conversion_rate if targets else None),
        "terms.compensation.kind": pay.kind if pay else "",
        "terms.compensation.amount": _decimal(pay.amount if pay else None),
        "terms.compensation.currency": (pay.currency or "") if pay else "",
        "terms.compensation.rate": _decimal(pay.rate if pay else None),
        "terms.payment_terms": terms.payment_terms or "",
        "terms.duration_days": terms.duration_days or "",
        "terms.renewal": terms.renewal,
        "terms.termination_notice_days": terms.termination_notice_days,
    }
    for flag in _FLAGS:
        if getattr(terms, flag):
            values[f"terms.{flag}"] = "on"
    return values


def _field(name: str) -> str:
    """The form field a domain error's field is shown next to."""
    name = re.sub(r"\[\d+\]", "", name)
    if name.startswith("terms.responsibilities"):
        return "terms.responsibilities"
    if name == "terms.compensation":
        return "terms.compensation.kind"
    if name == "pilot":
        return "pilot.days"
    return name


def _errors(form: str, error: DomainError, known: tuple[str, ...]) -> Errors:
    shown = DomainError(_field(error.field), error.reason)
    return Errors.of(form, shown, known)


# ------------------------------------------------------------------- pages


def _list_page(
    request: Request[Any, Any, Any],
    network: str,
    *,
    errors: Errors | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Template:
    services = services_of(request)
    found = services.network(network)
    me = acting_member(request, network)
    role = current_user(request).role_in(network)
    agreements = [a for a in agreements_of(services, network) if _visible(request, network, a)]
    now = datetime.now(UTC)
    soon = sorted(
        (
            a
            for a in agreements
            if a.status == "pilot"
            and a.pilot_ends_at is not None
            and a.pilot_ends_at <= now + timedelta(days=PILOT_SOON_DAYS)
        ),
        key=lambda a: a.pilot_ends_at or now,
    )
    members = services.members(network)
    defaults: dict[str, Any] = {
        "kind": "referral",
        "parties": [me] if me else [],
        "terms.renewal": "manual",
        "terms.termination_notice_days": "30",
        "terms.compensation.currency": found.currency,
        "pilot.days": "90",
    }
    return page(
        request,
        "agreements.html",
        network=network,
        status_code=status_code,
        agreements=list(reversed(agreements)),
        soon=soon,
        now=now,
        me=me,
        can_propose=role in ("coordinator", "member"),
        party_options=[(m.slug, f"{m.name} ({m.slug})") for m in members if m.status == "active"]
        + [(PROGRAM, "The network's program")],
        names={m.slug: m.name for m in members},
        kinds=KINDS,
        renewals=RENEWALS,
        compensations=COMPENSATIONS,
        errors=errors or Errors(),
        values=values if values is not None else defaults,
        when=show_time,
        days_left=lambda moment: int((moment - now) / timedelta(days=1)),
    )


@get(
    "/n/{network:str}/agreements",
    operation_id="agreementsPage",
    guards=[network_guard],
    include_in_schema=False,
)
async def agreements_page(request: Request[Any, Any, Any], network: FromPath[str]) -> Template:
    """Every agreement with its status, parties and pilot end; pilots ending soon; propose."""
    return _list_page(request, network)


@post(
    "/n/{network:str}/agreements",
    operation_id="proposeAgreement",
    guards=[network_guard],
    opt=COORDINATOR_OR_MEMBER,
    include_in_schema=False,
)
async def propose_agreement(request: Request[Any, Any, Any], network: FromPath[str]) -> Any:
    """Propose an agreement; a member only one their business is a party to."""
    services = services_of(request)
    form = await read_form(request)
    me = acting_member(request, network)
    parties = _many(form.get("parties"))
    slug = str(form.get("agreement", "")).strip() or new_id("a")
    try:
        if me is not None and me not in parties:
            raise InvalidCommand(
                "parties", f"you propose for {me}: include your business among the parties"
            )
        pilot_days = str(form.get("pilot.days", "")).strip()
        goals = _lines(form.get("pilot.goals"))
        fields = {
            "type": "agreement.proposed",
            "network": network,
            "agreement": slug,
            "kind": form.get("kind"),
            "parties": parties,
            "terms": terms_from(form),
            "pilot": _compact({"days": pilot_days, "goals": goals}) if pilot_days else None,
        }
        services.execute(fields, current_user(request))
    except StoreUnavailable:
        raise
    except DomainError as error:
        form["parties"] = parties
        errors = _errors("propose", error, PROPOSE_FIELDS)
        return _list_page(request, network, errors=errors, values=form, status_code=422)
    return see_other(f"/n/{network}/agreements/{slug}")


def _detail_page(
    request: Request[Any, Any, Any],
    network: str,
    slug: str,
    *,
    left: int | None = None,
    right: int | None = None,
    errors: Errors | None = None,
    posted: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Template:
    services = services_of(request)
    errors = errors or Errors()
    posted = posted or {}
    found_network = services.network(network)
    agreement = _load(request, services, network, slug)
    role = current_user(request).role_in(network)
    me = acting_member(request, network)
    found = versions(services, agreement)
    count = len(found)
    right = right if right is not None and 1 <= right <= count else count
    left = left if left is not None and 1 <= left <= count else max(1, right - 1)
    pending = [p for p in agreement.parties if p not in agreement.accepted_by]
    if role == "member":
        pending = [p for p in pending if p == me]
    party = role == "coordinator" or (role == "member" and me in agreement.parties)
    status = agreement.status
    allowed = {
        "accept": status == "proposed" and bool(pending) and party,
        "amend": status in ("pilot", *LIVE) and party,
        "activate": status == "pilot" and role == "coordinator",
        "renew": status in LIVE and role == "coordinator",
        "terminate": status in ("proposed", "pilot", *LIVE) and role == "coordinator",
    }
    names = {m.slug: m.name for m in services.members(network)}
    names.setdefault(PROGRAM, "The network's program")
    return page(
        request,
        "agreements_detail.html",
        network=network,
        status_code=status_code,
        agreement=agreement,
        versions=found,
        left=found[left - 1],
        right=found[right - 1],
        rows=diff(
            found[left - 1].terms, found[right - 1].terms, agreement.parties, found_network.currency
        ),
        current=terms_rows(agreement.current_terms, agreement.parties, found_network.currency),
        pending=pending,
        allowed=allowed,
        me=me,
        names=names,
        party_pairs=[(p, f"{names.get(p, p)} ({p})") for p in agreement.parties],
        renewals=RENEWALS,
        compensations=COMPENSATIONS,
        currency=found_network.currency,
        errors=errors,
        posted=posted,
        values=posted if errors.form == "amend" else terms_values(agreement.current_terms),
        accepted_by=(
            _many(posted.get("accepted_by")) if errors.form == "amend" else list(agreement.parties)
        ),
        when=show_time,
    )


def _load(
    request: Request[Any, Any, Any], services: Services, network: str, slug: str
) -> Agreement:
    found = services.ledger.unit_of_work().agreement(network, slug, "agreement")
    if not _visible(request, network, found):
        raise PermissionDeniedException("only the parties to an agreement and coordinators see it")
    return found


@get(
    "/n/{network:str}/agreements/{agreement:str}",
    operation_id="agreementPage",
    guards=[network_guard],
    include_in_schema=False,
)
async def agreement_page(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    agreement: FromPath[str],
    left: FromQuery[int | None] = None,
    right: FromQuery[int | None] = None,
) -> Template:
    """An agreement: status, parties, terms versions and two of them side by side."""
    return _detail_page(request, network, agreement, left=left, right=right)


@post(
    "/n/{network:str}/agreements/{agreement:str}/{action:str}",
    operation_id="changeAgreement",
    guards=[network_guard],
    opt=COORDINATOR_OR_MEMBER,
    include_in_schema=False,
)
async def change_agreement(
    request: Request[Any, Any, Any],
    network: FromPath[str],
    agreement: FromPath[str],
    action: FromPath[str],
) -> Any:
    """Accept, amend, activate, renew or terminate an agreement.

    Activating, renewing and terminating are the coordinator's; a member
    accepts for their own business and amends agreements it is a party to.
    """
    if action not in _ACTIONS:
        raise NotFoundException(f"no action {action!r} on an agreement")
    roles, known = _ACTIONS[action]
    role = current_user(request).role_in(network)
    if role not in roles:
        raise PermissionDeniedException(f"a {role} of {network} cannot {action} an agreement")
    services = services_of(request)
    found = _load(request, services, network, agreement)
    me = acting_member(request, network)
    form = await read_form(request)
    fields: dict[str, Any] = {"type": _TYPES[action], "network": network, "agreement": agreement}
    try:
        if action == "accept":
            party = str(form.get("party", "")).strip()
            if me is not None and party != me:
                raise PermissionDeniedException(f"a member accepts only for their business ({me})")
            fields["party"] = party
        elif action == "amend":
            fields["terms"] = terms_from(form)
            fields["accepted_by"] = _many(form.get("accepted_by"))
        elif action == "renew":
            fields["duration_days"] = str(form.get("duration_days", "")).strip()
        elif action == "terminate":
            fields["reason"] = str(form.get("reason", "")).strip()
        services.execute(fields, current_user(request))
    except StoreUnavailable:
        raise
    except DomainError as error:
        return _detail_page(
            request, network, found.slug, errors=_errors(action, error, known),
            posted=form, status_code=422,
        )  # fmt: skip
    return see_other(f"/n/{network}/agreements/{agreement}")


_TYPES = {
    "accept": "agreement.accepted",
    "amend": "agreement.amended",
    "activate": "agreement.activated",
    "renew": "agreement.renewed",
    "terminate": "agreement.terminated",
}

ROUTES = [agreements_page, propose_agreement, agreement_page, change_agreement]

__all__ = [
    "PILOT_SOON_DAYS",
    "ROUTES",
    "DiffRow",
    "Version",
    "agreements_of",
    "diff",
    "terms_from",
    "terms_rows",
    "terms_values",
    "versions",
]
