"""What the web tests share: an app over a real store, a small world of users, signing in.

``world`` builds two networks: riverside (a coordinator, two members with
their accounts, an auditor) and harbor (its own coordinator), with a few
referrals, on each database. ``Browser`` wraps litestar's TestClient with
the CSRF token handling a real browser's form posts do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from partnerledger import Database, Ledger, Store
from partnerledger.accounts import Accounts
from partnerledger.commands import convert_command
from partnerledger.projection import Projector
from partnerledger.web.app import create_app

PASSWORD = "correct horse battery"
START = datetime(2025, 1, 6, 9, tzinfo=UTC)


def command(kind: str, network: str, **fields: Any) -> Any:
    fields.setdefault("occurred_at", START)
    return convert_command({"type": kind, "network": network, "actor": "setup", **fields})


@dataclass(frozen=True)
class World:
    database_url: str
    coordinator: str = "coord@riverside.example"
    member: str = "ann@riverside.example"  # acts for ann-law
    other_member: str = "bob@riverside.example"  # acts for bob-tax
    auditor: str = "audit@riverside.example"
    outsider: str = "coord@harbor.example"  # coordinator of harbor only
    admin: str = "admin@example.org"


def build_world(database_url: str) -> World:
    """Two networks, their people and a little history."""
    with Store(Database.parse(database_url)) as store:
        ledger = Ledger(store)
        ledger.execute(
            command("network.created", "riverside", name="Riverside Chamber", currency="USD",
                    period="quarter", tiers=[{"name": "bronze", "threshold": "0"},
                                             {"name": "silver", "threshold": "20"}]),
            command("plugin.enabled", "riverside", plugin="points"),
            command("plugin.enabled", "riverside", plugin="threshold-tiers"),
            command("member.joined", "riverside", member="ann-law", name="Ann Law",
                    category="lawyer"),
            command("member.joined", "riverside", member="bob-tax", name="Bob Tax",
                    category="accountant"),
            command("referral.sent", "riverside", referral="r-1", from_member="ann-law",
                    to_member="bob-tax", customer="Dana Whitfield"),
            command("network.created", "harbor", name="Harbor Guild", currency="GBP"),
            command("member.joined", "harbor", member="secret-co", name="Secret Harbor Co",
                    category="shipping"),
            command("member.joined", "harbor", member="quay-ltd", name="Quay Ltd",
                    category="docks"),
            command("referral.sent", "harbor", referral="h-1", from_member="secret-co",
                    to_member="quay-ltd", customer="Harbor Customer"),
        )  # fmt: skip
    world = World(database_url)
    with Accounts(Database.parse(database_url)) as accounts:
        for email, network, role, member in (
            (world.coordinator, "riverside", "coordinator", None),
            (world.member, "riverside", "member", "ann-law"),
            (world.other_member, "riverside", "member", "bob-tax"),
            (world.auditor, "riverside", "auditor", None),
            (world.outsider, "harbor", "coordinator", None),
        ):
            user = accounts.create_user(email, email.split("@")[0].title(), PASSWORD)
            accounts.grant(user.id, network, role, member)
        accounts.create_user(world.admin, "Admin", PASSWORD, site_admin=True)
    return world


class Browser:
    """A TestClient that signs in and sends the CSRF token with every form, like a page does."""

    def __init__(self, client: TestClient[Any]) -> None:
        self.client = client

    def token(self) -> str:
        if "csrftoken" not in self.client.cookies:
            self.client.get("/login")
        return str(self.client.cookies["csrftoken"])

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        form = {**(data or {}), "_csrf_token": self.token()}
        return self.client.post(path, data=form, **kwargs)

    def htmx(self, path: str, data: dict[str, Any] | None = None) -> Any:
        """A POST as htmx sends it: the token in the header, form fields in the body."""
        return self.client.post(
            path, data=data or {}, headers={"hx-request": "true", "x-csrftoken": self.token()}
        )

    def sign_in(self, email: str, password: str = PASSWORD) -> Any:
        response = self.post("/login", {"email": email, "password": password},
                             follow_redirects=False)  # fmt: skip
        assert response.status_code in (302, 303), response.text
        return response


@contextmanager
def browser(world: World, tmp_path: Path, email: str | None = None) -> Iterator[Browser]:
    """A client of a fresh app over the world's store, signed in as ``email``."""
    app = create_app(world.database_url, secret="test-secret", sessions=tmp_path / "sessions")
    with TestClient(app) as client:
        opened = Browser(client)
        if email is not None:
            opened.sign_in(email)
        yield opened


def record(world: World, *commands: Any) -> None:
    """Record commands on the world's store (all or nothing)."""
    with Store(Database.parse(world.database_url)) as store:
        Ledger(store).execute(*commands)


def events(world: World, kind: str | None = None) -> list[Any]:
    """The events of the world's log (of one type), oldest first."""
    with Store(Database.parse(world.database_url)) as store:
        return [e for _, e in store.read() if kind is None or e.type == kind]


def recorded(world: World, kind: str) -> list[Any]:
    """The commands of one type in the log, oldest first."""
    return [event.command for event in events(world, kind)]


def last_position(world: World) -> int:
    """The position of the last event of the world's log."""
    with Store(Database.parse(world.database_url)) as store:
        return store.last_position()


def caught_up(world: World) -> None:
    """Bring the world's views up to date, as a worker or a web process would."""
    with Store(Database.parse(world.database_url)) as store, Projector(store) as projector:
        projector.catch_up()
