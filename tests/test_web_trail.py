"""The audit trail page: any entity's events, filters, paging, links, and who may read what."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from partnerledger.commands import convert_command
from partnerledger.sql import connect
from partnerledger.store import Database
from partnerledger.views.trail import entities
from webkit import START, World, browser, build_world, record

TRAIL = "/n/riverside/trail"


@pytest.fixture
def world(database_url: str) -> World:
    """The web world, with a little more history: r-1 accepted and converted, an agreement."""
    found = build_world(database_url)
    record(
        found,
        command("member.joined", member="cy-flor", name="Cy Florist", category="florist"),
        command("referral.accepted", referral="r-1", occurred_at=datetime(2025, 2, 3, tzinfo=UTC),
                actor="bob@riverside.example"),
        command("referral.converted", referral="r-1", deal_value="1200", currency="USD",
                occurred_at=datetime(2025, 3, 4, tzinfo=UTC), actor="bob@riverside.example"),
        command("referral.sent", referral="r-2", from_member="bob-tax", to_member="cy-flor",
                customer="Quiet Customer", occurred_at=datetime(2025, 3, 5, tzinfo=UTC)),
        command("agreement.proposed", agreement="a-1", kind="referral",
                parties=["ann-law", "bob-tax"], terms={"scope": "Estates"}),
    )  # fmt: skip
    return found


def command(type_: str, **fields: Any) -> Any:
    fields.setdefault("occurred_at", START)
    fields.setdefault("actor", "setup")
    return convert_command({"type": type_, "network": "riverside", **fields})


def listed(html: str) -> list[tuple[str, str]]:
    """The (event type, actor) of every row of the trail table."""
    body = html.split('<table class="trail">')[1].split("</tbody>")[0]
    return re.findall(r'<th scope="row">([a-z_.]+)</th>\s*<td>([^<]*)</td>', body)


def test_the_network_trail_lists_every_event_in_log_order(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.coordinator) as web:
        response = web.get(TRAIL)
        assert response.status_code == 200
        html = response.text
        assert "<h1>Audit trail · network:riverside</h1>" in html
        rows = listed(html)
        assert rows[0] == ("network.created", "setup")
        assert [t for t, _ in rows].count("referral.sent") == 2
        assert ("referral.accepted", "bob@riverside.example") in rows
        assert len(rows) == 11
        # Never another network's.
        assert "Harbor" not in html.split('<table class="trail">')[1]
        # Business and store time, the command in full.
        assert "2025-03-04 00:00:00" in html
        assert "deal_value: 1200" in html
        assert "&#34;deal_value&#34;: &#34;1200&#34;" in html or '"deal_value": "1200"' in html
        # The entity picker offers the network's entities.
        assert '<option value="referral:r-1">' in html
        assert '<option value="agreement:a-1">' in html


def test_an_entitys_trail_and_its_filters(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.auditor) as web:
        html = web.get(f"{TRAIL}?entity=referral:r-1").text
        assert [t for t, _ in listed(html)] == [
            "referral.sent", "referral.accepted", "referral.converted",
        ]  # fmt: skip
        assert "3 events of referral:r-1" in html
        html = web.get(f"{TRAIL}?entity=referral:r-1&type=referral.converted").text
        assert [t for t, _ in listed(html)] == ["referral.converted"]
        html = web.get(f"{TRAIL}?entity=member:bob-tax&actor=bob@riverside.example").text
        assert [t for t, _ in listed(html)] == ["referral.accepted", "referral.converted"]
        html = web.get(f"{TRAIL}?entity=member:bob-tax&since=2025-03-01&until=2025-03-04").text
        assert [t for t, _ in listed(html)] == ["referral.converted"]
        html = web.get(f"{TRAIL}?entity=network:riverside&search=quiet").text
        assert [t for t, _ in listed(html)] == ["referral.sent"]
        assert "Quiet Customer" in html
        html = web.get(f"{TRAIL}?entity=agreement:a-1").text
        assert [t for t, _ in listed(html)] == ["agreement.proposed"]
        # The filters stay in the form.
        html = web.get(f"{TRAIL}?entity=member:bob-tax&search=quiet&since=2025-01-01").text
        assert 'id="f-search" name="search" type="text" value="quiet"' in html
        assert 'id="f-since" name="since" type="text" value="2025-01-01"' in html


def test_paging_on_after_a_position(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.coordinator) as web:
        first = web.get(f"{TRAIL}?entity=referral:r-1").text
        positions = re.findall(r'<td class="num">(\d+)</td>', first.split("<tbody>")[1])
        html = web.get(f"{TRAIL}?entity=referral:r-1&after={positions[0]}").text
        assert [t for t, _ in listed(html)] == ["referral.accepted", "referral.converted"]
        assert "(continued)" in html and "First events" in html


def test_filter_errors_show_next_to_the_field(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.coordinator) as web:
        cases = [
            ("entity=bogus", "entity", 422, "is not an entity id"),
            ("entity=referral:r-404", "entity", 404, "no events of referral:r-404"),
            ("since=yesterday", "since", 422, "is not a date"),
            ("until=2025-01-01T10:00", "until", 422, "with an offset"),
            ("type=referral.teleported", "type", 422, "unknown event type"),
        ]
        for query, field, status, reason in cases:
            response = web.get(f"{TRAIL}?{query}")
            assert response.status_code == status, query
            match = re.search(
                rf'<p class="error" id="e-{field}" role="alert">(.*?)</p>', response.text
            )
            assert match and reason in match.group(1), query
            assert '<table class="trail">' not in response.text


def test_a_member_reads_their_business_and_its_referrals_and_agreements(
    world: World, tmp_path: Path
) -> None:
    with browser(world, tmp_path, world.member) as web:
        html = web.get(TRAIL).text
        assert "<h1>Audit trail · member:ann-law</h1>" in html
        assert [t for t, _ in listed(html)] == [
            "member.joined", "referral.sent", "referral.accepted", "referral.converted",
            "agreement.proposed",
        ]  # fmt: skip
        assert web.get(f"{TRAIL}?entity=referral:r-1").status_code == 200
        assert web.get(f"{TRAIL}?entity=agreement:a-1").status_code == 200
        # The picker offers only what the member may read.
        options = set(re.findall(r'<option value="([a-z]+:[^"]+)">', html))
        assert options == {"member:ann-law", "referral:r-1", "agreement:a-1"}
        for entity in ("network:riverside", "member:bob-tax", "referral:r-2", "member:cy-flor",
                       "period:2025-Q1", "referral:h-1"):  # fmt: skip
            assert web.get(f"{TRAIL}?entity={entity}").status_code == 403, entity
    with browser(world, tmp_path, world.other_member) as web:
        assert web.get(f"{TRAIL}?entity=referral:r-2").status_code == 200
        assert web.get(f"{TRAIL}?entity=member:ann-law").status_code == 403


def test_outsiders_get_404(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.outsider) as web:
        assert web.get(TRAIL).status_code == 404
        assert web.get(f"{TRAIL}?entity=referral:r-1").status_code == 404
        html = web.get("/n/harbor/trail?entity=referral:h-1").text
        assert "Harbor Customer" in html and "Dana Whitfield" not in html
    with browser(world, tmp_path, world.coordinator) as web:
        assert web.get("/n/harbor/trail").status_code == 404


def test_other_pages_link_to_the_trail(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.coordinator) as web:
        pipeline = web.get("/n/riverside/referrals").text
        assert 'href="/n/riverside/trail?entity=referral:r-1"' in pipeline
        agreement = web.get("/n/riverside/agreements/a-1").text
        assert 'href="/n/riverside/trail?entity=agreement:a-1"' in agreement
        assert 'href="/n/riverside/trail" aria-current="page"' in web.get(TRAIL).text
        assert web.get("/n/riverside/trail?entity=referral:r-1").status_code == 200


def test_the_picker_offers_the_entities_with_the_latest_events(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A network's every referral would make the page grow with the history: the picker
    # and the list offer the entities with the latest events, and say how many there are.
    from partnerledger.web import trail as trail_page

    monkeypatch.setattr(trail_page, "PICKER", 2)
    with browser(world, tmp_path, world.coordinator) as web:
        html = web.get(f"{TRAIL}?entity=network:riverside").text
        db = connect(Database.parse(world.database_url))
        try:
            every = entities(db, "riverside")
        finally:
            db.close()
    picker = html.split('<datalist id="entity-list">')[1].split("</datalist>")[0]
    offered = re.findall(r'<option value="([^"]+)">', picker)
    assert len(offered) == 2 < len(every)
    latest = sorted(every, key=lambda e: (-e.last_position, e.entity))[:2]  # ties by id
    assert sorted(offered) == sorted(e.entity for e in latest)
    assert f"the 2 with the latest events of {len(every)}" in html
