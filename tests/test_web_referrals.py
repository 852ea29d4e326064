"""The referral pipeline page: columns, htmx transitions, sending, thanks, roles and errors."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from partnerledger import Database, Ledger, Store
from partnerledger.commands import encode_command
from partnerledger.demo import generate
from partnerledger.jsonl import import_lines
from partnerledger.privacy import Sealed, Vault
from partnerledger.projection import Projector
from partnerledger.views import pipeline as view
from partnerledger.web.referrals import COLUMN_LIMIT
from webkit import World, browser, build_world, command, events, record

PIPELINE = "/n/riverside/referrals"


@pytest.fixture
def world(database_url: str) -> World:
    return build_world(database_url)


def column(html: str, status: str) -> str:
    """The HTML of one column of the pipeline."""
    match = re.search(
        rf'<section class="column" aria-labelledby="col-{status}">(.*?)</section>', html, re.S
    )
    assert match, f"no {status} column"
    return match.group(1)


def test_the_pipeline_shows_a_column_per_status_with_cards(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.coordinator) as web:
        response = web.get(PIPELINE)
        assert response.status_code == 200
        html = response.text
        for status in ("sent", "accepted", "converted", "declined", "lost", "reversed"):
            column(html, status)
        sent = column(html, "sent")
        assert 'id="card-r-1"' in sent
        assert "Dana Whitfield" in sent
        assert "Ann Law" in sent and "Bob Tax" in sent
        assert "2025-01-06 09:00" in sent
        assert 'href="/n/riverside/trail?entity=referral:r-1"' in sent
        assert 'hx-post="/n/riverside/referrals/r-1/accept"' in sent
        assert "No referrals." in column(html, "converted")
        # Another network's referral never shows.
        assert "Harbor Customer" not in html and "h-1" not in html
        assert 'href="/n/riverside/referrals" aria-current="page"' in html


def test_outsiders_get_404_everywhere(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.outsider) as web:
        assert web.get(PIPELINE).status_code == 404
        assert web.post(PIPELINE, {"to_member": "bob-tax", "customer": "x"}).status_code == 404
        assert web.htmx(f"{PIPELINE}/r-1/accept").status_code == 404
        assert web.post("/n/riverside/tyfcb", {"amount": "1"}).status_code == 404
        # Their own network works, and shows only their referral.
        html = web.get("/n/harbor/referrals").text
        assert "Harbor Customer" in html and "Dana Whitfield" not in html
    with browser(world, tmp_path, world.coordinator) as web:
        assert web.get("/n/harbor/referrals").status_code == 404
        assert web.htmx("/n/harbor/referrals/h-1/accept").status_code == 404
    assert len(events(world, "referral.accepted")) == 0


def test_an_auditor_reads_and_can_change_nothing(world: World, tmp_path: Path) -> None:
    before = len(events(world))
    with browser(world, tmp_path, world.auditor) as web:
        html = web.get(PIPELINE).text
        assert "Dana Whitfield" in html
        assert "<form" not in html.split('<main id="main">')[1]
        assert "Send referral" not in html and "hx-post" not in html
        assert (
            web.post(PIPELINE, {"from_member": "ann-law", "to_member": "bob-tax",
                                "customer": "Sneaky"}).status_code
            == 403
        )  # fmt: skip
        for action in ("accept", "decline", "lose", "convert", "reverse"):
            assert web.htmx(f"{PIPELINE}/r-1/{action}", {"reason": "x"}).status_code == 403
        assert web.post("/n/riverside/tyfcb", {"member": "bob-tax"}).status_code == 403
    assert len(events(world)) == before


def test_a_member_sends_from_their_own_business_only(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.member) as web:
        html = web.get(PIPELINE).text
        # The sender is fixed to the member's business; the receivers exclude it.
        assert '<input type="hidden" name="from_member" value="ann-law">' in html
        to = re.search(r'<select id="f-send-to_member".*?</select>', html, re.S)
        assert to and 'value="bob-tax"' in to.group(0) and 'value="ann-law"' not in to.group(0)
        response = web.post(
            PIPELINE, {"from_member": "ann-law", "to_member": "bob-tax",
                       "customer": "Erin Oakes", "note": "needs a tax return"},
            follow_redirects=False,
        )  # fmt: skip
        assert response.status_code == 303
        assert response.headers["location"] == PIPELINE
        sent = events(world, "referral.sent")[-1]
        assert sent.command.from_member == "ann-law"
        assert sent.command.to_member == "bob-tax"
        # Stored sealed (docs/privacy.md); the vault opens it.
        assert isinstance(sent.command.customer, Sealed)
        vault = Vault(Database.parse(world.database_url))
        assert vault.reveal("riverside", "customer", sent.command.customer) == "Erin Oakes"
        assert sent.actor == world.member
        assert sent.command.referral.startswith("r-")
        assert "Erin Oakes" in column(web.get(PIPELINE).text, "sent")
        # Sending in another business's name is refused, and writes nothing.
        count = len(events(world))
        response = web.post(
            PIPELINE, {"from_member": "bob-tax", "to_member": "ann-law", "customer": "Forged"}
        )
        assert response.status_code == 403
        assert len(events(world)) == count


def test_send_errors_show_next_to_their_field_and_write_nothing(
    world: World, tmp_path: Path
) -> None:
    count = len(events(world))
    with browser(world, tmp_path, world.coordinator) as web:
        response = web.post(PIPELINE, {"from_member": "ann-law", "customer": "Gina"})
        assert response.status_code == 422
        assert re.search(
            r'id="f-send-to_member"[^>]*aria-invalid="true".*?<p class="error" '
            r'id="e-send-to_member" role="alert">required field is missing</p>',
            response.text, re.S,
        )  # fmt: skip
        # What was typed is kept.
        assert 'id="f-send-customer" name="customer" type="text" value="Gina"' in response.text
        response = web.post(
            PIPELINE, {"from_member": "ann-law", "to_member": "ann-law", "customer": "Self"}
        )
        assert response.status_code == 422
        assert 'id="e-send-to_member"' in response.text
        assert "must be another member than" in response.text
        response = web.post(
            PIPELINE, {"referral": "r-1", "from_member": "ann-law", "to_member": "bob-tax",
                       "customer": "Again"},
        )  # fmt: skip
        assert response.status_code == 422
        assert re.search(
            r'id="e-send-referral" role="alert">referral &#39;r-1&#39; already exists',
            response.text,
        )
        # htmx gets the pipeline fragment back, with the error, as 422.
        response = web.htmx(PIPELINE, {"from_member": "ann-law", "to_member": "bob-tax"})
        assert response.status_code == 422
        assert response.text.lstrip().startswith('<div id="pipeline">')
        assert "<html" not in response.text
        assert 'id="e-send-customer"' in response.text
    assert len(events(world)) == count


def test_htmx_moves_a_card_through_accepted_and_converted(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.other_member) as web:
        response = web.htmx(f"{PIPELINE}/r-1/accept")
        assert response.status_code == 200
        assert response.text.lstrip().startswith('<div id="pipeline">')
        assert "<html" not in response.text
        assert 'id="card-r-1"' in column(response.text, "accepted")
        assert 'id="card-r-1"' not in column(response.text, "sent")
        accepted = events(world, "referral.accepted")
        assert [(e.command.referral, e.actor) for e in accepted] == [("r-1", world.other_member)]
        # The conversion's currency defaults to the network's.
        response = web.htmx(f"{PIPELINE}/r-1/convert", {"deal_value": "10000"})
        assert response.status_code == 200
        converted = column(response.text, "converted")
        assert 'id="card-r-1"' in converted
        assert "10,000.00 USD" in converted
        (event,) = events(world, "referral.converted")
        assert (event.command.deal_value, event.command.currency) == (Decimal(10000), "USD")
        # The receiver cannot reverse: that is the coordinator's.
        assert "/r-1/reverse" not in response.text
        assert (
            web.htmx(f"{PIPELINE}/r-1/reverse", {"amount": "1", "reason": "x"}).status_code == 403
        )
    # A plain form post (no htmx) is redirected back to the page.
    with browser(world, tmp_path, world.coordinator) as web:
        response = web.post(
            f"{PIPELINE}/r-1/reverse", {"amount": "2500", "reason": "refund"},
            follow_redirects=False,
        )  # fmt: skip
        assert response.status_code == 303 and response.headers["location"] == PIPELINE
        reversed_ = column(web.get(PIPELINE).text, "reversed")
        assert "2,500.00 USD" in reversed_ and "7,500.00 USD" in reversed_ and "refund" in reversed_


def test_conversion_errors_rerender_the_card_form_with_422(world: World, tmp_path: Path) -> None:
    record(world, command("referral.accepted", "riverside", referral="r-1"))
    count = len(events(world))
    with browser(world, tmp_path, world.other_member) as web:
        response = web.htmx(f"{PIPELINE}/r-1/convert", {"deal_value": "-5", "currency": "USD"})
        assert response.status_code == 422
        html = response.text
        assert html.lstrip().startswith('<div id="pipeline">')
        assert re.search(
            r'id="f-r-1:convert-deal_value" name="deal_value" type="text" value="-5".*?'
            r'id="e-r-1:convert-deal_value" role="alert">must be greater than zero',
            html, re.S,
        )  # fmt: skip
        assert "<details open>" in html
        response = web.htmx(f"{PIPELINE}/r-1/convert", {"deal_value": "100", "currency": "EUR"})
        assert response.status_code == 422
        assert re.search(
            r'id="e-r-1:convert-currency" role="alert">EUR is not the network', response.text
        )
        response = web.htmx(f"{PIPELINE}/r-1/convert", {"deal_value": "lots"})
        assert response.status_code == 422
        assert 'id="e-r-1:convert-deal_value"' in response.text
    assert len(events(world)) == count


def test_a_refused_transition_is_explained_on_its_card(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.coordinator) as web:
        assert web.htmx(f"{PIPELINE}/r-1/accept").status_code == 200
        count = len(events(world))
        # A second tab accepting again: refused, explained on the card, nothing written.
        response = web.htmx(f"{PIPELINE}/r-1/accept")
        assert response.status_code == 422
        card = column(response.text, "accepted")
        assert "Nothing was changed: referral: referral &#39;r-1&#39; is accepted" in card
        assert len(events(world)) == count
        assert web.htmx(f"{PIPELINE}/r-1/frobnicate").status_code == 404
        assert web.htmx(f"{PIPELINE}/r-404/accept").status_code == 404


def test_decline_and_lose_record_their_reason(world: World, tmp_path: Path) -> None:
    record(
        world,
        command("referral.sent", "riverside", referral="r-2", from_member="ann-law",
                to_member="bob-tax", customer="Hal Stone"),
        command("referral.accepted", "riverside", referral="r-2"),
    )  # fmt: skip
    with browser(world, tmp_path, world.other_member) as web:
        html = web.htmx(f"{PIPELINE}/r-1/decline", {"reason": "outside my area"}).text
        assert "outside my area" in column(html, "declined")
        html = web.htmx(f"{PIPELINE}/r-2/lose", {"reason": "went elsewhere"}).text
        assert "went elsewhere" in column(html, "lost")
    assert events(world, "referral.declined")[0].command.reason == "outside my area"
    assert events(world, "referral.lost")[0].command.reason == "went elsewhere"


def test_a_member_acts_only_on_referrals_sent_to_them(world: World, tmp_path: Path) -> None:
    record(
        world,
        command("member.joined", "riverside", member="cy-flor", name="Cy Florist",
                category="florist"),
        command("referral.sent", "riverside", referral="r-3", from_member="bob-tax",
                to_member="cy-flor", customer="Iris Bloom"),
    )  # fmt: skip
    count = len(events(world))
    with browser(world, tmp_path, world.member) as web:
        html = web.get(PIPELINE).text
        # Ann sent r-1: she sees it, without its receiver's buttons; r-3 is none of hers.
        assert 'id="card-r-1"' in html
        assert "/r-1/accept" not in html and "/r-1/decline" not in html
        assert "Iris Bloom" not in html and 'id="card-r-3"' not in html
        for slug in ("r-1", "r-3"):
            for action in ("accept", "decline"):
                assert web.htmx(f"{PIPELINE}/{slug}/{action}").status_code == 403
    with browser(world, tmp_path, world.other_member) as web:
        html = web.get(PIPELINE).text
        assert 'id="card-r-1"' in html and 'id="card-r-3"' in html
        assert "/r-1/accept" in html and "/r-3/accept" not in html
    with browser(world, tmp_path, world.coordinator) as web:
        html = web.get(PIPELINE).text
        assert "/r-1/accept" in html and "/r-3/accept" in html
    assert len(events(world)) == count


def test_a_member_reports_a_thank_you_for_closed_business(world: World, tmp_path: Path) -> None:
    record(
        world,
        command("referral.accepted", "riverside", referral="r-1"),
        command("referral.converted", "riverside", referral="r-1", deal_value="4000",
                currency="USD"),
    )  # fmt: skip
    with browser(world, tmp_path, world.other_member) as web:
        html = web.get(PIPELINE).text
        assert "Report a thank-you for closed business" in html
        assert '<option value="r-1">r-1: Dana Whitfield, from Ann Law</option>' in html
        count = len(events(world))
        response = web.htmx(
            "/n/riverside/tyfcb", {"member": "bob-tax", "thanked_member": "ann-law",
                                   "amount": "many", "referral": "r-1"},
        )  # fmt: skip
        assert response.status_code == 422
        assert re.search(r'id="e-tyfcb-amount" role="alert">', response.text)
        assert len(events(world)) == count
        response = web.post(
            "/n/riverside/tyfcb", {"member": "ann-law", "thanked_member": "bob-tax",
                                   "amount": "10"},
        )  # fmt: skip
        assert response.status_code == 403
        response = web.post(
            "/n/riverside/tyfcb", {"member": "bob-tax", "thanked_member": "ann-law",
                                   "amount": "4000", "referral": "r-1", "note": "thanks!"},
            follow_redirects=False,
        )  # fmt: skip
        assert response.status_code == 303
    (event,) = events(world, "tyfcb.reported")
    command_ = event.command
    assert (command_.member, command_.thanked_member, command_.amount, command_.currency) == (
        "bob-tax", "ann-law", Decimal(4000), "USD",
    )  # fmt: skip
    assert (command_.referral, command_.note, event.actor) == ("r-1", "thanks!", world.other_member)


def test_tyfcb_for_a_referral_of_someone_else_is_refused_next_to_the_field(
    world: World, tmp_path: Path
) -> None:
    record(
        world,
        command("referral.accepted", "riverside", referral="r-1"),
        command("referral.converted", "riverside", referral="r-1", deal_value="4000",
                currency="USD"),
    )  # fmt: skip
    with browser(world, tmp_path, world.coordinator) as web:
        response = web.post(
            "/n/riverside/tyfcb", {"member": "ann-law", "thanked_member": "bob-tax",
                                   "amount": "50", "referral": "r-1"},
        )  # fmt: skip
        assert response.status_code == 422
        assert re.search(
            r'id="e-tyfcb-referral" role="alert">referral &#39;r-1&#39; went from', response.text
        )
    assert events(world, "tyfcb.reported") == []


def test_columns_show_the_latest_cards_and_older_ones_a_page_at_a_time(
    world: World, tmp_path: Path
) -> None:
    record(
        world,
        *(
            command("referral.sent", "riverside", referral=f"bulk-{i:02d}", from_member="bob-tax",
                    to_member="ann-law", customer=f"Bulk customer {i:02d}",
                    occurred_at=datetime(2025, 2, 1, 9, i, tzinfo=UTC))
            for i in range(35)
        ),
    )  # fmt: skip
    with browser(world, tmp_path, world.coordinator) as web:
        sent = column(web.get(PIPELINE).text, "sent")
        assert sent.count('class="card"') == COLUMN_LIMIT == 10
        assert "Bulk customer 34" in sent and "Bulk customer 25" in sent
        assert "Bulk customer 24" not in sent and "Dana Whitfield" not in sent
        assert "10 of 36 shown" in sent
        seen = []
        for _ in range(4):  # three older pages of 10, 10 and 6 cards
            older = re.search(r'href="([^"]*status=sent&amp;before=[^"]*)" rel="next"', sent)
            assert older is not None
            sent = column(web.get(html.unescape(older.group(1))).text, "sent")
            seen.append(sent.count('class="card"'))
            if 'rel="next"' not in sent:
                break
        assert seen == [10, 10, 6]
        assert "Dana Whitfield" in sent and "Bulk customer 05" not in sent
        assert "Bulk customer 04" in sent and "Bulk customer 00" in sent


def test_an_error_on_a_field_the_member_cannot_change_is_still_shown(
    world: World, tmp_path: Path
) -> None:
    record(world, command("member.suspended", "riverside", member="ann-law"))
    count = len(events(world))
    with browser(world, tmp_path, world.member) as web:
        response = web.htmx(PIPELINE, {"from_member": "ann-law", "to_member": "bob-tax",
                                       "customer": "Jo"})  # fmt: skip
        assert response.status_code == 422
        assert re.search(
            r'<span class="label">From</span> Ann Law\s*<p class="error" role="alert">'
            r"member &#39;ann-law&#39; is suspended, not active</p>",
            response.text,
        )
    assert len(events(world)) == count


def test_the_columns_read_in_one_statement_are_those_read_one_at_a_time(
    store: Store,
) -> None:
    """``columns`` (every status in one UNION ALL) gives each status the rows ``column``
    gives, in the same order: whole columns and pages after a cursor, for the network and
    for one member; ties on the time moved go by the order sent."""
    lines = [encode_command(c) for c in generate(seed=5, members=8, months=4)]
    assert import_lines(Ledger(store), lines).rejected == []
    with Projector(store) as projector:
        projector.catch_up()
        db = projector.db
        network = "riverside"
        _, rows = db.execute(
            f"SELECT DISTINCT from_member FROM {db.table(view.PIPELINE)} WHERE network = ?",
            (network,),
        )
        member = sorted(str(r[0]) for r in rows)[0]
        checked = 0
        for mine in (None, member):
            for limit in (1, 4, 1000):
                whole = view.columns(db, network, view.STATUSES, member=mine, limit=limit)
                assert list(whole) == list(view.STATUSES)
                for status in view.STATUSES:
                    one = view.column(db, network, status, member=mine, limit=limit)
                    assert whole[status] == one, (status, mine, limit)
                    checked += len(one)
                    if len(one) > 1:  # the page after the first row of the column
                        after = (status, (one[0].moved_at, one[0].position))
                        assert after[1][0] is not None
                        paged = view.columns(db, network, view.STATUSES, member=mine, before=after,
                                        limit=limit)  # fmt: skip
                        assert paged[status] == view.column(
                            db, network, status, member=mine, before=after[1], limit=limit
                        )
                        others = [s for s in view.STATUSES if s != status]
                        assert all(paged[s] == whole[s] for s in others)
        assert checked > 100
