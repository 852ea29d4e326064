"""Members: the list, a member's page, inviting, suspending, reinstating, leaving; roles."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from webkit import World, browser, build_world, caught_up, last_position, recorded

ACTIONS = ("join", "suspend", "reinstate", "leave")


def error_of(html: str, name: str) -> str:
    """The error shown next to one input."""
    found = re.search(rf'<p class="error" id="e-{re.escape(name)}" role="alert">(.*?)</p>', html)
    assert found, f"no error next to {name}"
    return found[1]


@pytest.fixture
def world(database_url: str) -> World:
    built = build_world(database_url)
    caught_up(built)
    return built


def test_every_role_reads_the_members_and_only_coordinators_see_the_forms(
    world: World, tmp_path: Path
) -> None:
    for email in (world.coordinator, world.member, world.auditor):
        with browser(world, tmp_path, email) as web:
            listing = web.get("/n/riverside/members")
            assert listing.status_code == 200, email
            html = listing.text
            assert 'href="/n/riverside/members/ann-law">Ann Law</a>' in html
            assert "<td>accountant</td>" in html
            assert "2025-Q1" in html  # the latest standings period
            detail = web.get("/n/riverside/members/bob-tax")
            assert detail.status_code == 200
            coordinator = email == world.coordinator
            assert ("Invite a business" in html) is coordinator
            assert ('action="/n/riverside/members/bob-tax/suspend"' in detail.text) is coordinator
    with browser(world, tmp_path, world.outsider) as web:
        for path in ("/n/riverside/members", "/n/riverside/members/ann-law"):
            response = web.get(path)
            assert response.status_code == 404
            assert "Ann Law" not in response.text
        assert web.get("/n/harbor/members/ann-law").status_code == 404  # not a harbor member


def test_the_list_shows_each_members_latest_standing(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.member) as web:
        html = web.get("/n/riverside/members").text
    row = r'<tr>\s*<th scope="row"><a href="/n/riverside/members/([\w-]+)">(.*?)</tr>'
    rows = dict(re.findall(row, html, re.S))
    # points: ann-law sent one referral (1 point), bob-tax none; both reach bronze (0).
    assert "<td>bronze</td>" in rows["ann-law"]
    assert '<td class="num">1</td>' in rows["ann-law"]
    assert '<td class="num">0</td>' in rows["bob-tax"]
    assert '<span class="badge green">active</span>' in rows["bob-tax"]


def test_a_members_page_has_history_scorecards_and_chart_data(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.auditor) as web:
        html = web.get("/n/riverside/members/ann-law").text
        assert web.get("/n/riverside/members/nobody").status_code == 404
    found = re.search(r'<script type="application/json" id="data-history">(.*?)</script>', html)
    assert found
    assert json.loads(found[1]) == {"labels": ["2025-Q1"], "scores": ["1"], "tiers": ["bronze"]}
    history = html[html.index('id="history-table"') :]
    assert '<th scope="row">2025-Q1</th>' in history
    assert "provisional" in history
    cards = html[html.index("Scorecards") :]
    assert 'href="/n/riverside/members/bob-tax">Bob Tax</a>' in cards
    assert '<span class="badge warn">one-sided</span>' in cards
    assert "0.00 USD" in cards


def test_a_coordinator_invites_a_business(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.coordinator) as web:
        response = web.post(
            "/n/riverside/members",
            {"member": "cara-flowers", "name": "Cara Flowers", "category": "florist",
             "service_area": "Riverside", "contact_email": "cara@flowers.example"},
            follow_redirects=False,
        )  # fmt: skip
        assert response.status_code == 303
        assert response.headers["location"] == "/n/riverside/members/cara-flowers"
        invited = recorded(world, "member.invited")
        assert len(invited) == 1
        command = invited[0]
        assert (command.member, command.name, command.category, command.service_area) == (
            "cara-flowers", "Cara Flowers", "florist", "Riverside",
        )  # fmt: skip
        assert command.contact.email == "cara@flowers.example"
        assert command.actor == world.coordinator
        page = web.get("/n/riverside/members/cara-flowers").text
        assert '<span class="badge grey">invited</span>' in page
        assert "cara@flowers.example" in page
        assert "Cara Flowers" in web.get("/n/riverside/members").text
        # The invited business joins.
        web.post("/n/riverside/members/cara-flowers/join")
        assert [c.member for c in recorded(world, "member.joined")][-1] == "cara-flowers"
        assert (
            '<span class="badge green">active</span>'
            in web.get("/n/riverside/members/cara-flowers").text
        )


@pytest.mark.parametrize(
    ("fields", "name", "reason"),
    [
        ({"member": "no spaces please"}, "member", "in the allowed form"),
        ({"member": "ann-law"}, "member", "already exists"),
        ({"contact_email": "not-an-email"}, "contact_email", "in the allowed form"),
        ({"name": ""}, "name", "required field is missing"),
    ],
)
def test_a_refused_invitation_shows_the_reason_next_to_the_field(
    world: World, tmp_path: Path, fields: dict[str, str], name: str, reason: str
) -> None:
    form = {"member": "dan-dentist", "name": "Dan", "category": "dentist", **fields}
    before = last_position(world)
    with browser(world, tmp_path, world.coordinator) as web:
        response = web.post("/n/riverside/members", form)
    assert response.status_code == 422
    assert reason in error_of(response.text, name)
    assert "Nothing was saved" in response.text
    assert f'value="{form["member"]}"' in response.text  # the form keeps what was typed
    assert last_position(world) == before


def test_suspend_reinstate_and_leave(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.coordinator) as web:
        response = web.post(
            "/n/riverside/members/bob-tax/suspend",
            {"suspend_reason": "unpaid dues"},
            follow_redirects=False,
        )
        assert response.status_code == 303
        assert [(c.member, c.reason) for c in recorded(world, "member.suspended")] == [
            ("bob-tax", "unpaid dues")
        ]
        page = web.get("/n/riverside/members/bob-tax").text
        assert '<span class="badge amber">suspended</span>' in page
        assert 'action="/n/riverside/members/bob-tax/reinstate"' in page
        assert 'action="/n/riverside/members/bob-tax/suspend"' not in page
        # Suspending again is refused, next to the form, with nothing written.
        before = last_position(world)
        again = web.post("/n/riverside/members/bob-tax/suspend", {"suspend_reason": "twice"})
        assert again.status_code == 422
        assert "is suspended; only a member who is active" in error_of(again.text, "suspend")
        assert last_position(world) == before
        # Reinstated, then gone for good.
        web.post("/n/riverside/members/bob-tax/reinstate", {"reinstate_reason": "paid"})
        assert recorded(world, "member.reinstated")[0].reason == "paid"
        web.post("/n/riverside/members/bob-tax/leave", {"leave_reason": "moved away"})
        assert recorded(world, "member.left")[0].reason == "moved away"
        page = web.get("/n/riverside/members/bob-tax").text
        assert '<span class="badge red">left</span>' in page
        assert 'id="status-heading"' not in page  # nothing left to change
        assert web.post("/n/riverside/members/nobody/suspend").status_code == 404


def test_only_coordinators_change_members(world: World, tmp_path: Path) -> None:
    before = last_position(world)
    invite = {"member": "eve-co", "name": "Eve", "category": "shop"}
    for email in (world.member, world.auditor, world.other_member):
        with browser(world, tmp_path, email) as web:
            assert web.post("/n/riverside/members", invite).status_code == 403, email
            for action in ACTIONS:
                for member in ("ann-law", "bob-tax"):  # neither one's own business nor another's
                    path = f"/n/riverside/members/{member}/{action}"
                    assert web.post(path, {f"{action}_reason": "x"}).status_code == 403, path
    with browser(world, tmp_path, world.outsider) as web:
        assert web.post("/n/riverside/members", invite).status_code == 404
        for action in ACTIONS:
            assert web.post(f"/n/riverside/members/ann-law/{action}").status_code == 404
    assert last_position(world) == before
