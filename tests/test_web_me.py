"""A member's own pages: standing (and what the next colour and tier take), partners, statements,
inbox; only for the member's own business, on both databases."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from browser_support import chromium, need_chromium, serve
from partnerledger import Database, Ledger, Store
from partnerledger.commands import convert_command
from partnerledger.delivery import Deliveries
from partnerledger.projection import Projector
from webkit import PASSWORD, World, browser, build_world

NET = "riverside"
ME = f"/n/{NET}/me"
#: The Tuesday of the first weekly meeting (the world's network started the day before).
FIRST = datetime(2025, 1, 7, 8, tzinfo=UTC)


@pytest.fixture
def world(database_url: str) -> World:
    return build_world(database_url)


def record(world: World, *commands: Any) -> None:
    """Record commands on the world's store and bring the views up to date (PostgreSQL too)."""
    with Store(Database.parse(world.database_url)) as store:
        if commands:
            Ledger(store).execute(*commands)
        with Projector(store) as projector:
            projector.catch_up()


def at(when: datetime, type_: str, **fields: Any) -> Any:
    """A riverside command at a business time."""
    record = {"type": type_, "network": NET, "actor": "setup", "occurred_at": when}
    return convert_command({**record, **fields})


def text(fragment: str) -> str:
    """The visible text of some HTML, whitespace collapsed."""
    words = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())
    return re.sub(r"\( ", "(", re.sub(r" ([.,;:)])", r"\1", words))


def row(page: str, heading: str) -> list[str]:
    """The cells' text of the first table row whose text contains ``heading``."""
    for found in re.findall(r"<tr[^>]*>(.*?)</tr>", page, flags=re.S):
        if heading in text(found):
            return [text(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", found, re.S)]
    raise AssertionError(f"no row with {heading!r}")


def chapter(world: World) -> None:
    """Traffic lights on riverside and twenty weekly meetings of ann-law's activity.

    In 2025-Q2 (window 2025-01-01 to 2025-07-01, 20 meetings) ann-law has 1
    absence → 10, 16 referrals (0.8 a week) → 10, 1,200 USD of thanks → 5,
    2 visitors (0.1) → 5, 1 testimonial (0.05) → 5, never late → 5, 1
    training → 5: 45, red, silver on the ladder bronze 0 / silver 40 / gold 60.
    In 2025-Q1 (12 meetings): absences 10, 13 referrals (1.083) → 15, thanks
    5, 1 visitor (0.083) → 5, no testimonial 0, on time 5, no training 0: 40.
    """
    commands = [
        at(FIRST, "plugin.disabled", plugin="points"),
        at(FIRST, "plugin.enabled", plugin="traffic-lights"),
        at(FIRST, "network.tiers_set", tiers=[
            {"name": "bronze", "threshold": "0"}, {"name": "silver", "threshold": "40"},
            {"name": "gold", "threshold": "60"}]),
    ]  # fmt: skip
    for week in range(20):
        when = FIRST + timedelta(weeks=week)
        status = "absent" if week == 5 else "present"
        commands.append(at(when, "meeting.attended", meeting=f"m{week}", member="ann-law",
                           status=status))  # fmt: skip
        commands.append(at(when, "meeting.attended", meeting=f"m{week}", member="bob-tax",
                           status="present"))  # fmt: skip
    for n in range(15):
        commands.append(at(FIRST + timedelta(weeks=n, hours=1), "referral.sent",
                           referral=f"t-{n}", from_member="ann-law", to_member="bob-tax",
                           customer=f"Customer {n}"))  # fmt: skip
    commands += [
        at(FIRST + timedelta(weeks=8), "tyfcb.reported", member="bob-tax",
           thanked_member="ann-law", amount="1200.00", currency="USD"),
        at(FIRST + timedelta(weeks=1, hours=3), "visitor.brought", member="ann-law",
           visitor="Vera"),
        at(FIRST + timedelta(weeks=13, hours=3), "visitor.brought", member="ann-law",
           visitor="Vic"),
        at(FIRST + timedelta(weeks=15, hours=4), "testimonial.given", member="ann-law",
           about_member="bob-tax"),
        at(FIRST + timedelta(weeks=16, hours=5), "training.completed", member="ann-law",
           training="Referral skills"),
    ]  # fmt: skip
    record(world, *commands)


# ------------------------------------------------------------------ standing


def test_traffic_lights_standing_sections_and_what_the_next_colour_and_tier_take(
    world: World, tmp_path: Path
) -> None:
    chapter(world)
    with browser(world, tmp_path, world.member) as web:
        page = web.get(ME).text
        assert "Standing in 2025-Q2" in text(page)
        kpis = text(page[page.index('class="kpis"') : page.index("What it takes next")])
        assert "Score 45" in kpis
        assert "Colour red" in kpis
        assert "Tier silver" in kpis
        nxt = text(page[page.index("What it takes next") : page.index("Score by section")])
        assert "Next colour: amber from 50 points: 5 more points." in nxt
        assert "Next tier: gold from 60 points: 15 more points." in nxt
        assert "score 45 reaches silver (40)" in nxt
        # The seven sections: points, most, what was measured, what earns the next band.
        assert row(page, "Attendance (absences)")[1:4] == ["10", "15", "1 absent in 20 meetings"]
        assert "15 points with no absence in the window" in row(page, "Attendance (absences)")[4]
        assert row(page, "Referrals given") == [
            "Referrals given", "10", "20", "16 in 20 meetings (0.8 a week)",
            "4 more referrals in this window (20 meetings) would earn 15 points",
        ]  # fmt: skip
        assert row(page, "Thank-yous")[1:] == [
            "5", "15", "1,200.00 USD", "1,300.00 USD more in this window would earn 10 points",
        ]  # fmt: skip
        assert row(page, "Visitors brought")[1:] == [
            "5", "20", "2 in 20 meetings (0.1 a week)",
            "2 more visitors in this window (20 meetings) would earn 10 points",
        ]  # fmt: skip
        assert row(page, "Testimonials given")[1:] == [
            "5", "10", "1 in 20 meetings (0.05 a week)",
            "1 more testimonial in this window (20 meetings) would earn 10 points",
        ]  # fmt: skip
        assert row(page, "On time")[1:] == ["5", "5", "late 0 times", "top band"]
        assert row(page, "Trainings")[1:] == [
            "5", "15", "1 completed", "1 more training in this window would earn 10 points",
        ]  # fmt: skip
        assert row(page, "Total")[:2] == ["Total", "45"]
        # History: a table and the chart's data, oldest first in the data.
        assert row(page, "2025-Q1") == ["2025-Q1", "40", "red", "silver", "provisional"]
        assert row(page, "2025-Q2") == ["2025-Q2", "45", "red", "silver", "provisional"]
        data = re.search(r'id="me-history-data">(.*?)</script>', page, re.S)
        assert data is not None
        chart = json.loads(data.group(1))
        assert [(h["period"], h["total"], h["label"]) for h in chart["history"]] == [
            ("2025-Q1", 40.0, "red"), ("2025-Q2", 45.0, "red"),
        ]  # fmt: skip
        assert [r["threshold"] for r in chart["rungs"]] == [0.0, 40.0, 60.0]
        assert '<script src="/static/me.js" defer></script>' in page
        assert web.get("/static/me.js").status_code == 200
        # An earlier period by name: 13 referrals in 12 meetings, 2 more earn the top band.
        q1 = web.get(f"{ME}?period=2025-Q1").text
        assert "Standing in 2025-Q1" in text(q1)
        assert row(q1, "Referrals given")[1:] == [
            "15", "20", "13 in 12 meetings (1.083 a week)",
            "2 more referrals in this window (12 meetings) would earn 20 points",
        ]  # fmt: skip
        assert "Next colour: amber from 50 points: 10 more points." in text(q1)
        assert "Next tier: gold from 60 points: 20 more points." in text(q1)
        # A bad period is refused next to the field; a period with no standing says so.
        bad = web.get(f"{ME}?period=2025-Q7")
        assert bad.status_code == 422
        assert 'id="e-period"' in bad.text and "is not a period of this network" in bad.text
        assert "You have no standing in 2024-Q1" in text(web.get(f"{ME}?period=2024-Q1").text)

    # Doing what the page said: 4 more referrals in the window earn the referrals' next band,
    # which closes the 5 points to amber exactly.
    record(world, *(
        at(FIRST + timedelta(weeks=16 + n, hours=2), "referral.sent", referral=f"u-{n}",
           from_member="ann-law", to_member="bob-tax", customer=f"Later {n}")
        for n in range(4)
    ))  # fmt: skip
    with browser(world, tmp_path, world.member) as web:
        page = web.get(ME).text
        assert row(page, "Referrals given")[1] == "15"
        assert "Score 50" in text(page) and "Colour amber" in text(page)
        assert "Next colour: green from 70 points: 20 more points." in text(page)
        assert "Next tier: gold from 60 points: 10 more points." in text(page)


def test_a_tier_kept_for_a_grace_period_says_what_earns_it_back(
    world: World, tmp_path: Path
) -> None:
    chapter(world)
    july = datetime(2025, 7, 8, 8, tzinfo=UTC)
    record(
        world,
        at(july, "network.tiers_set", tiers=[
            {"name": "bronze", "threshold": "0"}, {"name": "silver", "threshold": "40"},
            {"name": "gold", "threshold": "45"}]),
        at(july, "plugin.configured", plugin="threshold-tiers", settings={"grace_periods": 1}),
        at(july, "meeting.attended", meeting="m20", member="ann-law", status="present"),
    )  # fmt: skip
    # 2025-Q3 scores April to September: 9 meetings, no absence 15, 3 referrals 0, no thanks
    # 0, 1 visitor 5, 1 testimonial 10, on time 5, 1 training 5: 40, below gold (45), which
    # ann-law earned in 2025-Q2 and keeps for one period.
    with browser(world, tmp_path, world.member) as web:
        page = text(web.get(ME).text)
        assert "Standing in 2025-Q3" in page
        assert "Score 40" in page and "Tier gold" in page
        assert "Your score is below gold (from 45 points): 5 more points earn it" in page
        assert "gold is the top tier." in page
        assert "kept for a grace period (1 period left)" in page
        assert "Next colour: amber from 50 points: 10 more points." in page


def test_the_page_is_the_members_own_whatever_the_url_says(world: World, tmp_path: Path) -> None:
    chapter(world)
    with browser(world, tmp_path, world.other_member) as web:
        page = web.get(f"{ME}?member=ann-law").text
        assert "Bob Tax" in page and "Ann Law" not in page
        # bob-tax was present at all 20 meetings, gave no referral, brought nobody.
        assert row(page, "Attendance (absences)")[1] == "15"
        assert row(page, "Referrals given")[1:4] == ["0", "20", "0 in 20 meetings (0 a week)"]
        assert row(page, "Referrals given")[4] == (
            "10 more referrals in this window (20 meetings) would earn 5 points"
        )
        # 15 (no absence) + 5 (on time): 20, grey, bronze.
        assert "Score 20" in text(page) and "Colour grey" in text(page)
        assert "Next colour: red from 30 points: 10 more points." in text(page)
        assert "Next tier: silver from 40 points: 20 more points." in text(page)


def test_points_network_shows_the_gap_to_the_next_tier(world: World, tmp_path: Path) -> None:
    record(world)
    with browser(world, tmp_path, world.member) as web:
        page = web.get(ME).text
        assert "Standing in 2025-Q1" in text(page)
        assert "Score 1" in text(page) and "Tier bronze" in text(page)
        kpis = text(page[page.index('class="kpis"') : page.index("What it takes next")])
        assert "Colour" not in kpis  # the points plugin gives no colour
        assert "Next tier: silver from 20 points: 19 more points." in text(page)
        assert row(page, "Referrals given")[1:] == [
            "1", "—", "1", "each referral given adds 1 point",
        ]  # fmt: skip
        assert row(page, "Conversions of your referrals")[4] == "each conversion adds 5 points"
        assert "referral pipeline" in page and f'href="/n/{NET}/referrals"' in page


# ------------------------------------------------------------------ partners


def test_partners_scorecards_both_ways_with_agreement_progress_and_flags(
    world: World, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    signed = now - timedelta(days=70)  # two whole months ago, whatever today is
    record(
        world,
        at(FIRST, "member.joined", member="cy-shop", name="Cy Shop", category="florist"),
        at(FIRST + timedelta(days=1), "referral.sent", referral="c-1", from_member="ann-law",
           to_member="cy-shop", customer="Old Lead"),
        at(datetime(2025, 1, 20, tzinfo=UTC), "referral.accepted", referral="r-1"),
        at(datetime(2025, 2, 1, tzinfo=UTC), "referral.converted", referral="r-1",
           deal_value="10000", currency="USD"),
        at(datetime(2025, 2, 3, tzinfo=UTC), "referral.sent", referral="b-1",
           from_member="bob-tax", to_member="ann-law", customer="Erin"),
        at(datetime(2025, 2, 4, tzinfo=UTC), "referral.accepted", referral="b-1"),
        at(datetime(2025, 3, 1, tzinfo=UTC), "referral.converted", referral="b-1",
           deal_value="4000", currency="USD"),
        at(signed, "agreement.proposed", agreement="a-1", kind="referral",
           parties=["ann-law", "bob-tax"], pilot={"days": 80},
           terms={"scope": "tax and legal referrals",
                  "targets": {"referrals_per_month": 2, "conversion_rate": "0.5"}}),
        at(signed, "agreement.accepted", agreement="a-1", party="ann-law"),
        at(signed, "agreement.accepted", agreement="a-1", party="bob-tax"),
        at(now - timedelta(days=3), "referral.sent", referral="b-2", from_member="bob-tax",
           to_member="ann-law", customer="Fay"),
    )  # fmt: skip
    with browser(world, tmp_path, world.member) as web:
        page = web.get(f"{ME}/partners").text
        assert row(page, "Bob Tax") == [
            "Bob Tax bob-tax", "1", "1 (100.0 %)", "10,000.00 USD",
            "2", "1 (50.0 %)", "4,000.00 USD",
            "gave 1, got 2 (-1; ratio 0.5); value +6,000.00 USD",
            "3", "pilot-ending below-target",
        ]  # fmt: skip
        assert row(page, "Cy Shop") == [
            "Cy Shop cy-shop", "1", "0 (0.0 %)", "0.00 USD", "0", "0 (—)", "0.00 USD",
            "gave 1, got 0 (+1); value 0.00 USD",
            str((now - (FIRST + timedelta(days=1))).days), "one-sided dormant",
        ]  # fmt: skip
        # Only b-2 was exchanged since the agreement took effect: 1 in 2 months, none converted.
        progress = row(page, "a-1")
        assert progress[0] == "Bob Tax"
        assert progress[1].startswith("a-1 referral, pilot, pilot ends ")
        assert progress[2:] == [
            f"{signed:%Y-%m-%d} (2 months)", "1 (0 converted)", "0.5", "2", "0.0 %", "50.0 %",
            "below referral target below conversion target",
        ]  # fmt: skip
    # bob-tax sees the same pair from his side.
    with browser(world, tmp_path, world.other_member) as web:
        page = web.get(f"{ME}/partners").text
        assert row(page, "Ann Law")[1:8] == [
            "2", "1 (50.0 %)", "4,000.00 USD", "1", "1 (100.0 %)", "10,000.00 USD",
            "gave 2, got 1 (+1; ratio 2); value -6,000.00 USD",
        ]  # fmt: skip
        assert "Cy Shop" not in page


def test_partners_page_without_any_history(world: World, tmp_path: Path) -> None:
    record(world, at(FIRST, "member.joined", member="cy-shop", name="Cy Shop", category="x"))
    with Store(Database.parse(world.database_url)) as store:
        assert store.last_position() > 0
    # cy-shop has no account: give one to see the empty page.
    from partnerledger.accounts import Accounts

    with Accounts(Database.parse(world.database_url)) as accounts:
        user = accounts.create_user("cy@riverside.example", "Cy", "correct horse battery")
        accounts.grant(user.id, NET, "member", "cy-shop")
    with browser(world, tmp_path, "cy@riverside.example") as web:
        page = web.get(f"{ME}/partners")
        assert page.status_code == 200
        assert "No partners yet" in page.text


# ---------------------------------------------------------------- statements


def test_statements_per_period_with_opening_and_closing_balances(
    world: World, tmp_path: Path
) -> None:
    record(
        world,
        at(FIRST, "plugin.enabled", plugin="fees",
           settings={"default_kind": "referral_fee", "default_fee": "50"}),
        at(datetime(2025, 1, 20, tzinfo=UTC), "referral.accepted", referral="r-1"),
        at(datetime(2025, 2, 1, tzinfo=UTC), "referral.converted", referral="r-1",
           deal_value="10000", currency="USD"),
        at(datetime(2025, 4, 10, tzinfo=UTC), "referral.reversed", referral="r-1",
           amount="5000", reason="half refunded"),
    )  # fmt: skip
    with browser(world, tmp_path, world.member) as web:
        # The latest period with an entry is shown first.
        page = web.get(f"{ME}/statements").text
        assert "Statement for 2025-Q2" in text(page)
        assert row(page, "Opening balance") == ["Opening balance", "50.00 USD"]
        clawback = row(page, "clawback")
        assert clawback[0] == "2025-04-10" and clawback[-1] == "-25.00 USD"
        assert row(page, "Closing balance") == ["Closing balance", "25.00 USD"]
        assert f'href="/n/{NET}/statements.csv?member=ann-law&amp;period=2025-Q2"' in page
        assert '<option value="2025-Q2" selected>2025-Q2 (1 entry)</option>' in page
        assert '<option value="2025-Q1">2025-Q1 (1 entry)</option>' in page
        page = web.get(f"{ME}/statements?period=2025-Q1").text
        assert row(page, "Opening balance")[-1] == "0.00 USD"
        fee = row(page, "referral fee")
        assert fee[0] == "2025-02-01" and fee[-1] == "50.00 USD"
        assert row(page, "Closing balance")[-1] == "50.00 USD"
        # A date names its period; a bad period is refused next to the field.
        assert "Statement for 2025-Q1" in text(web.get(f"{ME}/statements?period=2025-03-31").text)
        bad = web.get(f"{ME}/statements?period=someday")
        assert bad.status_code == 422
        assert 'id="e-period"' in bad.text and "Statement for" not in bad.text
        # ?member= names nobody else: the page is always the signed-in member's.
        assert "Statement for 2025-Q2" in text(web.get(f"{ME}/statements?member=bob-tax").text)
    with browser(world, tmp_path, world.other_member) as web:
        page = web.get(f"{ME}/statements?period=2025-Q1").text
        assert "No entries in this period." in page
        assert row(page, "Closing balance")[-1] == "0.00 USD"
        assert "member=bob-tax" in page


# --------------------------------------------------------------------- inbox


def deliver(world: World) -> None:
    """What ``partnerledger deliver`` does: queue the plugins' messages and deliver them."""
    database = Database.parse(world.database_url)
    with Store(database) as store, Deliveries(database) as deliveries:
        deliveries.collect(Ledger(store))
        report = deliveries.deliver()
        assert report.failed == 0 and report.retrying == 0


def test_inbox_lists_the_members_messages_and_marks_them_read(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.member) as web:
        empty = web.get(f"{ME}/inbox").text
        assert "Your inbox is empty." in empty and "partnerledger deliver" in empty
    record(
        world,
        at(FIRST, "plugin.enabled", plugin="notifications"),
        at(datetime(2025, 1, 20, tzinfo=UTC), "referral.accepted", referral="r-1"),
        at(datetime(2025, 2, 1, tzinfo=UTC), "referral.converted", referral="r-1",
           deal_value="10000", currency="USD"),
        at(datetime(2025, 2, 3, tzinfo=UTC), "referral.sent", referral="b-1",
           from_member="ann-law", to_member="bob-tax", customer="Gus"),
    )  # fmt: skip
    deliver(world)
    database = Database.parse(world.database_url)
    with Deliveries(database) as deliveries:
        mine = deliveries.inbox(NET, "ann-law")
        theirs = deliveries.inbox(NET, "bob-tax")
    assert len(mine) == 2 and len(theirs) == 1
    with browser(world, tmp_path, world.member) as web:
        page = web.get(f"{ME}/inbox").text
        assert "2 unread of 2 messages." in text(page)
        for message in mine:
            assert html.escape(message.subject) in page
            assert f'action="/n/{NET}/me/inbox/{message.id}/read"' in page
        assert "Gus" not in page  # bob-tax's message
        assert "2 unread messages" in text(web.get(ME).text)
        # Mark one read.
        response = web.post(f"{ME}/inbox/{mine[0].id}/read", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == f"{ME}/inbox"
        page = web.get(f"{ME}/inbox").text
        assert "1 unread of 2 messages." in text(page)
        assert f'action="/n/{NET}/me/inbox/{mine[0].id}/read"' not in page
        # Another member's message is not found, and stays unread.
        assert web.post(f"{ME}/inbox/{theirs[0].id}/read").status_code == 404
        assert web.post(f"{ME}/inbox/999999/read").status_code == 404
        # Without the CSRF token nothing happens.
        assert web.client.post(f"{ME}/inbox/{mine[1].id}/read").status_code == 403
    with Deliveries(database) as deliveries:
        assert [m.read_at is not None for m in deliveries.inbox(NET, "ann-law")] == [True, False]
        assert deliveries.inbox(NET, "bob-tax")[0].read_at is None


# --------------------------------------------------------------------- roles


PAGES = (ME, f"{ME}/partners", f"{ME}/statements", f"{ME}/inbox")


@pytest.mark.parametrize("who", ["coordinator", "auditor"])
def test_coordinators_and_auditors_have_no_member_pages(
    world: World, tmp_path: Path, who: str
) -> None:
    record(world, at(FIRST, "plugin.enabled", plugin="notifications"))
    deliver(world)
    with browser(world, tmp_path, getattr(world, who)) as web:
        for path in PAGES:
            assert web.get(path).status_code == 403, path
        assert web.post(f"{ME}/inbox/1/read").status_code == 403
        assert "My business" not in web.get(f"/n/{NET}/").text


def test_outsiders_do_not_see_the_network(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.outsider) as web:
        for path in PAGES:
            response = web.get(path)
            assert response.status_code == 404, path
            assert "ann-law" not in response.text
        assert web.post(f"{ME}/inbox/1/read").status_code == 404
    with browser(world, tmp_path) as web:  # not signed in
        assert web.get(ME, follow_redirects=False).headers["location"] == f"/login?next={ME}"


def test_members_see_the_link_in_the_navigation(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.member) as web:
        page = web.get(f"{ME}/inbox").text
        assert f'<a href="{ME}" aria-current="page">My business</a>' in page


# ------------------------------------------------------------ in a browser


def test_in_a_browser_the_chart_draws_and_the_inbox_works_by_keyboard(tmp_path: Path) -> None:
    need_chromium()
    world = build_world(str(tmp_path / "ledger.db"))
    chapter(world)
    record(
        world,
        at(FIRST, "plugin.enabled", plugin="notifications"),
        at(datetime(2025, 6, 2, tzinfo=UTC), "referral.sent", referral="b-9",
           from_member="bob-tax", to_member="ann-law", customer="Hal"),
    )  # fmt: skip
    deliver(world)
    with serve(world.database_url, tmp_path / "sessions") as url, chromium() as opened:
        page = opened.new_page(viewport={"width": 380, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{url}/login")
        page.get_by_label("Email").fill(world.member)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{url}/n/{NET}/**")
        page.goto(f"{url}{ME}")
        page.wait_for_load_state("networkidle")
        drawn = page.evaluate(
            "() => { const c = Chart.getChart(document.getElementById('me-history-chart'));"
            " return c ? c.data.datasets[0].data : null; }"
        )
        assert drawn == [40, 45]
        # The page fits a phone: only the wide tables scroll, inside their wrappers.
        assert page.evaluate("document.documentElement.scrollWidth") <= 380
        page.goto(f"{url}{ME}/inbox")
        button = page.get_by_role("button", name="Mark read: New referral b-9 from Bob Tax")
        button.focus()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.get_by_text("0 unread of 1 message.").is_visible()
        assert errors == []
