"""Security headers on every response, and sessions rotated at sign-in and dropped at sign-out."""

from __future__ import annotations

from pathlib import Path

import pytest

from partnerledger.web.security import SECURITY_HEADERS
from webkit import World, browser, build_world


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(str(tmp_path / "ledger.db"))


@pytest.mark.parametrize(
    "path",
    [
        "/login",
        "/static/app.css",
        "/schema",
        "/healthz",
        "/n/riverside/",
        "/nowhere",
        "/api/v1/networks",
    ],
)
def test_every_response_carries_the_security_headers(
    world: World, tmp_path: Path, path: str
) -> None:
    with browser(world, tmp_path, world.coordinator) as web:
        response = web.get(path)
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (path, name)


def test_the_policy_allows_no_inline_script_and_no_framing() -> None:
    policy = dict(
        part.strip().split(" ", 1)
        for part in SECURITY_HEADERS["content-security-policy"].split(";")
    )
    assert policy["script-src"] == "'self'"
    assert "unsafe" not in SECURITY_HEADERS["content-security-policy"]
    assert policy["frame-ancestors"] == "'none'"
    assert SECURITY_HEADERS["x-content-type-options"] == "nosniff"
    assert SECURITY_HEADERS["referrer-policy"] == "same-origin"


def test_no_page_template_holds_inline_script_or_style() -> None:
    templates = Path(__file__).resolve().parents[1] / "web" / "templates"
    for template in templates.glob("*.html"):
        text = template.read_text()
        for script in text.split("<script")[1:]:
            head = script.split(">", 1)[0]
            # data islands are allowed: they are not executed
            assert "src=" in head or 'type="application/json"' in head, template.name
        assert " onclick=" not in text and " onload=" not in text, template.name
        assert " style=" not in text and "<style" not in text, template.name


def test_the_session_gets_a_new_identifier_at_sign_in(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path) as web:
        web.sign_in(world.member)
        first = web.client.cookies.get("session")
        assert first and first != "null"
        # someone who planted or stole that identifier gains nothing from the next sign-in
        web.sign_in(world.coordinator)
        second = web.client.cookies.get("session")
        assert second and second not in (first, "null")
        web.client.cookies.set("session", first)
        assert web.get("/n/riverside/", follow_redirects=False).status_code in (302, 303, 401)


def test_sign_out_drops_the_session_on_the_server(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.coordinator) as web:
        session = web.client.cookies.get("session")
        assert web.get("/n/riverside/").status_code == 200
        web.post("/logout", follow_redirects=False)
        web.client.cookies.set("session", session)  # replaying the old cookie
        assert web.get("/n/riverside/", follow_redirects=False).status_code in (302, 303, 401)
