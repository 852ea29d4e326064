"""The dashboard: key figures, the charts' data for a known history, the network graph, roles."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from partnerledger import Database, Ledger, Store
from partnerledger.web import dashboard
from webkit import World, browser, build_world, caught_up, command

#: "Now" for the time-dependent figures: 13 days after the last referral.
NOW = datetime(2025, 4, 15, 12, tzinfo=UTC)


def at(month: int, day: int) -> datetime:
    return datetime(2025, month, day, 9, tzinfo=UTC)


@pytest.fixture
def world(database_url: str) -> World:
    built = build_world(database_url)
    caught_up(built)
    return built


@pytest.fixture
def history(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """Riverside with four months of referrals, a conversion, a reversal and a third member."""
    net = "riverside"
    with Store(Database.parse(world.database_url)) as store:
        Ledger(store).execute(
            command("network.tiers_set", net, tiers=[{"name": "bronze", "threshold": "0"},
                                                     {"name": "silver", "threshold": "5"}]),
            command("member.joined", net, member="cara-flowers", name="Cara Flowers",
                    category="florist"),
            command("referral.sent", net, referral="r-4", from_member="cara-flowers",
                    to_member="bob-tax", customer="Eve", occurred_at=at(1, 7)),
            command("referral.accepted", net, referral="r-1", occurred_at=at(1, 10)),
            command("referral.converted", net, referral="r-1", deal_value="1000",
                    currency="USD", occurred_at=at(2, 3)),
            command("referral.reversed", net, referral="r-1", amount="250", reason="refund",
                    occurred_at=at(3, 5)),
            command("referral.sent", net, referral="r-2", from_member="bob-tax",
                    to_member="ann-law", customer="Finn", occurred_at=at(3, 10)),
            command("referral.sent", net, referral="r-3", from_member="ann-law",
                    to_member="bob-tax", customer="Gus", occurred_at=at(4, 2)),
            command("referral.declined", net, referral="r-3", occurred_at=at(4, 3)),
        )  # fmt: skip
    caught_up(world)
    monkeypatch.setattr(dashboard, "now", lambda: NOW)
    return world


def chart_data(html: str, name: str) -> Any:
    """The JSON block a chart is drawn from."""
    found = re.search(
        rf'<script type="application/json" id="data-{name}">(.*?)</script>', html, re.S
    )
    assert found, f"no data block for {name}"
    return json.loads(found[1])


def edge(html: str, source: str, target: str) -> str:
    """The SVG line of one direction of the network graph."""
    found = re.search(
        rf'<line class="[^"]*"\s+data-from="{source}" data-to="{target}".*?</line>', html, re.S
    )
    assert found, f"no edge {source} → {target}"
    return found[0]


def test_charts_and_figures_follow_the_history(history: World, tmp_path: Path) -> None:
    with browser(history, tmp_path, history.coordinator) as web:
        response = web.get("/n/riverside/")
    assert response.status_code == 200
    html = response.text
    # Converted value: 1000 converted in February, 250 reversed in March; each in its month.
    assert chart_data(html, "monthly") == {
        "labels": ["2025-01", "2025-02", "2025-03", "2025-04"],
        "referrals": [2, 0, 1, 1],
        "conversions": [0, 1, 0, 0],
        "converted_value": ["0.00", "1000.00", "-250.00", "0.00"],
        "currency": "USD",
    }
    assert chart_data(html, "funnel") == {
        "labels": ["Sent", "Accepted", "Converted"],
        "values": [4, 1, 1],
    }
    # Points: ann-law 1 referral + 5 for the conversion + 0.75 for 750 converted = 6.75 in Q1.
    assert chart_data(html, "tiers") == {
        "labels": ["2025-Q1", "2025-Q2"],
        "closed": [False, False],
        "datasets": [{"label": "bronze", "data": [2, 3]}, {"label": "silver", "data": [1, 0]}],
    }
    # Key figures and the text alternatives.
    assert '3</span> <span class="muted">of 3 in the network' in html
    assert "25.0%" in html
    assert "750.00 USD" in html
    assert '<th scope="row">2025-03</th><td class="num">1</td><td class="num">0</td>' in html
    assert "-250.00 USD" in html
    assert "<details>" in html and "Data table: Conversion funnel" in html
    assert "/static/vendor/chart.umd.min.js" in html and "/static/dashboard.js" in html
    assert "<script>" not in html  # no inline code: only JSON blocks


def test_the_network_graph_marks_dormant_and_one_sided_ties(history: World, tmp_path: Path) -> None:
    with browser(history, tmp_path, history.member) as web:
        html = web.get("/n/riverside/").text
    # ann-law ⇄ bob-tax: both ways, last referral 13 days before now: neither flag.
    both = edge(html, "ann-law", "bob-tax")
    assert 'class="edge"' in both and "stroke-dasharray" not in both
    assert 'stroke-width="6.0"' in both  # the most referrals: the widest
    assert "Ann Law → Bob Tax: 2 referrals sent, 1 converted</title>" in both
    back = edge(html, "bob-tax", "ann-law")
    assert 'stroke-width="3.75"' in back
    # cara-flowers → bob-tax: one way only, quiet for 98 days: dashed, in the warning colour.
    quiet = edge(html, "cara-flowers", "bob-tax")
    assert 'class="edge dormant one-sided"' in quiet
    assert 'stroke-dasharray="6 4"' in quiet
    assert f'stroke="{dashboard.WARN_COLOUR}"' in quiet
    assert "dormant (98 days without an interaction), one-sided" in quiet
    assert html.count('<line class="edge') == 3
    assert html.count('<g class="node active"') == 3
    # The legend and the data table say the same.
    assert "dormant tie (no interaction for 90 days or more)" in html
    flags = '<span class="badge warn">one-sided</span> <span class="badge warn">dormant</span>'
    assert flags in html


def test_every_role_of_the_network_reads_the_dashboard(world: World, tmp_path: Path) -> None:
    for email in (world.coordinator, world.member, world.auditor):
        with browser(world, tmp_path, email) as web:
            response = web.get("/n/riverside/")
            assert response.status_code == 200, email
            assert "Riverside Chamber" in response.text
    with browser(world, tmp_path, world.outsider) as web:
        response = web.get("/n/riverside/")
        assert response.status_code == 404
        assert "Ann Law" not in response.text
        # The outsider's own network shows only its own members.
        own = web.get("/n/harbor/").text
        assert "Secret Harbor Co" in own and "Ann Law" not in own
        assert chart_data(own, "monthly")["currency"] == "GBP"
    with browser(world, tmp_path) as web:
        assert web.get("/n/riverside/", follow_redirects=False).status_code == 302


def test_a_network_without_history_has_an_empty_dashboard(world: World, tmp_path: Path) -> None:
    with Store(Database.parse(world.database_url)) as store:
        Ledger(store).execute(command("network.created", "quiet", name="Quiet", currency="EUR"))
    caught_up(world)
    with browser(world, tmp_path, world.admin) as web:
        web.post("/admin/roles", {"network": "quiet", "email": world.admin, "role": "auditor"})
        html = web.get("/n/quiet/").text
    assert chart_data(html, "funnel")["values"] == [0, 0, 0]
    assert chart_data(html, "tiers") == {"labels": [], "closed": [], "datasets": []}
    assert "No members yet." in html


def test_money_and_rates_are_shown_exactly() -> None:
    assert dashboard.money_text(Decimal("20000"), "USD") == "20,000.00 USD"
    assert dashboard.money_text(Decimal("-0.005"), "GBP") == "-0.01 GBP"
    assert dashboard.percent(1, 3) == "33.3%"
    assert dashboard.percent(0, 0) == "—"


def test_the_charts_are_drawn_in_a_real_browser(tmp_path: Path) -> None:
    """dashboard.js draws every chart with the vendored Chart.js, with no error in the page."""
    from browser_support import chromium, need_chromium, serve
    from webkit import PASSWORD

    need_chromium()
    world = build_world(str(tmp_path / "ledger.db"))
    with serve(world.database_url, tmp_path / "sessions") as url, chromium() as opened:
        page = opened.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on(
            "response",
            lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )
        page.goto(f"{url}/login")
        page.get_by_label("Email").fill(world.coordinator)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{url}/n/riverside/**")
        drawn = (
            "() => [...document.querySelectorAll('canvas[data-chart]')]"
            ".filter(c => window.Chart && Chart.getChart(c)).length"
        )
        page.wait_for_function(f"({drawn})() === 3")
        kinds = page.evaluate(
            "() => [...document.querySelectorAll('canvas[data-chart]')]"
            ".map(c => Chart.getChart(c).config.type)"
        )
        assert kinds == ["bar", "bar", "bar"]
        assert page.locator("svg.graph line.edge").count() == 1
        page.goto(f"{url}/n/riverside/members/ann-law")
        page.wait_for_function(f"({drawn})() === 1")
        page.close()
    assert problems == []
