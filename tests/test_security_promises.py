"""The security promises of docs/security.md that no other test walks in full.

* Passwords are stored as argon2id hashes, and the password itself is nowhere
  in the database.
* Every state-changing page route refuses a request without the CSRF token
  (403), signed in as the coordinator, who could otherwise make the change.
* An auditor cannot change anything through any route: every state-changing
  route of the app (pages with a valid CSRF token, the JSON API with the
  auditor's own API token) is refused, and not one row of any table changes.

The routes come from the application's own route list, so a route added
later is walked too. "Nothing changed" is checked on every table of the
database (row counts and contents), not only on the event log.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from partnerledger import Database
from partnerledger.accounts import Accounts
from partnerledger.sql import connect
from webkit import PASSWORD, World, browser, build_world

#: A real riverside value for each path parameter name.
VALUES = {
    "network": "riverside",
    "member": "ann-law",
    "referral": "r-1",
    "agreement": "a-1",
    "period": "2025-Q1",
    "plugin": "points",
    "dispute": "d-1",
    "id": "1",
    "token_id": "1",
}
#: A real action for the ``{action}`` routes, by the path's area.
ACTIONS = {"referrals": "accept", "members": "suspend", "agreements": "accept"}
#: Routes about the signed-in person's own session and account, not the network.
OWN = ("/login", "/logout", "/account/")
CHANGES = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture
def world(database_url: str) -> World:
    return build_world(database_url)


def _changing_routes(app: Any) -> list[tuple[str, str]]:
    found = set()
    for route in app.routes:
        for handler in route.route_handlers:
            for method in getattr(handler, "http_methods", ()) or ():
                if method in CHANGES:
                    found.add((method, route.path))
    return sorted(found)


def _fill(path: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        if name == "action":
            area = path.split("/")[3] if path.startswith("/n/") else ""
            return ACTIONS.get(area, "accept")
        return VALUES.get(name, "x")

    return re.sub(r"\{([^}]+)\}", value, path)


def _every_table(database_url: str) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table of the database, as sorted text."""
    database = Database.parse(database_url)
    db = connect(database)
    try:
        if database.kind == "sqlite":
            _, rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            names = [str(r[0]) for r in rows]
            quoted = {n: f'"{n}"' for n in names}
        else:
            _, rows = db.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
                (database.schema,),
            )
            names = [str(r[0]) for r in rows]
            quoted = {n: f'"{database.schema}"."{n}"' for n in names}
        tables = {}
        for name in sorted(names):
            _, found = db.execute(f"SELECT * FROM {quoted[name]}")  # names from the catalog
            tables[name] = sorted(tuple(str(v) for v in row) for row in found)
        return tables
    finally:
        db.close()


def _settled(web: Any, world: World) -> dict[str, list[tuple[str, ...]]]:
    """Every table once the app has started and brought its views up to date."""
    assert web.get("/n/riverside/").status_code == 200
    return _every_table(world.database_url)


def test_passwords_are_argon2id_hashes_and_never_stored(world: World) -> None:
    with Accounts(Database.parse(world.database_url)) as accounts:
        _, rows = accounts.db.execute(
            f"SELECT email, password_hash FROM {accounts.db.table('partnerledger_users')}"
        )
        assert rows
        for email, stored in rows:
            assert str(stored).startswith("$argon2id$"), f"{email}: {stored[:12]}..."
        assert accounts.authenticate(world.member, PASSWORD) is not None
        assert accounts.authenticate(world.member, PASSWORD + "!") is None
    for table, found in _every_table(world.database_url).items():
        assert not any(PASSWORD in cell for row in found for cell in row), table


def test_every_state_changing_page_route_needs_the_csrf_token(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.coordinator) as web:
        before = _settled(web, world)
        routes = [r for r in _changing_routes(web.client.app) if not r[1].startswith("/api/")]
        assert len(routes) > 20
        for method, template in routes:
            path = _fill(template)
            for headers in ({}, {"hx-request": "true"}, {"x-csrftoken": "forged"}):
                response = web.client.request(
                    method, path, data={"x": "1"}, headers=headers, follow_redirects=False
                )
                assert response.status_code == 403, (
                    f"{method} {path} {headers} answered {response.status_code} without a token"
                )
    assert _every_table(world.database_url) == before


def test_an_auditor_changes_nothing_through_any_route(world: World, tmp_path: Path) -> None:
    with Accounts(Database.parse(world.database_url)) as accounts:
        auditor = accounts.by_email(world.auditor)
        assert auditor is not None
        token, _ = accounts.create_token(auditor.id, "walk")
    with browser(world, tmp_path, world.auditor) as web:
        before = _settled(web, world)
        routes = [r for r in _changing_routes(web.client.app) if not r[1].startswith(OWN)]
        refused = 0
        for method, template in routes:
            path = _fill(template)
            if path.startswith("/api/"):
                response = web.client.request(
                    method, path, headers={"authorization": f"Bearer {token}"},
                    json={"referral": "r-9", "from_member": "ann-law", "to_member": "bob-tax",
                          "customer": "Someone", "reason": "walk", "deal_value": "10"},
                )  # fmt: skip
            else:
                response = web.client.request(
                    method, path, follow_redirects=False,
                    data={"_csrf_token": web.token(), "reason": "walk", "name": "Walk",
                          "member": "ann-law", "statement": "walk", "text": "walk"},
                )  # fmt: skip
            assert response.status_code in (403, 404), (
                f"{method} {path} answered {response.status_code} to the auditor"
            )
            refused += response.status_code == 403
        # The guard refuses before any lookup: nearly every route says 403, not 404.
        assert refused >= len(routes) - 3, f"only {refused} of {len(routes)} said 403"
    assert _every_table(world.database_url) == before
