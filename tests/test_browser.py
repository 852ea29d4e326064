"""The pages that matter, in a real headless chromium (Playwright), against a real server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from browser_support import chromium, need_chromium, serve
from webkit import PASSWORD, World, build_world


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, World]]:
    need_chromium()
    folder = tmp_path_factory.mktemp("browser")
    world = build_world(str(folder / "ledger.db"))
    with serve(world.database_url, folder / "sessions") as url:
        yield url, world


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    need_chromium()
    with chromium() as opened:
        yield opened


def sign_in(browser: Any, url: str, email: str) -> Any:
    page = browser.new_page()
    page.goto(f"{url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("networkidle")
    return page


def test_sign_in_and_out(site: tuple[str, World], browser: Any) -> None:
    url, world = site
    page = browser.new_page()
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
    page.close()
