"""``partnerledger scorecard``: partnership scorecards, from the scorecards view."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from decimal import Decimal

import click
import msgspec
from rich.table import Table

from partnerledger import DomainError
from partnerledger.views.scorecards import (
    DORMANT_DAYS,
    PILOT_ENDING_DAYS,
    Flow,
    Progress,
    Scorecard,
    money,
    scorecards,
)

from .asof import as_of_options, cut_of, show_cut, views_at
from .main import _fail, _state, cli, err, out


@cli.command("scorecard")
@click.option("--network", required=True, help="The network.")
@click.option("--member", help="Only this member's partnerships, seen from its side.")
@as_of_options
@click.option(
    "--dormant-days",
    type=click.IntRange(min=1),
    default=DORMANT_DAYS,
    show_default=True,
    help="Days without an interaction after which a partnership is dormant.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (money as strings, rates 0-1).")
def scorecard(
    network: str,
    member: str | None,
    as_of: str | None,
    as_of_recorded: str | None,
    dormant_days: int,
    as_json: bool,
) -> None:
    """Each partnership of NETWORK: referrals each way, conversion, value, reciprocity, flags.

    "given" is the member's referrals to the partner, "received" the
    partner's to the member; value per month spreads the converted value
    over the calendar months since the pair first interacted. Flags:
    one-sided, dormant, pilot-ending (within 14 days), below-target. See
    docs/scorecards.md for every definition. Days and months are measured
    now, or at the moment --as-of (else --as-of-recorded) gives, from the
    log as of that moment.
    """
    cut = cut_of(as_of, as_of_recorded)
    if cut is None:
        projector = _state().projector()
        try:
            cards = scorecards(
                projector.db,
                network,
                member=member,
                as_of=datetime.now(UTC),
                dormant_days=dormant_days,
            )
        except DomainError as error:
            raise _fail(error) from error
    else:
        with views_at(network, cut) as views:
            cards = scorecards(
                views, network, member=member, as_of=cut.moment, dormant_days=dormant_days
            )
    _show(network, cards, as_json)
    if cut is not None:
        show_cut(cut)


def _show(network: str, cards: list[Scorecard], as_json: bool) -> None:
    if as_json:
        sys.stdout.buffer.write(msgspec.json.encode([c.as_dict() for c in cards]) + b"\n")
        return
    if not cards:
        err.print(f"No partnerships with any history in {network!r}.")
        return
    table = Table(header_style="bold")
    for column in (
        "member",
        "partner",
        "given s/a/c",
        "received s/a/c",
        "value given",
        "value received",
        "given / month",
        "received / month",
        "reciprocity",
        "last",
        "agreement",
        "flags",
    ):
        left = column in ("member", "partner", "agreement", "flags")
        table.add_column(column, justify="left" if left else "right", overflow="fold")
    for card in cards:
        last = card.days_since_last_interaction
        table.add_row(
            card.member,
            card.partner,
            _counts(card.given),
            _counts(card.received),
            _money(card.given.converted_value),
            _money(card.received.converted_value),
            _money(card.given.value_per_month),
            _money(card.received.value_per_month),
            _reciprocity(card),
            "never" if last is None else f"{last}d ago",
            _progress(card.agreement),
            ", ".join(card.flags.names()) or "-",
        )
    out.print(table)
    first = cards[0]
    err.print(
        f"As of {first.as_of:%Y-%m-%d %H:%M} UTC, money in {first.currency}; given: member to "
        "partner; s/a/c: sent, accepted, converted (conversion rate); dormant after "
        f"{first.dormant_days} days without an interaction; pilot-ending within "
        f"{PILOT_ENDING_DAYS} days."
    )


def _counts(flow: Flow) -> str:
    rate = f" ({_percent(flow.conversion_rate)})" if flow.sent else ""
    return f"{flow.sent}/{flow.accepted}/{flow.converted}{rate}"


def _percent(value: Decimal | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _money(value: Decimal) -> str:
    return f"{Decimal(money(value)):,.2f}"


def _reciprocity(card: Scorecard) -> str:
    r = card.reciprocity
    return f"{r.given}:{r.received} ({r.balance:+d})"


def _progress(progress: Progress | None) -> str:
    if progress is None:
        return "-"
    parts = [f"{progress.agreement} ({progress.status})"]
    if progress.target_referrals_per_month is not None:
        parts.append(
            f"{progress.referrals_per_month:.2f}/month of {progress.target_referrals_per_month}"
        )
    if progress.target_conversion_rate is not None:
        parts.append(
            f"{_percent(progress.conversion_rate)} converted of "
            f"{_percent(progress.target_conversion_rate)}"
        )
    if progress.pilot_ends_at is not None and progress.status == "pilot":
        parts.append(f"pilot ends {progress.pilot_ends_at:%Y-%m-%d}")
    return ", ".join(parts)
