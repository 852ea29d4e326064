"""Standings, the period close (preview, confirm, override, what-if), statements and payouts."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from partnerledger.cli.main import cli
from partnerledger.commands import convert_command
from webkit import START, World, browser, build_world, events, record

STANDINGS = "/n/riverside/standings"
STATEMENTS = "/n/riverside/statements"
Q1 = "/n/riverside/periods/2025-Q1"


@pytest.fixture
def world(database_url: str) -> World:
    return build_world(database_url)


def command(type_: str, **fields: Any) -> Any:
    fields.setdefault("occurred_at", START)
    return convert_command({"type": type_, "network": "riverside", "actor": "setup", **fields})


def at(month: int, day: int = 1) -> datetime:
    return datetime(2025, month, day, 12, tzinfo=UTC)


def with_fees(world: World) -> None:
    """Ann's r-1 converts in February under a flat 100 USD referral fee."""
    record(
        world,
        command("plugin.enabled", plugin="fees",
                settings={"default_kind": "referral_fee", "default_fee": "100"}),
        command("referral.accepted", referral="r-1", occurred_at=at(2)),
        command("referral.converted", referral="r-1", deal_value="1000", currency="USD",
                occurred_at=at(2, 10)),
    )  # fmt: skip


def rows_of(html: str) -> dict[str, str]:
    """The standings table's rows by member slug."""
    body = html.split("<tbody>")[1].split("</tbody>")[0]
    found = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        match = re.search(r'<span class="muted">([a-z-]+)', row)
        if match:
            found[match.group(1)] = row
    return found


def error_of(html: str, id_: str) -> str:
    match = re.search(rf'<p class="error" id="e-{re.escape(id_)}" role="alert">(.*?)</p>', html)
    assert match, f"no error e-{id_}"
    return match.group(1)


# ------------------------------------------------------------------ standings


def test_standings_of_the_latest_period_with_a_picker(world: World, tmp_path: Path) -> None:
    may = command(
        "referral.sent", referral="r-2", from_member="bob-tax", to_member="ann-law",
        customer="May lead", occurred_at=at(5, 2),
    )  # fmt: skip
    record(world, may)
    with browser(world, tmp_path, world.coordinator) as web:
        html = web.get(STANDINGS).text
        assert "<h1>Standings · 2025-Q2</h1>" in html
        picker = re.search(r'<select id="f-period".*?</select>', html, re.S)
        assert picker
        assert re.findall(r'<option value="([^"]+)"', picker.group(0)) == ["2025-Q2", "2025-Q1"]
        assert '<span class="badge grey">provisional</span>' in html
        rows = rows_of(html)
        assert set(rows) == {"ann-law", "bob-tax"}
        assert '<td class="num">1</td>' in rows["bob-tax"]
        assert "referrals_given: 1" in rows["bob-tax"] and "bronze" in rows["bob-tax"]
        assert "provisional" in rows["bob-tax"]
        html = web.get(f"{STANDINGS}?period=2025-Q1").text
        assert "<h1>Standings · 2025-Q1</h1>" in html
        assert '<td class="num">1</td>' in rows_of(html)["ann-law"]
        # A date names the period it falls in.
        assert "<h1>Standings · 2025-Q1</h1>" in web.get(f"{STANDINGS}?period=2025-02-14").text
        response = web.get(f"{STANDINGS}?period=2025-13")
        assert response.status_code == 422
        assert "periods are quarters" in error_of(response.text, "period")
        # The coordinator is offered the close of an ended period.
        assert f'href="{Q1}/close"' in html


def test_members_see_their_own_standing_and_outsiders_nothing(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.member) as web:
        html = web.get(STANDINGS).text
        assert set(rows_of(html)) == {"ann-law"}
        assert "Period close" not in html and "/close" not in html
    with browser(world, tmp_path, world.auditor) as web:
        html = web.get(STANDINGS).text
        assert set(rows_of(html)) == {"ann-law", "bob-tax"}
        assert "Period close" not in html
    with browser(world, tmp_path, world.outsider) as web:
        assert web.get(STANDINGS).status_code == 404
        assert web.get(f"{Q1}/close").status_code == 404
        assert web.post(f"{Q1}/close").status_code == 404
        assert web.post(f"{Q1}/override", {"member": "ann-law", "reason": "x"}).status_code == 404
        assert web.get(f"{Q1}/what-if").status_code == 404


# ---------------------------------------------------------------- the close


def test_preview_writes_nothing_and_confirm_records_the_close(world: World, tmp_path: Path) -> None:
    count = len(events(world))
    with browser(world, tmp_path, world.coordinator) as web:
        response = web.get(f"{Q1}/close")
        assert response.status_code == 200
        html = response.text
        assert "Preview: closing 2025-Q1 would record 2 tier decisions and 0 statements" in html
        assert f'<form method="post" action="{Q1}/close">' in html
        decisions = html.split("<caption>Tier decisions</caption>")[1].split("</table>")[0]
        assert "ann-law" in decisions and "bob-tax" in decisions and "bronze" in decisions
        assert "points 1.0.0; threshold-tiers 1.0.0" in decisions
        assert len(events(world)) == count
        response = web.post(f"{Q1}/close", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == f"{STANDINGS}?period=2025-Q1"
        html = web.get(response.headers["location"]).text
        assert '<span class="badge green">closed</span>' in html
        assert all("closed" in row for row in rows_of(html).values())
        assert f'href="{Q1}/what-if"' in html and "Override a tier" in html
        assert "(closed)</option>" in html
    assert [e.type for e in events(world)[count:]] == [
        "period.closed", "tier.decided", "tier.decided",
    ]  # fmt: skip
    assert events(world, "period.closed")[0].actor == world.coordinator


def test_a_close_that_cannot_be_made_is_explained_and_writes_nothing(
    world: World, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    current = f"{now.year}-Q{(now.month - 1) // 3 + 1}"
    with browser(world, tmp_path, world.coordinator) as web:
        count = len(events(world))
        for method in (web.get, web.post):
            response = method(f"/n/riverside/periods/{current}/close")
            assert response.status_code == 422
            assert f"{current} cannot be closed; nothing was written." in response.text
            assert "has not ended yet" in response.text
        response = web.get("/n/riverside/periods/2025-13/close")
        assert response.status_code == 422 and "periods are quarters" in response.text
        assert len(events(world)) == count
        # Periods close in order: once Q2 is closed, Q1 cannot be.
        assert web.post("/n/riverside/periods/2025-Q2/close").status_code == 200
        count = len(events(world))
        response = web.post(f"{Q1}/close")
        assert response.status_code == 422
        assert "periods close in order" in response.text
        assert "Confirm" not in response.text
        response = web.get("/n/riverside/periods/2025-Q2/close")
        assert response.status_code == 409
        assert "period 2025-Q2 is already closed" in response.text
        assert web.post("/n/riverside/periods/2025-Q2/close").status_code == 409
        assert len(events(world)) == count


def test_only_the_coordinator_closes_and_overrides(world: World, tmp_path: Path) -> None:
    count = len(events(world))
    for email in (world.member, world.auditor):
        with browser(world, tmp_path, email) as web:
            assert web.get(f"{Q1}/close").status_code == 403
            assert web.post(f"{Q1}/close").status_code == 403
            response = web.post(
                f"{Q1}/override", {"member": "ann-law", "tier": "silver", "reason": "x"}
            )
            assert response.status_code == 403
    assert len(events(world)) == count


def test_override_a_tier_with_a_reason(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.coordinator) as web:
        web.post(f"{Q1}/close")
        count = len(events(world))
        cases = [
            ({"member": "ann-law", "tier": "silver", "reason": ""}, "reason"),
            ({"member": "ann-law", "tier": "gold", "reason": "x"}, "tier"),
            ({"member": "ann-law", "tier": "bronze", "reason": "x"}, "tier"),
            ({"member": "", "tier": "silver", "reason": "x"}, "member"),
        ]
        for form, field in cases:
            response = web.post(f"{Q1}/override", form)
            assert response.status_code == 422, field
            assert error_of(response.text, field), field
        # An open period has no decided tiers to override.
        response = web.post(
            "/n/riverside/periods/2025-Q2/override",
            {"member": "ann-law", "tier": "silver", "reason": "x"},
        )
        assert response.status_code == 422
        assert "Nothing was overridden: period: period 2025-Q2 is not closed" in response.text
        assert len(events(world)) == count
        response = web.post(
            f"{Q1}/override", {"member": "ann-law", "tier": "silver", "reason": "chaired events"},
            follow_redirects=False,
        )  # fmt: skip
        assert response.status_code == 303
        row = rows_of(web.get(response.headers["location"]).text)["ann-law"]
        assert "silver" in row and "(decided: bronze)" in row and "chaired events" in row
    (event,) = events(world, "tier.overridden")
    assert (event.command.member, event.command.tier, event.command.reason) == (
        "ann-law", "silver", "chaired events",
    )  # fmt: skip


def test_what_if_compares_the_record_with_todays_rules(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.coordinator) as web:
        web.post(f"{Q1}/close")
        html = web.get(f"{Q1}/what-if").text
        assert "0 of 2 members would be decided differently today" in html
        response = web.get("/n/riverside/periods/2025-Q2/what-if")
        assert response.status_code == 422 and "is not closed" in response.text
    record(world, command("plugin.configured", plugin="points",
                          settings={"referral_given": "25"}))  # fmt: skip
    count = len(events(world))
    with browser(world, tmp_path, world.auditor) as web:
        html = web.get(f"{Q1}/what-if").text
        assert "1 of 2 members would be decided differently today" in html
        changed = re.findall(r'<tr class="changed">(.*?)</tr>', html, re.S)
        assert len(changed) == 1
        assert "ann-law" in changed[0] and "<strong>changed</strong>" in changed[0]
        assert "bronze" in changed[0] and "silver" in changed[0] and ">25<" in changed[0]
        # The record stands.
        assert "bronze" in rows_of(web.get(f"{STANDINGS}?period=2025-Q1").text)["ann-law"]
    with browser(world, tmp_path, world.member) as web:
        assert web.get(f"{Q1}/what-if").status_code == 403
    assert len(events(world)) == count


# ---------------------------------------------------------------- statements


def test_statements_show_opening_entries_and_closing(world: World, tmp_path: Path) -> None:
    with_fees(world)
    with browser(world, tmp_path, world.coordinator) as web:
        html = web.get(STATEMENTS).text
        balances = html.split("<tbody>")[1].split("</tbody>")[0]
        assert re.search(r'Ann Law</a></th><td class="num">100\.00 USD</td>', balances)
        assert re.search(r'Bob Tax</a></th><td class="num">0\.00 USD</td>', balances)
        html = web.get(f"{STATEMENTS}?member=ann-law&period=2025-Q1").text
        assert "Ann Law · 2025-Q1" in html and '<span class="badge grey">open</span>' in html
        table = html.split("<tbody>")[1].split("</tbody>")[0]
        assert re.search(
            r'Opening balance</th><td class="num"></td><td class="num">0\.00 USD', table
        )
        assert re.search(
            r"<td>2025-02-10 12:00</td>\s*<td>referral fee</td>\s*"
            r'<td class="num">100\.00 USD</td>\s*<td class="num">100\.00 USD</td>', table,
        )  # fmt: skip
        assert "<strong>100.00 USD</strong>" in table
        assert 'href="/n/riverside/statements.csv?member=ann-law&amp;period=2025-Q1"' in html
        # After the close the statement is the recorded one.
        web.post(f"{Q1}/close")
        html = web.get(f"{STATEMENTS}?member=ann-law&period=2025-Q1").text
        assert '<span class="badge green">closed</span>' in html
        assert web.get(f"{STATEMENTS}?member=zed").status_code == 404
        response = web.get(f"{STATEMENTS}?member=ann-law&period=someday")
        assert response.status_code == 422 and error_of(response.text, "period")


def test_the_csv_is_the_cli_statement(world: World, tmp_path: Path) -> None:
    with_fees(world)
    record(world, command("payout.recorded", member="ann-law", payout="p-1", amount="30",
                          currency="USD", reference="INV-7", occurred_at=at(3)))  # fmt: skip
    with browser(world, tmp_path, world.auditor) as web:
        response = web.get("/n/riverside/statements.csv?member=ann-law&period=2025-Q1")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert response.headers["content-disposition"] == (
            'attachment; filename="statement-riverside-ann-law-2025-Q1.csv"'
        )
        body = response.text
        assert web.get("/n/riverside/statements.csv").status_code == 422
        assert web.get("/n/riverside/statements.csv?member=zed&period=2025-Q1").status_code == 404
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [(r["kind"], r["amount"], r["currency"], r["note"], r["balance"]) for r in rows] == [
        ("opening", "", "USD", "", "0.00"),
        ("referral_fee", "100.00", "USD", "referral fee 100.00 under the fees plugin's defaults",
         "100.00"),
        ("payout", "-30.00", "USD", "INV-7", "70.00"),
        ("closing", "", "USD", "", "70.00"),
    ]  # fmt: skip
    result = CliRunner().invoke(
        cli, ["--database", world.database_url, "statement", "--network", "riverside",
              "--member", "ann-law", "--period", "2025-Q1", "--csv"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert body == result.stdout


def test_a_member_sees_only_their_own_statement(world: World, tmp_path: Path) -> None:
    with_fees(world)
    with browser(world, tmp_path, world.member) as web:
        html = web.get(f"{STATEMENTS}?period=2025-Q1").text
        assert "Ann Law · 2025-Q1" in html and "100.00 USD" in html
        assert 'id="f-member"' not in html and "Record a payout" not in html
        assert web.get(f"{STATEMENTS}?member=bob-tax").status_code == 403
        assert web.get("/n/riverside/statements.csv?member=bob-tax").status_code == 403
        response = web.get("/n/riverside/statements.csv?period=2025-Q1")
        assert response.status_code == 200 and "referral_fee,100.00" in response.text
        assert (
            web.post("/n/riverside/payouts", {"member": "ann-law", "amount": "1"}).status_code
            == 403
        )
    with browser(world, tmp_path, world.other_member) as web:
        html = web.get(f"{STATEMENTS}?period=2025-Q1").text
        assert "Bob Tax · 2025-Q1" in html and "No entries in this period." in html
    with browser(world, tmp_path, world.outsider) as web:
        assert web.get(STATEMENTS).status_code == 404
        assert web.get("/n/riverside/statements.csv?member=ann-law").status_code == 404
        assert (
            web.post("/n/riverside/payouts", {"member": "ann-law", "amount": "1"}).status_code
            == 404
        )
    assert events(world, "payout.recorded") == []


def test_a_coordinator_records_a_payout(world: World, tmp_path: Path) -> None:
    with_fees(world)
    with browser(world, tmp_path, world.auditor) as web:
        response = web.post("/n/riverside/payouts", {"member": "ann-law", "amount": "40"})
        assert response.status_code == 403
    with browser(world, tmp_path, world.coordinator) as web:
        cases = [
            ({"member": "ann-law", "amount": "abc"}, "payout-amount"),
            ({"member": "ann-law", "amount": "-4"}, "payout-amount"),
            ({"member": "ann-law", "amount": "40", "currency": "EUR"}, "payout-currency"),
            ({"member": "", "amount": "40"}, "payout-member"),
            ({"member": "zed", "amount": "40"}, "payout-member"),
        ]
        for form, field in cases:
            response = web.post("/n/riverside/payouts", form)
            assert response.status_code == 422, field
            assert error_of(response.text, field), field
        assert events(world, "payout.recorded") == []
        response = web.post(
            "/n/riverside/payouts",
            {"member": "ann-law", "amount": "40", "payout": "p-9", "reference": "INV-9"},
            follow_redirects=False,
        )
        assert response.status_code == 303
        assert response.headers["location"] == f"{STATEMENTS}?member=ann-law"
        html = web.get(response.headers["location"]).text
        # The payout lands in today's period, after what was earned before.
        assert "INV-9" in html and "-40.00 USD" in html
        assert re.search(
            r'Opening balance</th><td class="num"></td><td class="num">100\.00 USD', html
        )
        assert "<strong>60.00 USD</strong>" in html
        response = web.post("/n/riverside/payouts", {"member": "ann-law", "amount": "1",
                                                     "payout": "p-9"})  # fmt: skip
        assert response.status_code == 422
        assert "already recorded" in error_of(response.text, "payout-payout")
    (event,) = events(world, "payout.recorded")
    assert (event.command.member, event.command.amount, event.command.currency) == (
        "ann-law", Decimal(40), "USD",
    )  # fmt: skip
    assert (event.command.reference, event.actor) == ("INV-9", world.coordinator)
