"""The tier ladder and the plugins pages: reading, editing, errors next to the right field."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from partnerledger.commands import Tier
from partnerledger.web.network_plugins import field_docs, settings_form
from webkit import World, browser, build_world, caught_up, last_position, recorded

LADDER = {"tiers-0-name": "bronze", "tiers-0-threshold": "0",
          "tiers-1-name": "silver", "tiers-1-threshold": "20"}  # fmt: skip


def error_of(html: str, name: str) -> str:
    """The error shown next to one input."""
    found = re.search(rf'<p class="error" id="e-{re.escape(name)}" role="alert">(.*?)</p>', html)
    assert found, f"no error next to {name}"
    return found[1]


def value_of(html: str, name: str) -> str:
    """The value an input shows."""
    found = re.search(rf'name="{re.escape(name)}" type="[a-z]+" value="([^"]*)"', html)
    assert found, f"no input {name}"
    return found[1]


@pytest.fixture
def world(database_url: str) -> World:
    built = build_world(database_url)
    caught_up(built)
    return built


# ------------------------------------------------------------------ the ladder


def test_every_role_reads_the_ladder_and_only_coordinators_edit_it(
    world: World, tmp_path: Path
) -> None:
    before = last_position(world)
    for email in (world.coordinator, world.member, world.auditor):
        with browser(world, tmp_path, email) as web:
            response = web.get("/n/riverside/tiers")
            assert response.status_code == 200, email
            html = response.text
            assert '<th scope="row">silver</th><td class="num">20</td>' in html
            assert ('name="tiers-0-threshold"' in html) is (email == world.coordinator)
            if email != world.coordinator:
                assert web.post("/n/riverside/tiers", LADDER).status_code == 403
    with browser(world, tmp_path, world.outsider) as web:
        assert web.get("/n/riverside/tiers").status_code == 404
        assert web.post("/n/riverside/tiers", LADDER).status_code == 404
    assert last_position(world) == before


def test_a_coordinator_adds_a_rung_with_benefits_and_removes_one(
    world: World, tmp_path: Path
) -> None:
    with browser(world, tmp_path, world.coordinator) as web:
        benefits = "Featured in the newsletter\n\n  A seat at the board  "
        form = {**LADDER, "tiers-2-name": "gold", "tiers-2-threshold": "50",
                "tiers-2-benefits": benefits}  # fmt: skip
        response = web.post("/n/riverside/tiers", form, follow_redirects=False)
        assert response.status_code == 303
        assert recorded(world, "network.tiers_set")[-1].tiers == (
            Tier(name="bronze", threshold=Decimal(0)),
            Tier(name="silver", threshold=Decimal(20)),
            Tier(name="gold", threshold=Decimal(50),
                 benefits=("Featured in the newsletter", "A seat at the board")),
        )  # fmt: skip
        html = web.get("/n/riverside/tiers").text
        assert "<li>A seat at the board</li>" in html
        assert value_of(html, "tiers-2-threshold") == "50"
        assert value_of(html, "tiers-3-name") == ""  # the empty row for a new rung
        # Remove silver: gold is the second rung now.
        form = {**form, "tiers-1-remove": "true"}
        web.post("/n/riverside/tiers", form)
        assert [t.name for t in recorded(world, "network.tiers_set")[-1].tiers] == [
            "bronze",
            "gold",
        ]


def test_add_another_row_writes_nothing(world: World, tmp_path: Path) -> None:
    before = last_position(world)
    with browser(world, tmp_path, world.coordinator) as web:
        form = {**LADDER, "tiers-2-name": "gold", "add": "1"}
        response = web.post("/n/riverside/tiers", form)
    assert response.status_code == 200
    assert value_of(response.text, "tiers-2-name") == "gold"
    assert value_of(response.text, "tiers-3-name") == ""
    assert last_position(world) == before


@pytest.mark.parametrize(
    ("rows", "name", "reason"),
    [
        # The third row's threshold is below the second's.
        ({"tiers-2-name": "gold", "tiers-2-threshold": "10"}, "tiers-2-threshold", "must rise"),
        # silver is removed, so the domain calls gold tiers[1]: the error is still gold's row.
        ({"tiers-1-remove": "true", "tiers-2-name": "gold", "tiers-2-threshold": "lots"},
         "tiers-2-threshold", "Invalid decimal string"),
        ({"tiers-2-name": "bronze", "tiers-2-threshold": "30"}, "tiers-2-name", "appears twice"),
        ({"tiers-2-threshold": "30"}, "tiers-2-name", "Expected `str` of length &gt;= 1"),
        ({"tiers-0-threshold": "-1"}, "tiers-0-threshold", "must be zero or more"),
    ],
)  # fmt: skip
def test_a_refused_ladder_shows_the_reason_next_to_the_rungs_field(
    world: World, tmp_path: Path, rows: dict[str, str], name: str, reason: str
) -> None:
    before = last_position(world)
    with browser(world, tmp_path, world.coordinator) as web:
        response = web.post("/n/riverside/tiers", {**LADDER, **rows})
    assert response.status_code == 422
    assert reason in error_of(response.text, name)
    assert "Nothing was saved" in response.text
    assert last_position(world) == before


# ----------------------------------------------------------------- plugins


def test_every_role_reads_the_plugins_and_only_coordinators_change_them(
    world: World, tmp_path: Path
) -> None:
    before = last_position(world)
    writes = [
        ("/n/riverside/plugins/traffic-lights/enable", {}),
        ("/n/riverside/plugins/points/disable", {}),
        ("/n/riverside/plugins/points/settings", {"settings.referral_given": "3"}),
    ]
    for email in (world.coordinator, world.member, world.auditor):
        with browser(world, tmp_path, email) as web:
            listing = web.get("/n/riverside/plugins")
            assert listing.status_code == 200, email
            html = listing.text
            row = html[html.index('id="plugin-points"') :]
            row = row[: row.index("</tr>")]
            assert "Points: a weighted score" in row
            assert '<span class="badge green">enabled</span>' in row
            assert "<dt>referral_converted</dt><dd>5</dd>" in row
            assert "<code>score</code>" in row
            assert "traffic-lights" in html and "referral-streak" in html
            settings = web.get("/n/riverside/plugins/traffic-lights/settings")
            assert settings.status_code == 200
            coordinator = email == world.coordinator
            assert ('name="settings.tyfcb_15"' in settings.text) is coordinator
            assert ("/plugins/points/disable" in html) is coordinator
            if not coordinator:
                assert "How many months back" in settings.text  # read-only, with the hints
                for path, data in writes:
                    assert web.post(path, data).status_code == 403, path
    with browser(world, tmp_path, world.outsider) as web:
        assert web.get("/n/riverside/plugins").status_code == 404
        assert web.get("/n/riverside/plugins/points/settings").status_code == 404
        for path, data in writes:
            assert web.post(path, data).status_code == 404, path
    assert last_position(world) == before


def test_enable_and_disable(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.coordinator) as web:
        response = web.post("/n/riverside/plugins/traffic-lights/enable", follow_redirects=False)
        assert response.status_code == 303
        enabled = recorded(world, "plugin.enabled")[-1]
        assert (enabled.plugin, enabled.settings) == ("traffic-lights", {})
        web.post("/n/riverside/plugins/points/disable")
        assert recorded(world, "plugin.disabled")[-1].plugin == "points"
        html = web.get("/n/riverside/plugins").text
        row = html[html.index('id="plugin-points"') :]
        assert '<span class="badge grey">disabled</span>' in row[: row.index("</tr>")]
        # Refused: nothing written, the reason next to the plugin.
        before = last_position(world)
        again = web.post("/n/riverside/plugins/traffic-lights/enable")
        assert again.status_code == 422
        assert (
            "already enabled" in re.search(r'id="e-plugin-traffic-lights">(.*?)</p>', again.text)[1]
        )  # type: ignore[index]
        assert web.post("/n/riverside/plugins/points/disable").status_code == 422
        assert web.post("/n/riverside/plugins/no-such/enable").status_code == 404
        assert web.get("/n/riverside/plugins/no-such/settings").status_code == 404
        assert last_position(world) == before


def test_the_settings_form_is_generated_from_the_settings_struct(
    world: World, tmp_path: Path
) -> None:
    with browser(world, tmp_path, world.coordinator) as web:
        lights = web.get("/n/riverside/plugins/traffic-lights/settings").text
        notes = web.get("/n/riverside/plugins/notifications/settings").text
        fees = web.get("/n/riverside/plugins/fees/settings").text
        credit = web.get("/n/riverside/plugins/attribution/settings").text
        tiers = web.get("/n/riverside/plugins/threshold-tiers/settings").text
    # One input per field, typed, with its default and its docstring as the hint.
    assert value_of(lights, "settings.tyfcb_15") == "5000"
    assert 'name="settings.window_months" type="number" value="6"' in lights
    assert "a whole number · default 6 · How many months back" in lights
    assert "Enable with these settings" in lights  # not enabled yet
    assert 'name="settings.inbox" type="checkbox" value="true" checked' in notes
    assert 'name="settings.email" type="checkbox" value="true"\n' in notes
    assert '<textarea id="f-settings.events" name="settings.events"' in notes
    assert "referral.converted" in notes
    assert "a decimal number; leave empty for none" in fees  # revenue_share_cap
    assert "a fraction: 0.10 is 10 %" in fees  # the comment beside default_rate
    assert '<select id="f-settings.default_kind"' in fees
    assert '<option value="revenue_share">' in fees
    assert '<option value="first" selected>first</option>' in credit
    assert "&#34;threshold&#34;: &#34;40&#34;" in tiers  # the ladder as JSON
    assert "Save settings" in tiers  # enabled


def test_a_refused_setting_is_shown_next_to_its_field_and_nothing_is_written(
    world: World, tmp_path: Path
) -> None:
    before = last_position(world)
    with browser(world, tmp_path, world.coordinator) as web:
        response = web.post(
            "/n/riverside/plugins/traffic-lights/settings",
            {"settings.tyfcb_5": "1000", "settings.tyfcb_10": "2500", "settings.tyfcb_15": "100",
             "settings.window_months": "6"},
        )  # fmt: skip
        assert response.status_code == 422
        assert "must be above tyfcb_10 (2500)" in error_of(response.text, "settings.tyfcb_15")
        assert value_of(response.text, "settings.tyfcb_15") == "100"  # as typed
        response = web.post(
            "/n/riverside/plugins/points/settings", {"settings.referral_given": "-1"}
        )
        assert "must be zero or more" in error_of(response.text, "settings.referral_given")
        response = web.post(
            "/n/riverside/plugins/points/settings", {"settings.recency_days": "soon"}
        )
        assert "Expected `int | null`" in error_of(response.text, "settings.recency_days")
        response = web.post(
            "/n/riverside/plugins/fees/settings", {"settings.tier_bonuses": "{gold: 10"}
        )
        assert "not valid JSON" in error_of(response.text, "settings.tier_bonuses")
        response = web.post(
            "/n/riverside/plugins/threshold-tiers/settings",
            {"settings.ladder": '[{"name": "a", "threshold": "5"}, {"name": "b"}]'},
        )
        reason = error_of(response.text, "settings.ladder")
        assert reason == "[1].threshold: required field is missing"
    assert last_position(world) == before
    assert recorded(world, "plugin.configured") == []


def test_a_good_setting_is_recorded_and_changes_the_standings(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.coordinator) as web:
        form = {"settings.referral_given": "3", "settings.referral_converted": "5",
                "settings.per_1000_converted_value": "1", "settings.introduction": "2",
                "settings.recency_days": "", "settings.recency_floor": "0.5"}  # fmt: skip
        response = web.post("/n/riverside/plugins/points/settings", form, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/n/riverside/plugins?saved=points"
        configured = recorded(world, "plugin.configured")
        assert [(c.plugin, c.settings) for c in configured] == [
            ("points", {"referral_given": "3"})  # only what differs from the defaults
        ]
        assert "Settings of points saved." in web.get("/n/riverside/plugins?saved=points").text
        assert value_of(web.get("/n/riverside/plugins/points/settings").text,
                        "settings.referral_given") == "3"  # fmt: skip
        # A plugin not enabled yet is enabled with its settings.
        web.post("/n/riverside/plugins/traffic-lights/settings", {"settings.window_months": "3"})
        enabled = recorded(world, "plugin.enabled")[-1]
        assert (enabled.plugin, enabled.settings) == ("traffic-lights", {"window_months": 3})
        web.post("/n/riverside/plugins/traffic-lights/disable")
        caught_up(world)
        # ann-law's one referral of 2025-Q1 is worth 3 points now.
        page = web.get("/n/riverside/members/ann-law").text
        data = re.search(r'id="data-history">(.*?)</script>', page)
        assert data is not None
        history = json.loads(data[1])
        assert (history["labels"][0], history["scores"][0]) == ("2025-Q1", "3")


def test_hints_come_from_field_docstrings_and_comments() -> None:
    class Example(msgspec.Struct, kw_only=True):
        """An example."""

        level: int = 1
        """How loud."""
        rate: Decimal = Decimal("0.1")  # a fraction
        tags: tuple[str, ...] = ()
        mode: str | None = None

    assert field_docs(Example) == {"level": "How loud.", "rate": "a fraction"}
    fields = {f.name: f for f in settings_form(Example)}
    assert fields["level"].kind == "number" and fields["level"].integer
    assert fields["level"].hint == "a whole number · default 1 · How loud."
    assert fields["rate"].kind == "decimal"
    assert fields["tags"].kind == "json" and fields["tags"].default == []
    assert fields["mode"].optional and fields["mode"].kind == "text"
