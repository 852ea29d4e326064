"""Signing in, CSRF, sessions, the login rate limit, API tokens and the administration."""

from __future__ import annotations

from pathlib import Path

import pytest

from partnerledger import Database
from partnerledger.accounts import Accounts
from webkit import PASSWORD, World, browser, build_world


@pytest.fixture
def world(database_url: str) -> World:
    return build_world(database_url)


def test_pages_need_a_sign_in(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path) as web:
        response = web.get("/", follow_redirects=False)
        assert response.status_code == 302
        assert response.headers["location"] == "/login?next=/"
        assert web.get("/healthz").json()["status"] == "ok"
        assert web.get("/static/vendor/htmx.min.js").status_code == 200


def test_sign_in_goes_to_the_only_network_and_out(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path) as web:
        response = web.post(
            "/login", {"email": world.coordinator.upper(), "password": PASSWORD,
                       "next": "/account/tokens"}, follow_redirects=False,
        )  # fmt: skip
        assert response.headers["location"] == "/account/tokens"
        assert web.get("/", follow_redirects=False).headers["location"] == "/n/riverside/"
        web.post("/logout", follow_redirects=False)
        assert web.get("/", follow_redirects=False).status_code == 302


def test_a_wrong_password_is_refused_and_never_leaves_the_site(
    world: World, tmp_path: Path
) -> None:
    with browser(world, tmp_path) as web:
        response = web.post("/login", {"email": world.member, "password": "nope nope nope"})
        assert response.status_code == 401
        assert "the email or the password is wrong" in response.text
        assert 'aria-invalid="true"' in response.text
        response = web.post(
            "/login", {"email": world.member, "password": PASSWORD, "next": "//evil.example/"},
            follow_redirects=False,
        )  # fmt: skip
        assert response.headers["location"] == "/"


def test_login_rate_limit(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path) as web:
        for _ in range(5):
            assert (
                web.post("/login", {"email": world.auditor, "password": "x" * 12}).status_code
                == 401
            )
        # Even the right password is refused while the window lasts.
        response = web.post("/login", {"email": world.auditor, "password": PASSWORD})
        assert response.status_code == 429
        assert "Too many failed sign-ins" in response.text
        # Another account is not locked.
        web.sign_in(world.member)


def test_forms_without_the_csrf_token_are_refused(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.member) as web:
        response = web.client.post("/account/tokens", data={"name": "sneaky"})
        assert response.status_code == 403
        assert web.get("/account/tokens").text.count("sneaky") == 0


def test_api_tokens_are_shown_once_stored_hashed_and_revocable(
    world: World, tmp_path: Path
) -> None:
    with browser(world, tmp_path, world.member) as web:
        bad = web.post("/account/tokens", {"name": "  "})
        assert bad.status_code == 422 and "must not be empty" in bad.text
        page = web.post("/account/tokens", {"name": "crm sync"})
        assert page.status_code == 200
        secret = page.text.split('<code class="secret">')[1].split("<")[0]
        assert secret.startswith("plt_")
        assert secret not in web.get("/account/tokens").text
        with Accounts(Database.parse(world.database_url)) as accounts:
            user = accounts.user_for_token(secret)
            assert user is not None and user.email == world.member
            _, rows = accounts.db.execute(
                f"SELECT token_hash FROM {accounts.db.table('partnerledger_api_tokens')}"
            )
            assert secret not in {r[0] for r in rows}
            [token] = accounts.tokens(user.id)
        web.post(f"/account/tokens/{token.id}/revoke")
        with Accounts(Database.parse(world.database_url)) as accounts:
            assert accounts.user_for_token(secret) is None


def test_admin_creates_a_network_with_its_coordinator(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.member) as web:
        assert web.get("/admin").status_code == 403
    with browser(world, tmp_path, world.admin) as web:
        bad = web.post("/admin/networks", {
            "network": "lakeside", "name": "Lakeside", "currency": "usd",
            "coordinator_email": "lee@lakeside.example", "coordinator_password": "long enough pw",
        })  # fmt: skip
        assert bad.status_code == 422
        assert "currency" in bad.text and 'id="e-currency"' in bad.text
        short = web.post("/admin/networks", {
            "network": "lakeside", "name": "Lakeside", "currency": "USD",
            "coordinator_email": "lee@lakeside.example", "coordinator_password": "short",
        })  # fmt: skip
        assert short.status_code == 422 and 'id="e-coordinator_password"' in short.text
        assert "lakeside" not in web.get("/admin").text.split("<h2>People")[0]  # nothing written
        done = web.post("/admin/networks", {
            "network": "lakeside", "name": "Lakeside", "currency": "USD",
            "coordinator_email": "lee@lakeside.example", "coordinator_name": "Lee",
            "coordinator_password": "long enough pw",
        }, follow_redirects=False)  # fmt: skip
        assert done.status_code in (302, 303)
        assert "coordinator of lakeside" in web.get("/admin").text
    with browser(world, tmp_path) as web:
        web.sign_in("lee@lakeside.example", "long enough pw")
        assert web.get("/", follow_redirects=False).headers["location"] == "/n/lakeside/"


def test_a_user_is_read_with_their_roles_in_one_query(database_url: str) -> None:
    """``user`` and ``user_for_token`` read the user and their roles in one query (a
    join): the same user, grants and all, as reading each table on its own gives."""
    with Accounts(Database.parse(database_url)) as accounts:
        lone = accounts.create_user("lone@example.com", "Lone", "a long password 1")
        many = accounts.create_user("many@example.com", "Many", "a long password 2")
        accounts.grant(many.id, "zeta", "coordinator")
        accounts.grant(many.id, "alpha", "member", "alpha-co")
        accounts.grant(many.id, "mid", "auditor")

        def by_tables(user_id: int) -> tuple[object, ...]:
            t = accounts.db.table
            _, rows = accounts.db.execute(
                f"SELECT id, email, name, site_admin FROM {t('partnerledger_users')} WHERE id = ?",
                (user_id,),
            )
            _, grants = accounts.db.execute(
                f"SELECT network, role, member FROM {t('partnerledger_roles')} WHERE user_id = ?",
                (user_id,),
            )
            (uid, email, name, admin) = rows[0]
            return (int(uid), email, name, bool(admin), sorted(tuple(g) for g in grants))

        for user in (lone, many):
            found = accounts.user(user.id)
            assert found is not None
            assert (found.id, found.email, found.name, found.site_admin, sorted(
                (g.network, g.role, g.member) for g in found.grants.values()
            )) == by_tables(user.id)  # fmt: skip
        assert list(accounts.user(many.id).grants) == ["alpha", "mid", "zeta"]  # type: ignore[union-attr]
        assert accounts.user(lone.id).grants == {}  # type: ignore[union-attr]
        assert accounts.user(10**9) is None
        secret, token = accounts.create_token(many.id, "sync")
        assert accounts.user_for_token(secret) == accounts.user(many.id)
        assert accounts.user_for_token(secret + "x") is None
        accounts.revoke_token(many.id, token.id)
        assert accounts.user_for_token(secret) is None
