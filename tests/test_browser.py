"""The pages that matter, in a real headless chromium (Playwright), against a real server.

One server and one browser for the module; a fresh browser context (its own
cookies) per test. Each test drives the pages as a user does: labels,
buttons and links by their accessible names, and asserts what the user
sees change.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest

from browser_support import chromium, need_chromium, serve
from partnerledger import Database, Ledger, Store
from partnerledger.commands import convert_command
from webkit import PASSWORD, START, World, build_world

RIVERSIDE_NAMES = ("Ann Law", "ann-law", "Bob Tax", "Dana Whitfield", "Riverside Chamber")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, World]]:
    need_chromium()
    folder = tmp_path_factory.mktemp("browser")
    world = build_world(str(folder / "ledger.db"))
    with Store(Database.parse(world.database_url)) as store:
        # An agreement waiting for bob-tax's acceptance: a detail page with actions to refuse.
        Ledger(store).execute(*(
            convert_command({"network": "riverside", "actor": "setup", "occurred_at": START,
                             "agreement": "a-1", **fields})
            for fields in (
                {"type": "agreement.proposed", "kind": "referral",
                 "parties": ["ann-law", "bob-tax"], "terms": {"scope": "Estate clients"}},
                {"type": "agreement.accepted", "party": "ann-law"},
            )
        ))  # fmt: skip
    with serve(world.database_url, folder / "sessions") as url:
        yield url, world


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    need_chromium()
    with chromium() as opened:
        yield opened


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) for one test."""
    opened = browser.new_context()
    opened.set_default_timeout(10_000)
    try:
        yield opened
    finally:
        opened.close()


def sign_in(context: Any, url: str, email: str) -> Any:
    page = context.new_page()
    page.goto(f"{url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("networkidle")
    return page


def go(page: Any, network: str, label: str) -> None:
    """Follow a link of the network's navigation."""
    page.get_by_role("navigation", name=network).get_by_role("link", name=label).click()
    page.wait_for_load_state("networkidle")


def column(page: Any, status: str) -> Any:
    """A column of the pipeline (its heading reads "Sent (2)")."""
    return page.get_by_role("region", name=re.compile(rf"^{status} \(\d+\)$"))


def card(page: Any, status: str, customer: str) -> Any:
    """The card of a referral (by its customer) in a pipeline column."""
    return (
        column(page, status)
        .get_by_role("listitem")
        .filter(has=page.get_by_role("heading", name=customer, exact=True))
    )


def score_of(page: Any, name: str) -> Decimal:
    """A member's score in the standings table, as shown."""
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=re.compile(name)))
    return Decimal(row.get_by_role("cell").first.inner_text().strip())


def mark(page: Any) -> None:
    """Leave a mark in the page's window: it survives htmx swaps, not a page load."""
    page.evaluate("window.__kept = true")


def kept(page: Any) -> bool:
    return bool(page.evaluate("window.__kept === true"))


def described_by(field: Any) -> str:
    """The text of the elements a field's aria-describedby names (its hint and error)."""
    text: str = field.evaluate(
        "el => (el.getAttribute('aria-describedby') || '').split(/\\s+/).filter(Boolean)"
        ".map(id => document.getElementById(id)?.textContent || '').join(' ')"
    )
    return " ".join(text.split())


def test_sign_in_and_out(site: tuple[str, World], context: Any) -> None:
    url, world = site
    page = context.new_page()
    page.goto(f"{url}/")
    assert page.url.startswith(f"{url}/login")
    page.get_by_label("Email").fill(world.coordinator)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_text("the email or the password is wrong").is_visible()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{url}/n/riverside/**")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{url}/login")


def test_coordinator_sends_and_converts_a_referral(site: tuple[str, World], context: Any) -> None:
    from playwright.sync_api import expect

    url, world = site
    page = sign_in(context, url, world.coordinator)
    go(page, "riverside", "Pipeline")
    expect(page.get_by_role("heading", name="Referral pipeline")).to_be_visible()
    mark(page)

    send = page.get_by_role("region", name="Send a referral")
    send.get_by_label("From", exact=True).select_option("ann-law")
    send.get_by_label("To", exact=True).select_option("bob-tax")
    send.get_by_label("Customer (the lead)").fill("Ellis Moore")
    send.get_by_label("Note").fill("needs an estate plan")
    send.get_by_role("button", name="Send referral").click()
    sent = card(page, "Sent", "Ellis Moore")
    expect(sent).to_be_visible()
    expect(sent).to_contain_text("Ann Law")
    expect(sent).to_contain_text("Bob Tax")
    expect(page.get_by_label("Customer (the lead)")).to_have_value("")  # the form is fresh again
    assert kept(page), "sending reloaded the page instead of swapping the pipeline"

    # The standings of the period the referral was sent in, before its conversion.
    go(page, "riverside", "Standings")
    expect(page.get_by_role("heading", name=re.compile(r"^Standings · "))).to_be_visible()
    period = page.get_by_label("Period", exact=True).input_value()
    before = score_of(page, "Ann Law")

    go(page, "riverside", "Pipeline")
    mark(page)
    card(page, "Sent", "Ellis Moore").get_by_role(
        "button", name="Accept referral of Ellis Moore"
    ).click()
    accepted = card(page, "Accepted", "Ellis Moore")
    expect(accepted).to_be_visible()
    expect(card(page, "Sent", "Ellis Moore")).to_have_count(0)

    # A refused conversion: the error next to the deal value, nothing changed, no reload.
    accepted.get_by_text("Record conversion").first.click()  # opens the <details>
    value = accepted.get_by_label("Deal value")
    value.fill("-5")
    accepted.get_by_role("button", name="Record conversion").click()
    accepted = card(page, "Accepted", "Ellis Moore")
    value = accepted.get_by_label("Deal value")
    expect(value).to_have_attribute("aria-invalid", "true")
    expect(value).to_have_value("-5")  # what was typed, to correct
    error = accepted.get_by_role("alert")
    expect(error).to_have_text(re.compile("must be greater than zero"))
    assert described_by(value) == error.inner_text().strip()  # announced with the field
    expect(card(page, "Converted", "Ellis Moore")).to_have_count(0)
    assert kept(page), "a refused conversion reloaded the page"

    value.fill("3000")
    accepted.get_by_role("button", name="Record conversion").click()
    converted = card(page, "Converted", "Ellis Moore")
    expect(converted).to_be_visible()
    expect(converted).to_contain_text("3,000.00 USD")
    expect(card(page, "Accepted", "Ellis Moore")).to_have_count(0)
    assert kept(page)

    # The same period's standings count the conversion: 5 points and 3 per 1,000 of value.
    go(page, "riverside", "Standings")
    expect(page.get_by_label("Period", exact=True)).to_have_value(period)
    after = score_of(page, "Ann Law")
    assert after - before == Decimal(8), (before, after)
    ann = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=re.compile("Ann")))
    expect(ann).to_contain_text("referrals_converted: 5")


def test_coordinator_closes_a_period(site: tuple[str, World], context: Any) -> None:
    from playwright.sync_api import expect

    url, world = site
    page = sign_in(context, url, world.coordinator)
    go(page, "riverside", "Standings")
    page.get_by_label("Period", exact=True).select_option("2025-Q1")
    page.get_by_role("button", name="Show").click()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_role("heading", name="Standings · 2025-Q1")).to_be_visible()
    expect(page.get_by_text("provisional", exact=True).first).to_be_visible()
    close = page.get_by_role("region", name="Period close")
    expect(close).to_contain_text("2025-Q1 has ended and is not closed yet.")

    # A preview writes nothing: cancelling leaves the period open.
    close.get_by_role("link", name="Preview the close of 2025-Q1").click()
    expect(page.get_by_role("heading", name="Close 2025-Q1")).to_be_visible()
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("heading", name="Standings · 2025-Q1")).to_be_visible()
    expect(page.get_by_role("region", name="Period close")).to_contain_text("not closed yet")

    page.get_by_role("link", name="Preview the close of 2025-Q1").click()
    expect(page.get_by_role("heading", name="Close 2025-Q1")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Nothing is written until you confirm")
    decisions = page.get_by_role("table", name="Tier decisions")
    expect(decisions.get_by_role("rowheader", name=re.compile("Ann Law"))).to_be_visible()
    expect(decisions.get_by_role("rowheader", name=re.compile("Bob Tax"))).to_be_visible()

    page.get_by_role("button", name="Confirm: close 2025-Q1").click()
    page.wait_for_url(re.compile(r"/n/riverside/standings\?period=2025-Q1$"))
    expect(page.get_by_role("heading", name="Standings · 2025-Q1")).to_be_visible()
    expect(page.get_by_text("closed", exact=True).first).to_be_visible()
    expect(page.get_by_role("region", name="Period close")).to_contain_text("2025-Q1 is closed.")
    expect(page.get_by_role("link", name="Preview the close of 2025-Q1")).to_have_count(0)
    expect(page.get_by_label("Period", exact=True).locator("option:checked")).to_have_text(
        "2025-Q1 (closed)"
    )
    members = page.get_by_role("table", name="Members in 2025-Q1")
    for row in members.get_by_role("row").all()[1:]:
        expect(row.get_by_role("cell").nth(5)).to_have_text("closed")


def test_a_refused_plugin_setting_is_shown_and_not_saved(
    site: tuple[str, World], context: Any
) -> None:
    from playwright.sync_api import expect

    url, world = site
    page = sign_in(context, url, world.coordinator)
    go(page, "riverside", "Plugins")
    page.get_by_role("link", name="Settings of points").click()
    expect(page.get_by_role("heading", name=re.compile(r"^points"))).to_be_visible()
    weight = page.get_by_label("referral_given")
    expect(weight).to_have_value("1")

    weight.fill("-3")
    page.get_by_role("button", name="Save settings").click()
    page.wait_for_load_state("networkidle")
    weight = page.get_by_label("referral_given")
    expect(weight).to_have_attribute("aria-invalid", "true")
    expect(weight).to_have_value("-3")  # what was typed, to correct
    assert "must be zero or more" in described_by(weight), described_by(weight)
    expect(page.get_by_text("Nothing was saved")).to_be_visible()
    expect(page.get_by_label("referral_converted")).not_to_have_attribute("aria-invalid", "true")

    page.get_by_role("link", name="All plugins").click()
    expect(page.get_by_text("Settings of points saved")).to_have_count(0)
    page.get_by_role("link", name="Settings of points").click()
    expect(page.get_by_label("referral_given")).to_have_value("1")
    expect(page.get_by_label("referral_given")).not_to_have_attribute("aria-invalid", "true")


def _writes(page: Any) -> list[str]:
    """What on the page could change something: post forms (but Sign out) and htmx writes."""
    found: list[str] = page.evaluate(
        """() => [
          ...[...document.querySelectorAll('form')]
              .filter(f => (f.getAttribute('method') || 'get').toLowerCase() !== 'get'
                           && f.getAttribute('action') !== '/logout')
              .map(f => 'form ' + f.getAttribute('action')),
          ...[...document.querySelectorAll('[hx-post],[hx-put],[hx-patch],[hx-delete]')]
              .map(e => e.tagName + ' ' + e.outerHTML.slice(0, 80)),
        ]"""
    )
    return found


def test_the_auditor_finds_no_way_to_change_anything(site: tuple[str, World], context: Any) -> None:
    url, world = site
    page = sign_in(context, url, world.auditor)
    nav = page.get_by_role("navigation", name="riverside").get_by_role("link")
    sections = [str(link.get_attribute("href")) for link in nav.all()]
    assert {"/n/riverside/", "/n/riverside/referrals", "/n/riverside/standings"} <= set(sections)

    visited: dict[str, list[str]] = {}
    details: list[str] = []
    for href in sections:
        response = page.goto(url + href)
        assert response is not None and response.status == 200, href
        visited[href] = _writes(page)
        for link in page.locator("main a[href^='/n/riverside/']:not([download])").all():
            target = str(link.get_attribute("href"))
            if urlsplit(target).path.endswith(".csv") or target in sections:
                continue
            if target not in details:
                details.append(target)
    assert any("/members/ann-law" in d for d in details), details
    assert any("/agreements/a-1" in d for d in details), details
    assert any("entity=referral" in d for d in details), details
    assert any("/plugins/points/settings" in d for d in details), details
    for href in details:
        response = page.goto(url + href)
        assert response is not None and response.status == 200, href
        visited[href] = _writes(page)
    assert {href: found for href, found in visited.items() if found} == {}

    # The pages offer nothing; a post crafted with a valid CSRF token is refused too.
    page.goto(f"{url}/n/riverside/referrals")
    token = page.locator("form[action='/logout'] input[name='_csrf_token']").get_attribute("value")
    attempts = {
        "/n/riverside/referrals": {"from_member": "ann-law", "to_member": "bob-tax",
                                   "customer": "Sneaky"},
        "/n/riverside/referrals/r-1/accept": {},
        "/n/riverside/tyfcb": {"member": "bob-tax", "thanked_member": "ann-law",
                               "amount": "10"},
        "/n/riverside/members": {"member": "eve-co", "name": "Eve Co", "category": "x"},
        "/n/riverside/members/ann-law/suspend": {"reason": "no"},
        "/n/riverside/agreements/a-1/accept": {"party": "bob-tax"},
        "/n/riverside/periods/2025-Q2/close": {},
        "/n/riverside/plugins/points/settings": {"settings.referral_given": "9"},
        "/n/riverside/plugins/points/disable": {},
        "/n/riverside/tiers": {"tiers": "gold 0"},
        "/n/riverside/payouts": {"member": "ann-law", "amount": "1"},
    }  # fmt: skip
    for path, fields in attempts.items():
        response = page.request.post(url + path, form={**fields, "_csrf_token": str(token)})
        assert response.status == 403, (path, response.status)
        assert "the auditor role in riverside cannot do this" in response.text(), path
    page.goto(f"{url}/n/riverside/referrals")
    assert card(page, "Sent", "Dana Whitfield").count() == 1
    assert page.get_by_text("Sneaky").count() == 0


def test_an_outsider_sees_nothing_of_another_network(site: tuple[str, World], context: Any) -> None:
    from playwright.sync_api import expect

    url, world = site
    page = sign_in(context, url, world.outsider)
    page.wait_for_url(f"{url}/n/harbor/")
    expect(page.get_by_role("heading", name="Harbor Guild")).to_be_visible()
    links = page.get_by_role("navigation", name="harbor").get_by_role("link")
    assert all(str(a.get_attribute("href")).startswith("/n/harbor/") for a in links.all())
    assert page.get_by_role("navigation", name="riverside").count() == 0
    go(page, "harbor", "Members")
    expect(page.get_by_role("link", name="Secret Harbor Co").first).to_be_visible()
    for name in RIVERSIDE_NAMES:
        assert name not in page.content(), name

    for path in ("/", "/members", "/members/ann-law", "/referrals", "/standings", "/trail",
                 "/agreements/a-1", "/plugins", "/statements"):  # fmt: skip
        response = page.goto(f"{url}/n/riverside{path}")
        assert response is not None and response.status == 404, path
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()
        html = page.content()
        for name in RIVERSIDE_NAMES:
            assert name not in html, (path, name)
        assert page.get_by_role("navigation", name="riverside").count() == 0


@pytest.mark.parametrize("path", ["/", "/referrals"], ids=["dashboard", "pipeline"])
def test_pages_fit_a_phone(site: tuple[str, World], browser: Any, path: str) -> None:
    url, world = site
    phone = browser.new_context(viewport={"width": 375, "height": 700})
    try:
        page = sign_in(phone, url, world.coordinator)
        page.goto(f"{url}/n/riverside{path}")
        page.wait_for_load_state("networkidle")
        widths = page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1] + 1, f"{path}: the page is {widths[0]}px wide in {widths[1]}"
    finally:
        phone.close()


def test_no_page_breaks_the_content_security_policy(site: tuple[str, World], context: Any) -> None:
    """Charts, htmx and the network graph run under the strict policy: no violation reported."""
    url, world = site
    violations: list[str] = []
    page = sign_in(context, url, world.coordinator)
    page.on(
        "console",
        lambda message: (
            violations.append(message.text)
            if "Content Security Policy" in message.text or "Refused to" in message.text
            else None
        ),
    )
    for path in ("/n/riverside/", "/n/riverside/members/ann-law", "/n/riverside/referrals",
                 "/n/riverside/standings", "/n/riverside/trail", "/n/riverside/audit"):  # fmt: skip
        response = page.goto(f"{url}{path}")
        assert response is not None and response.status < 400, path
        assert "frame-ancestors 'none'" in (response.headers.get("content-security-policy") or "")
        page.wait_for_load_state("networkidle")
    assert violations == []
