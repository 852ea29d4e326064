"""One network never sees another's data: every route of the app, walked as an outsider.

The routes come from the application's own route list, so a route added
later is walked too. The outsider is the coordinator of harbor; every path
parameter is filled with a real value of riverside. Each route must answer
403 or 404 (pages and API alike), with none of riverside's data in the body,
and nothing may be written. Routes without a network in their path (the
home page, tokens, the list of networks) may answer, but must not mention
riverside.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from partnerledger import Database, Store
from partnerledger.accounts import Accounts
from webkit import World, browser, build_world

#: Text of riverside that must never reach the outsider.
SECRETS = ("Riverside Chamber", "ann-law", "bob-tax", "Ann Law", "Dana Whitfield")
#: A real riverside value for each path parameter name.
VALUES = {
    "network": "riverside",
    "member": "ann-law",
    "referral": "r-1",
    "agreement": "a-1",
    "period": "2025-Q1",
    "plugin": "points",
    "entity": "member:ann-law",
    "id": "1",
    "token_id": "999",  # not the outsider's own token (revoking it would end the walk)
}
PUBLIC = ("/login", "/logout", "/healthz", "/static", "/schema")


def _routes(app: Any) -> list[tuple[str, str]]:
    found = []
    for route in app.routes:
        path = route.path
        if path.startswith(PUBLIC):
            continue
        for handler in route.route_handlers:
            for method in sorted(getattr(handler, "http_methods", ()) or ()):
                if method in ("HEAD", "OPTIONS"):
                    continue
                found.append((method, path))
    return sorted(set(found))


def _fill(path: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        return VALUES.get(name, "x")

    return re.sub(r"\{([^}]+)\}", value, path)


@pytest.fixture
def world(database_url: str) -> World:
    return build_world(database_url)


def test_every_route_refuses_the_outsider(world: World, tmp_path: Path) -> None:
    with Accounts(Database.parse(world.database_url)) as accounts:
        outsider = accounts.by_email(world.outsider)
        assert outsider is not None
        token, _ = accounts.create_token(outsider.id, "walk")
    with Store(Database.parse(world.database_url)) as store:
        before = store.last_position()
    with browser(world, tmp_path, world.outsider) as web:
        routes = _routes(web.client.app)
        assert ("GET", "/") in routes
        walked = 0
        for method, template in routes:
            path = _fill(template)
            api = path.startswith("/api/")
            headers = {"authorization": f"Bearer {token}"} if api else {}
            if method == "GET":
                response = web.client.get(path, headers=headers, follow_redirects=False)
            elif api:
                response = web.client.request(method, path, headers=headers, json={})
            else:
                response = web.client.request(
                    method, path, data={"_csrf_token": web.token()}, follow_redirects=False
                )
            body = response.text
            leaked = [s for s in SECRETS if s in body]
            assert not leaked, f"{method} {path} shows {leaked}"
            if "{network" in template:
                assert response.status_code in (403, 404), (
                    f"{method} {path} answered {response.status_code}"
                )
            walked += 1
        assert walked == len(routes)
    with Store(Database.parse(world.database_url)) as store:
        assert store.last_position() == before
