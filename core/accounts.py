"""Accounts: who may sign in, their role in each network, and their API tokens.

Accounts are not part of the partner network's history, so they are kept in
tables of their own beside the log, never as events: a password hash has no
place in an append-only record that auditors export.

* A **user** signs in with an email and a password, hashed with Argon2id
  (``argon2-cffi``); a hash made with older parameters is upgraded at the
  next sign-in. A *site administrator* creates networks and coordinators.
* A **role** ties a user to a network: ``coordinator`` (runs it), ``member``
  (acts for one business of it: ``member`` names the slug) or ``auditor``
  (reads everything of it, changes nothing). A user may hold roles in
  several networks, one per network.
* An **API token** is shown once when created and stored only as its
  SHA-256; it can be revoked.
* **Sign-in attempts** are counted per key (an email, an address): after
  ``limit`` failures within ``window`` seconds, more attempts are refused
  until the window has passed.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .errors import AlreadyExists, InvalidCommand, NotFound
from .ledger import utc_now
from .sql import PostgresBackend, SqlBackend, connect
from .store import Database

Role = Literal["coordinator", "member", "auditor"]
ROLES: tuple[Role, ...] = ("coordinator", "member", "auditor")
MIN_PASSWORD = 10
TOKEN_PREFIX = "plt_"  # noqa: S105  # marks a token, not a secret
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# PostgreSQL advisory lock taken while creating the tables: a key of its own.
# 0x70617274 is the deliveries', 0x70617275 the views' tables' and 0x70617276
# the one following worker's, held as long as it runs: sharing that one made
# `serve` hang at startup beside a running `partnerledger worker`.
_LOCK = 0x70617277

_hasher = PasswordHasher()


@dataclass(frozen=True)
class Grant:
    """A user's role in one network."""

    network: str
    role: Role
    member: str | None = None  # the business a member acts for


@dataclass(frozen=True)
class User:
    """A person who can sign in."""

    id: int
    email: str
    name: str
    site_admin: bool
    grants: dict[str, Grant] = field(default_factory=dict)  # network → grant

    def role_in(self, network: str) -> Role | None:
        """The user's role in a network, or ``None``."""
        grant = self.grants.get(network)
        return grant.role if grant else None


@dataclass(frozen=True)
class Token:
    """An API token (its secret is never stored)."""

    id: int
    user_id: int
    name: str
    created_at: datetime
    revoked_at: datetime | None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    """Users, roles, API tokens and sign-in attempts, in the store's database."""

    def __init__(self, database: Database, clock: Callable[[], datetime] = utc_now) -> None:
        self.db: SqlBackend = connect(database)
        self._clock = clock
        try:
            self._create()
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        """Release the connection."""
        self.db.close()

    def __enter__(self) -> Accounts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _t(self, name: str) -> str:
        return self.db.table(name)

    def _create(self) -> None:
        ts, serial = self.db.timestamp, self.db.serial
        with self.db.transaction():
            if isinstance(self.db, PostgresBackend):
                self.db.execute("SELECT pg_advisory_xact_lock(?)", (_LOCK,))
            for statement in (
                f"""CREATE TABLE IF NOT EXISTS {self._t("partnerledger_users")} (
                    id {serial}, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
                    password_hash TEXT NOT NULL, site_admin INTEGER NOT NULL DEFAULT 0,
                    created_at {ts} NOT NULL)""",
                f"""CREATE TABLE IF NOT EXISTS {self._t("partnerledger_roles")} (
                    user_id BIGINT NOT NULL, network TEXT NOT NULL, role TEXT NOT NULL,
                    member TEXT, PRIMARY KEY (user_id, network))""",
                f"""CREATE INDEX IF NOT EXISTS partnerledger_roles_network
                    ON {self._t("partnerledger_roles")} (network, role)""",
                f"""CREATE TABLE IF NOT EXISTS {self._t("partnerledger_api_tokens")} (
                    id {serial}, user_id BIGINT NOT NULL, name TEXT NOT NULL,
                    token_hash TEXT NOT NULL UNIQUE, created_at {ts} NOT NULL,
                    revoked_at {ts})""",
                f"""CREATE TABLE IF NOT EXISTS {self._t("partnerledger_login_failures")} (
                    key TEXT NOT NULL, failed_at {ts} NOT NULL)""",
                f"""CREATE INDEX IF NOT EXISTS partnerledger_login_failures_key
                    ON {self._t("partnerledger_login_failures")} (key, failed_at)""",
            ):
                self.db.execute(statement)

    # -- users ------------------------------------------------------------

    def create_user(
        self, email: str, name: str, password: str, *, site_admin: bool = False
    ) -> User:
        """Create a user; refuses a bad email, a short password or an email in use."""
        self.check_new_user(email, name, password)
        email = email.strip().lower()
        self.db.execute(
            f"INSERT INTO {self._t('partnerledger_users')} "
            "(email, name, password_hash, site_admin, created_at) VALUES (?, ?, ?, ?, ?)",
            (email, name.strip(), _hasher.hash(password), 1 if site_admin else 0,
             self.db.ts(self._clock())),
        )  # fmt: skip
        found = self.by_email(email)
        assert found is not None
        return found

    def check_new_user(self, email: str, name: str, password: str, prefix: str = "") -> None:
        """Refuse what :meth:`create_user` would refuse, writing nothing (fields get ``prefix``)."""
        email = email.strip().lower()
        if not _EMAIL.match(email):
            raise InvalidCommand(f"{prefix}email", f"{email!r} is not an email address")
        if not name.strip():
            raise InvalidCommand(f"{prefix}name", "must not be empty")
        if len(password) < MIN_PASSWORD:
            raise InvalidCommand(f"{prefix}password", f"must be at least {MIN_PASSWORD} characters")
        if self._row_by_email(email) is not None:
            raise AlreadyExists(f"{prefix}email", f"{email} already has an account")

    def _row_by_email(self, email: str) -> tuple[int, str] | None:
        _, rows = self.db.execute(
            f"SELECT id, password_hash FROM {self._t('partnerledger_users')} WHERE email = ?",
            (email.strip().lower(),),
        )
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def user(self, user_id: int) -> User | None:
        """A user with their roles, or ``None``."""
        return self._user_where("u.id = ?", (user_id,))

    def _user_where(self, where: str, params: tuple[Any, ...], join: str = "") -> User | None:
        """The user a condition names, with their roles: one query (a page or an API
        call authenticates on every request; on PostgreSQL each query is a round trip)."""
        _, rows = self.db.execute(  # our own tables, by name
            "SELECT u.id, u.email, u.name, u.site_admin, r.network, r.role, r.member "
            f"FROM {self._t('partnerledger_users')} u{join} "
            f"LEFT JOIN {self._t('partnerledger_roles')} r ON r.user_id = u.id "
            f"WHERE {where} ORDER BY r.network",
            params,
        )
        if not rows:
            return None
        row = rows[0]
        return User(
            id=int(row[0]),
            email=str(row[1]),
            name=str(row[2]),
            site_admin=bool(row[3]),
            grants={str(n): Grant(str(n), r, m) for *_, n, r, m in rows if n is not None},
        )

    def by_email(self, email: str) -> User | None:
        """The user with this email, or ``None``."""
        found = self._row_by_email(email)
        return self.user(found[0]) if found else None

    def users(self) -> list[User]:
        """Every user, by email."""
        _, rows = self.db.execute(f"SELECT id FROM {self._t('partnerledger_users')} ORDER BY email")
        return [u for u in (self.user(int(r[0])) for r in rows) if u is not None]

    def authenticate(self, email: str, password: str) -> User | None:
        """The user if the password is right, else ``None`` (upgrades old hashes)."""
        found = self._row_by_email(email)
        if found is None:
            # Spend the same time as a real check, so timing does not reveal accounts.
            _hasher.hash(password)
            return None
        user_id, stored = found
        try:
            _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if _hasher.check_needs_rehash(stored):
            self.db.execute(
                f"UPDATE {self._t('partnerledger_users')} SET password_hash = ? WHERE id = ?",
                (_hasher.hash(password), user_id),
            )
        return self.user(user_id)

    def set_password(self, user_id: int, password: str) -> None:
        """Replace a user's password."""
        if len(password) < MIN_PASSWORD:
            raise InvalidCommand("password", f"must be at least {MIN_PASSWORD} characters")
        self.db.execute(
            f"UPDATE {self._t('partnerledger_users')} SET password_hash = ? WHERE id = ?",
            (_hasher.hash(password), user_id),
        )

    # -- roles ------------------------------------------------------------

    def grant(self, user_id: int, network: str, role: str, member: str | None = None) -> Grant:
        """Give a user a role in a network (replacing any role they held there)."""
        if role not in ROLES:
            raise InvalidCommand("role", f"{role!r} is not one of {', '.join(ROLES)}")
        if (role == "member") != (member is not None):
            raise InvalidCommand(
                "member", "a member role names its business; other roles name none"
            )
        if self.user(user_id) is None:
            raise NotFound("user", f"no user {user_id}")
        self.db.execute(
            f"""INSERT INTO {self._t("partnerledger_roles")} (user_id, network, role, member)
            VALUES (?, ?, ?, ?) ON CONFLICT (user_id, network) DO UPDATE
            SET role = excluded.role, member = excluded.member""",
            (user_id, network, role, member),
        )
        return Grant(network, role, member)

    def revoke(self, user_id: int, network: str) -> None:
        """Take a user's role in a network away."""
        self.db.execute(
            f"DELETE FROM {self._t('partnerledger_roles')} WHERE user_id = ? AND network = ?",
            (user_id, network),
        )

    def people(self, network: str) -> list[tuple[User, Grant]]:
        """Every user with a role in a network."""
        _, rows = self.db.execute(
            f"SELECT user_id FROM {self._t('partnerledger_roles')} WHERE network = ?",
            (network,),
        )
        found = [self.user(int(r[0])) for r in rows]
        return sorted(
            ((u, u.grants[network]) for u in found if u is not None), key=lambda p: p[0].email
        )

    # -- API tokens -------------------------------------------------------

    def create_token(self, user_id: int, name: str) -> tuple[str, Token]:
        """A new token for a user: the secret (shown once) and its record."""
        if not name.strip():
            raise InvalidCommand("name", "must not be empty")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.db.execute(
            f"INSERT INTO {self._t('partnerledger_api_tokens')} "
            "(user_id, name, token_hash, created_at) VALUES (?, ?, ?, ?)",
            (user_id, name.strip(), _token_hash(secret), self.db.ts(self._clock())),
        )
        _, rows = self.db.execute(
            f"SELECT id FROM {self._t('partnerledger_api_tokens')} WHERE token_hash = ?",
            (_token_hash(secret),),
        )
        token = self.token(int(rows[0][0]))
        assert token is not None
        return secret, token

    def token(self, token_id: int) -> Token | None:
        """A token's record."""
        _, rows = self.db.execute(
            f"SELECT id, user_id, name, created_at, revoked_at "
            f"FROM {self._t('partnerledger_api_tokens')} WHERE id = ?",
            (token_id,),
        )
        if not rows:
            return None
        row = rows[0]
        return Token(
            int(row[0]), int(row[1]), str(row[2]), self.db.dt(row[3]),
            self.db.dt(row[4]) if row[4] is not None else None,
        )  # fmt: skip

    def tokens(self, user_id: int) -> list[Token]:
        """A user's tokens, newest first."""
        _, rows = self.db.execute(
            f"SELECT id FROM {self._t('partnerledger_api_tokens')} WHERE user_id = ? "
            "ORDER BY id DESC",
            (user_id,),
        )
        return [t for t in (self.token(int(r[0])) for r in rows) if t is not None]

    def revoke_token(self, user_id: int, token_id: int) -> None:
        """Revoke one of the user's tokens."""
        count, _ = self.db.execute(
            f"UPDATE {self._t('partnerledger_api_tokens')} SET revoked_at = ? "
            "WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
            (self.db.ts(self._clock()), token_id, user_id),
        )
        if count != 1:
            raise NotFound("token", f"no active token {token_id}")

    def user_for_token(self, secret: str) -> User | None:
        """The user a valid, unrevoked token belongs to."""
        return self._user_where(
            "t.token_hash = ? AND t.revoked_at IS NULL",
            (_token_hash(secret),),
            join=f" JOIN {self._t('partnerledger_api_tokens')} t ON t.user_id = u.id",
        )

    # -- sign-in attempts -------------------------------------------------

    def failed_login(self, key: str) -> None:
        """Count a failed sign-in for a key (an email or an address)."""
        self.db.execute(
            f"INSERT INTO {self._t('partnerledger_login_failures')} (key, failed_at) VALUES (?, ?)",
            (key, self.db.ts(self._clock())),
        )

    def locked_out(self, key: str, limit: int = 5, window: float = 300.0) -> bool:
        """Whether a key reached ``limit`` failures within the last ``window`` seconds."""
        since = self._clock() - timedelta(seconds=window)
        _, rows = self.db.execute(
            f"SELECT COUNT(*) FROM {self._t('partnerledger_login_failures')} "
            "WHERE key = ? AND failed_at >= ?",
            (key, self.db.ts(since)),
        )
        return int(rows[0][0]) >= limit

    def clear_failures(self, key: str) -> None:
        """Forget a key's failures (after a successful sign-in)."""
        self.db.execute(
            f"DELETE FROM {self._t('partnerledger_login_failures')} WHERE key = ?", (key,)
        )


__all__ = ["ROLES", "Accounts", "Grant", "Role", "Token", "User"]
