"""``partnerledger subjects`` and ``erase-subject``: customers' personal data (docs/privacy.md)."""

from __future__ import annotations

import json
from datetime import datetime

import click
from rich.table import Table
from rich.text import Text

from partnerledger import DomainError, Ledger
from partnerledger.errors import InvalidCommand
from partnerledger.privacy import erase_subject, subjects

from .main import _default_actor, _fail, _state, cli, err, out


@cli.command("subjects")
@click.option("--network", required=True, help="The network.")
@click.option("--referral", help="Only the data subject of this referral.")
@click.option("--customer", help="Only the data subject of this customer name (the whole name).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def subjects_(network: str, referral: str | None, customer: str | None, as_json: bool) -> None:
    """The data subjects (customers) of NETWORK's referrals: ids, referrals, erased or not.

    A subject's name is shown while its data exists, never once it is erased.
    """
    ledger = Ledger(_state().store())
    try:
        ledger.unit_of_work().network(network)
        found = subjects(ledger, network, referral=referral, customer=customer)
    except DomainError as error:
        raise _fail(error) from error
    if as_json:
        for summary in found:
            click.echo(json.dumps(summary.as_dict()))
        return
    table = Table(header_style="bold")
    for column in ("subject", "customer", "referrals", "erased"):
        table.add_column(column, overflow="fold")
    for summary in found:
        table.add_row(
            summary.subject,
            Text(summary.customer),  # what a user typed is never read as markup
            ", ".join(summary.referrals),
            "yes" if summary.erased else "",
        )
    out.print(table)
    err.print(f"{len(found)} data subject{'' if len(found) == 1 else 's'} in {network}")


@cli.command("erase-subject")
@click.option("--network", required=True, help="The network.")
@click.option("--subject", required=True, help="The data subject (see `partnerledger subjects`).")
@click.option("--reason", required=True, help="Why (recorded in the log).")
@click.option("--actor", help="Who (default $PARTNERLEDGER_ACTOR or user@host).")
@click.option("--at", help="When it happened, ISO 8601 with an offset (default now).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def erase_subject_(
    network: str, subject: str, reason: str, actor: str | None, at: str | None, as_json: bool
) -> None:
    """Erase a data subject's personal data: record subject.erased, then destroy its key.

    Every referral of the subject shows [erased] from then on; the log, its
    hashes and proofs are unchanged. Refused (exit 1, nothing written) for an
    unknown subject or one already erased.
    """
    try:
        when = datetime.fromisoformat(at.replace("Z", "+00:00")) if at else None
    except ValueError:
        raise _fail(InvalidCommand("occurred_at", f"{at!r} is not an ISO 8601 time")) from None
    if when is not None and when.tzinfo is None:
        raise _fail(InvalidCommand("occurred_at", "give a time with an offset, e.g. Z or +02:00"))
    ledger = Ledger(_state().store())
    try:
        outcome = erase_subject(
            ledger,
            network,
            subject,
            actor=actor or _default_actor(),
            reason=reason,
            occurred_at=when,
        )
    except DomainError as error:
        raise _fail(error) from error
    _state().catch_up()
    recorded = bool(outcome.recorded)
    if as_json:
        click.echo(json.dumps({"network": network, "subject": subject, "recorded": recorded}))
        return
    if recorded:
        out.print(f"Erased data subject {subject} in {network}: its key is destroyed", markup=False)
    else:
        out.print(
            f"Completed the erasure of data subject {subject} in {network} "
            "(recorded before): its key is destroyed",
            markup=False,
        )
