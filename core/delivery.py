"""Delivering notifications: a worker that follows the log after events are recorded.

Recording an event never waits for a notification. :class:`Deliveries`
follows the log from the last position it processed (``collect``): for each
event it asks the network's enabled plugins for their messages
(``partnerledger_notify``) and queues them as *pending deliveries*; the
messages of a batch of events and the new position are written in one
transaction, so a crash never loses or duplicates a delivery. ``deliver``
then attempts every due pending delivery: an inbox message becomes a row of
the member's inbox, an email goes over SMTP, a webhook is POSTed with httpx.
A failed attempt is retried with exponential backoff; after ``max_attempts``
the delivery is ``failed``. Every attempt is recorded on the delivery row,
and one failing channel, recipient or plugin never stops the others.

Plugins are asked with the network's plugins *as of the event* (a plugin
enabled later does not notify about history; one disabled stops notifying),
and with a lookup of the current state (members' contacts...).

The tables live in the event store's database, beside the log (which they
never touch): ``partnerledger_delivery_position``, ``partnerledger_deliveries``
and ``partnerledger_inbox``.

Webhooks and emails are delivered at least once: a worker that crashes after
sending but before recording retries later (the ``X-Partnerledger-Delivery``
header lets a receiver drop the duplicate). Inbox messages are delivered
exactly once.
"""

from __future__ import annotations

import os
import smtplib
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from string import Template
from typing import Any, Literal

import httpx

from .domain import Network
from .errors import DomainError, InvalidCommand, NotFound, StoreUnavailable
from .events import Event
from .ledger import Ledger, UnitOfWork, utc_now
from .pluginmanager import PluginFailed, Rules
from .projection import NETWORK_TOPICS, apply_network, chunks, networks_until
from .rules import Message
from .sql import PostgresBackend, SqlBackend, connect
from .store import Database

SMTP_ENV = "PARTNERLEDGER_SMTP"
MAIL_FROM_ENV = "PARTNERLEDGER_MAIL_FROM"
DEFAULT_SMTP = ("127.0.0.1", 25)
DEFAULT_MAIL_FROM = "partnerledger@localhost"
DELIVERY_HEADER = "X-Partnerledger-Delivery"

Status = Literal["pending", "delivered", "failed"]
STATUSES: tuple[Status, ...] = ("pending", "delivered", "failed")
_ERROR_LENGTH = 2000
DELIVERY_COLUMNS = (
    "id",
    "position",
    "command_id",
    "network",
    "plugin",
    "plugin_version",
    "channel",
    "recipient",
    "subject",
    "body",
    "headers",
    "status",
    "attempts",
    "last_error",
    "created_at",
    "next_attempt_at",
    "delivered_at",
)


class DeliveryError(Exception):
    """One attempt failed (the reason is recorded on the delivery)."""


@dataclass
class DeliveryReport:
    """What one ``deliver`` run did."""

    attempted: int = 0
    delivered: int = 0
    retrying: int = 0  # failed this time, will be tried again
    failed: int = 0  # failed for good (max attempts reached)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "attempted": self.attempted,
            "delivered": self.delivered,
            "retrying": self.retrying,
            "failed": self.failed,
            "errors": self.errors,
        }


@dataclass(frozen=True)
class InboxMessage:
    """One message of a member's in-app inbox."""

    id: int
    network: str
    member: str
    subject: str
    body: str
    position: int
    created_at: datetime
    read_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "id": self.id,
            "network": self.network,
            "member": self.member,
            "subject": self.subject,
            "body": self.body,
            "position": self.position,
            "created_at": self.created_at.isoformat(),
            "read_at": self.read_at.isoformat() if self.read_at else None,
        }


@dataclass(frozen=True)
class _Row:
    """A delivery about to be queued."""

    position: int
    command_id: str
    network: str
    plugin: str
    plugin_version: str
    channel: str
    recipient: str
    subject: str
    body: str
    headers: dict[str, str]
    status: Status
    last_error: str | None = None


def smtp_from_env(env: dict[str, str] | None = None) -> tuple[str, int]:
    """``PARTNERLEDGER_SMTP`` (``host:port``), else 127.0.0.1:25."""
    value = (env if env is not None else os.environ).get(SMTP_ENV, "").strip()
    if not value:
        return DEFAULT_SMTP
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidCommand(SMTP_ENV, f"expected host:port, got {value!r}")
    return host.strip("[]"), int(port)


def backoff_delay(attempts: int, base: float, cap: float) -> timedelta:
    """Wait after the ``attempts``-th failed attempt: ``base * 2 ** (attempts - 1)``, capped."""
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), cap))


# --------------------------------------------------------------- the worker


class Deliveries:
    """The delivery queue and the inboxes, in the event store's database.

    ``backoff`` is the wait after the first failed attempt (doubled after
    each further one, at most ``max_backoff``); after ``max_attempts``
    failed attempts a delivery is ``failed``. ``lease`` is how long a
    delivery being attempted is hidden from other workers.
    """

    def __init__(
        self,
        database: Database,
        *,
        backoff: float = 2.0,
        max_backoff: float = 3600.0,
        max_attempts: int = 8,
        lease: float = 300.0,
        batch: int = 500,
    ) -> None:
        if max_attempts < 1:
            raise InvalidCommand("max_attempts", "must be at least 1")
        self.database = database
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_attempts = max_attempts
        self.lease = timedelta(seconds=lease)
        self.batch = max(batch, 1)
        self._db: SqlBackend = connect(database)
        #: What the SQL templates name: the tables (schema-qualified) and column types.
        self._names = {
            "position": self._db.table("partnerledger_delivery_position"),
            "deliveries": self._db.table("partnerledger_deliveries"),
            "inbox": self._db.table("partnerledger_inbox"),
            "serial": self._db.serial,
            "timestamp": self._db.timestamp,
            "json": self._db.json_type,
        }
        try:
            self._create_tables()
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        """Release the connection."""
        self._db.close()

    def __enter__(self) -> Deliveries:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, sql: str, params: Sequence[Any] = ()) -> tuple[int, list[tuple[Any, ...]]]:
        """Run one statement; ``$deliveries``... name the tables, ``?`` the parameters."""
        return self._db.execute(Template(sql).substitute(self._names), params)

    def _create_tables(self) -> None:
        db = self._db
        statements = [
            """CREATE TABLE IF NOT EXISTS $position (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                position BIGINT NOT NULL,
                updated_at $timestamp
            )""",
            """CREATE TABLE IF NOT EXISTS $deliveries (
                id $serial,
                position BIGINT NOT NULL,
                command_id TEXT NOT NULL,
                network TEXT NOT NULL,
                plugin TEXT NOT NULL,
                plugin_version TEXT NOT NULL,
                channel TEXT NOT NULL,
                recipient TEXT NOT NULL,
                subject TEXT NOT NULL,
                body TEXT NOT NULL,
                headers $json NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
                attempts INTEGER NOT NULL DEFAULT 0,
                last_error TEXT,
                created_at $timestamp NOT NULL,
                next_attempt_at $timestamp NOT NULL,
                delivered_at $timestamp,
                UNIQUE (position, plugin, channel, recipient)
            )""",
            """CREATE INDEX IF NOT EXISTS partnerledger_deliveries_due
                ON $deliveries (status, next_attempt_at)""",
            """CREATE TABLE IF NOT EXISTS $inbox (
                id $serial,
                delivery_id BIGINT NOT NULL UNIQUE,
                network TEXT NOT NULL,
                member TEXT NOT NULL,
                subject TEXT NOT NULL,
                body TEXT NOT NULL,
                position BIGINT NOT NULL,
                created_at $timestamp NOT NULL,
                read_at $timestamp
            )""",
            """CREATE INDEX IF NOT EXISTS partnerledger_inbox_member
                ON $inbox (network, member, id)""",
            """INSERT INTO $position (id, position) VALUES (1, 0)
                ON CONFLICT DO NOTHING""",
        ]
        with db.transaction():
            if isinstance(db, PostgresBackend):
                # Concurrent CREATE TABLE IF NOT EXISTS can collide in the catalog.
                self._run("SELECT pg_advisory_xact_lock(?)", (0x70617274,))
            for statement in statements:
                self._run(statement)

    # -- collecting -------------------------------------------------------

    def position(self) -> int:
        """The last log position whose messages are queued."""
        _, rows = self._run("SELECT position FROM $position WHERE id = 1")
        return int(rows[0][0]) if rows else 0

    def collect(self, ledger: Ledger, now: datetime | None = None) -> int:
        """Queue the messages of every event recorded since the last call; returns how many.

        Reads the log after the stored position in batches; each batch's
        deliveries and the new position are written in one transaction. A
        plugin that fails is recorded as a ``failed`` delivery on channel
        ``plugin`` with its error, and the other plugins' messages are queued.
        Returns early (having queued what it did) when another worker
        advanced the position meanwhile.
        """
        now = now or utc_now()
        rules = ledger.rules
        notifiers = {
            impl.plugin_name for impl in rules.pm.hook.partnerledger_notify.get_hookimpls()
        }
        position = self.position()
        networks = networks_until(ledger.store, position)
        enabled: dict[str, tuple[int, dict[str, Any], list[_Problem]]] = {}
        queued = 0
        for batch in chunks(ledger.store.read(after=position, page=self.batch), self.batch):
            work = ledger.unit_of_work()
            rows: list[_Row] = []
            for at, event in batch:
                if event.type in NETWORK_TOPICS:
                    apply_network(networks, event)
                network = networks.get(event.network)
                if network is None or not network.plugins.keys() & notifiers:
                    continue
                settings, problems = _enabled(rules, network, notifiers, enabled)
                rows.extend(_failure(at, event, problem) for problem in problems)
                rows.extend(_messages(rules, work, at, event, settings))
            last = batch[-1][0]
            with self._db.transaction():
                moved, _ = self._run(
                    "UPDATE $position SET position = ?, updated_at = ? "
                    "WHERE id = 1 AND position = ?",
                    (last, self._db.ts(now), position),
                )
                if moved != 1:
                    return queued  # another worker queued this batch: nothing written here
                queued += self._insert(rows, now)
            position = last
        return queued

    def _insert(self, rows: Iterable[_Row], now: datetime) -> int:
        inserted = 0
        stamp = self._db.ts(now)
        for row in rows:
            count, _ = self._run(
                """INSERT INTO $deliveries (position, command_id, network, plugin,
                    plugin_version, channel, recipient, subject, body, headers, status, attempts,
                    last_error, created_at, next_attempt_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)
                ON CONFLICT DO NOTHING""",
                (
                    row.position,
                    row.command_id,
                    row.network,
                    row.plugin,
                    row.plugin_version,
                    row.channel,
                    row.recipient,
                    row.subject,
                    row.body,
                    self._db.json_in(row.headers),
                    row.status,
                    row.last_error,
                    stamp,
                    stamp,
                ),
            )
            inserted += max(count, 0)
        return inserted

    # -- delivering -------------------------------------------------------

    def deliver(
        self,
        now: datetime | None = None,
        *,
        smtp: tuple[str, int] | None = None,
        sender: str | None = None,
        timeout: float = 5.0,
    ) -> DeliveryReport:
        """Attempt every pending delivery that is due at ``now``.

        ``smtp`` defaults to ``PARTNERLEDGER_SMTP`` (``host:port``, else
        127.0.0.1:25) and ``sender`` to ``PARTNERLEDGER_MAIL_FROM`` (else
        ``partnerledger@localhost``); ``timeout`` bounds each connection.
        """
        now = now or utc_now()
        report = DeliveryReport()
        channels = _Channels(
            smtp or smtp_from_env(),
            sender or os.environ.get(MAIL_FROM_ENV) or DEFAULT_MAIL_FROM,
            timeout,
        )
        _, top = self._run("SELECT MAX(id) FROM $deliveries")
        upper = int(top[0][0] or 0)
        last = 0
        try:
            while last < upper:
                _, due = self._run(
                    """SELECT id, position, network, channel, recipient, subject, body, headers,
                        attempts FROM $deliveries
                    WHERE status = 'pending' AND next_attempt_at <= ? AND id > ? AND id <= ?
                    ORDER BY id LIMIT ?""",
                    (self._db.ts(now), last, upper, self.batch),
                )
                if not due:
                    break
                for row in due:
                    last = int(row[0])
                    self._attempt(row, now, channels, report)
        finally:
            channels.close()
        return report

    def _attempt(
        self, row: tuple[Any, ...], now: datetime, channels: _Channels, report: DeliveryReport
    ) -> None:
        id_, position, network, channel, recipient, subject, body, headers, attempts = row
        # Claim it: another worker running now skips it until the lease ends.
        claimed, _ = self._run(
            "UPDATE $deliveries SET next_attempt_at = ? "
            "WHERE id = ? AND status = 'pending' AND next_attempt_at <= ?",
            (self._db.ts(now + self.lease), id_, self._db.ts(now)),
        )
        if claimed != 1:
            return
        report.attempted += 1
        try:
            if channel == "inbox":
                self._to_inbox(id_, position, network, recipient, subject, body, now)
            else:
                if channel == "email":
                    channels.email(recipient, subject, body, self._db.json_out(headers), id_)
                elif channel == "webhook":
                    channels.webhook(recipient, body, self._db.json_out(headers), id_)
                else:
                    raise DeliveryError(f"unknown channel {channel!r}")
                self._run(
                    "UPDATE $deliveries SET status = 'delivered', "
                    "attempts = ?, delivered_at = ?, last_error = NULL WHERE id = ?",
                    (int(attempts) + 1, self._db.ts(now), id_),
                )
        except StoreUnavailable:
            raise
        except Exception as error:
            self._failed(id_, channel, recipient, int(attempts) + 1, error, now, report)
            return
        report.delivered += 1

    def _to_inbox(
        self,
        id_: int,
        position: int,
        network: str,
        member: str,
        subject: str,
        body: str,
        now: datetime,
    ) -> None:
        stamp = self._db.ts(now)
        with self._db.transaction():
            self._run(
                """INSERT INTO $inbox
                    (delivery_id, network, member, subject, body, position, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
                (id_, network, member, subject, body, position, stamp),
            )
            self._run(
                "UPDATE $deliveries SET status = 'delivered', "
                "attempts = attempts + 1, delivered_at = ?, last_error = NULL WHERE id = ?",
                (stamp, id_),
            )

    def _failed(
        self,
        id_: int,
        channel: str,
        recipient: str,
        attempts: int,
        error: Exception,
        now: datetime,
        report: DeliveryReport,
    ) -> None:
        reason = f"{type(error).__name__}: {error}"[:_ERROR_LENGTH]
        final = attempts >= self.max_attempts
        retry_at = now + backoff_delay(attempts, self.backoff, self.max_backoff)
        self._run(
            "UPDATE $deliveries SET status = ?, attempts = ?, last_error = ?, "
            "next_attempt_at = ? WHERE id = ?",
            ("failed" if final else "pending", attempts, reason, self._db.ts(retry_at), id_),
        )
        if final:
            report.failed += 1
        else:
            report.retrying += 1
        report.errors.append(
            {
                "id": id_,
                "channel": channel,
                "recipient": recipient,
                "attempts": attempts,
                "error": reason,
                "final": final,
            }
        )

    # -- reading ----------------------------------------------------------

    def inbox(self, network: str, member: str, unread_only: bool = False) -> list[InboxMessage]:
        """A member's inbox, newest first."""
        _, rows = self._run(
            """SELECT id, network, member, subject, body, position, created_at, read_at
            FROM $inbox WHERE network = ? AND member = ? AND (? OR read_at IS NULL)
            ORDER BY id DESC""",
            (network, member, not unread_only),
        )
        return [
            InboxMessage(
                id=int(r[0]),
                network=r[1],
                member=r[2],
                subject=r[3],
                body=r[4],
                position=int(r[5]),
                created_at=self._db.dt(r[6]),
                read_at=self._db.dt(r[7]) if r[7] is not None else None,
            )
            for r in rows
        ]

    def mark_read(self, id: int, now: datetime | None = None) -> bool:
        """Mark an inbox message read; ``False`` if it already was. NotFound on ``id``."""
        stamp = self._db.ts(now or utc_now())
        changed, _ = self._run(
            "UPDATE $inbox SET read_at = ? WHERE id = ? AND read_at IS NULL",
            (stamp, id),
        )
        if changed:
            return True
        _, found = self._run("SELECT 1 FROM $inbox WHERE id = ?", (id,))
        if not found:
            raise NotFound("id", f"no inbox message {id}")
        return False

    def status_counts(self) -> dict[str, int]:
        """How many deliveries are pending, delivered and failed."""
        _, rows = self._run("SELECT status, COUNT(*) FROM $deliveries GROUP BY status")
        counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        counts.update({str(status): int(n) for status, n in rows})
        return counts

    def deliveries(
        self, *, status: Status | None = None, channel: str | None = None
    ) -> list[dict[str, Any]]:
        """The recorded deliveries (oldest first), optionally of one status or channel."""
        _, rows = self._run(
            """SELECT id, position, command_id, network, plugin, plugin_version, channel,
                recipient, subject, body, headers, status, attempts, last_error, created_at,
                next_attempt_at, delivered_at
            FROM $deliveries
            WHERE (CAST(? AS TEXT) IS NULL OR status = ?)
                AND (CAST(? AS TEXT) IS NULL OR channel = ?)
            ORDER BY id""",
            (status, status, channel, channel),
        )
        names = DELIVERY_COLUMNS
        found = []
        for row in rows:
            record = dict(zip(names, row, strict=True))
            record["headers"] = self._db.json_out(record["headers"])
            for key in ("created_at", "next_attempt_at", "delivered_at"):
                if record[key] is not None:
                    record[key] = self._db.dt(record[key])
            found.append(record)
        return found


# ------------------------------------------------------------ the channels


class _Channels:
    """The SMTP connection and the HTTP client of one ``deliver`` run, opened on first use."""

    def __init__(self, smtp: tuple[str, int], sender: str, timeout: float) -> None:
        self.smtp_address = smtp
        self.sender = sender
        self.timeout = timeout
        self._smtp: smtplib.SMTP | None = None
        self._http: httpx.Client | None = None

    def email(
        self, to: str, subject: str, body: str, headers: dict[str, str], delivery: int
    ) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = format_datetime(utc_now())
        message["Message-ID"] = make_msgid(domain="partnerledger")
        message[DELIVERY_HEADER] = str(delivery)
        for name, value in headers.items():
            if name not in message:
                message[name] = value
        message.set_content(body)
        reused = self._smtp is not None
        try:
            refused = self._connection().send_message(message)
        except smtplib.SMTPServerDisconnected:
            # The server may close an idle connection between two messages: reconnect once.
            self._drop_smtp()
            if not reused:
                raise
            try:
                refused = self._connection().send_message(message)
            except Exception:
                self._drop_smtp()
                raise
        except Exception:
            self._drop_smtp()
            raise
        if refused:
            raise DeliveryError(f"recipient refused: {refused}")

    def webhook(self, url: str, body: str, headers: dict[str, str], delivery: int) -> None:
        if not url.startswith(("http://", "https://")):
            raise DeliveryError(f"not an http(s) URL: {url!r}")
        if self._http is None:
            self._http = httpx.Client(timeout=self.timeout, follow_redirects=False)
        response = self._http.post(
            url, content=body.encode(), headers={**headers, DELIVERY_HEADER: str(delivery)}
        )
        if not response.is_success:
            raise DeliveryError(f"HTTP {response.status_code} {response.reason_phrase}")

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            host, port = self.smtp_address
            self._smtp = smtplib.SMTP(host, port, timeout=self.timeout)
        return self._smtp

    def _drop_smtp(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.close()
            finally:
                self._smtp = None

    def close(self) -> None:
        if self._smtp is not None:
            with suppress(smtplib.SMTPException, OSError):
                self._smtp.quit()
            self._drop_smtp()
        if self._http is not None:
            self._http.close()
            self._http = None


@dataclass(frozen=True)
class _Problem:
    plugin: str
    plugin_version: str
    reason: str


def _enabled(
    rules: Rules,
    network: Network,
    notifiers: set[str],
    cache: dict[str, tuple[int, dict[str, Any], list[_Problem]]],
) -> tuple[dict[str, Any], list[_Problem]]:
    """The network's enabled notifying plugins with their settings, and settings problems."""
    key = network.id.hex
    cached = cache.get(key)
    if cached is not None and cached[0] == network.version:
        return cached[1], cached[2]
    settings: dict[str, Any] = {}
    problems: list[_Problem] = []
    for name, raw in network.plugins.items():
        if name not in notifiers:
            continue
        try:
            settings[name] = rules.settings(name, raw)
        except DomainError as error:
            reason = f"settings rejected: {error.field}: {error.reason}"
            problems.append(_Problem(name, _version(rules, name), reason))
    cache[key] = (network.version, settings, problems)
    return settings, problems


def _version(rules: Rules, name: str) -> str:
    version = getattr(rules.plugin(name), "VERSION", None)
    return version if isinstance(version, str) else "0"


def _failure(position: int, event: Event, problem: _Problem) -> _Row:
    """The record of a plugin that failed on an event: a failed delivery on channel ``plugin``."""
    return _Row(
        position=position,
        command_id=event.command_id,
        network=event.network,
        plugin=problem.plugin,
        plugin_version=problem.plugin_version,
        channel="plugin",
        recipient="",
        subject=f"plugin {problem.plugin} failed on {event.type}",
        body=problem.reason,
        headers={},
        status="failed",
        last_error=problem.reason,
    )


def _messages(
    rules: Rules, work: UnitOfWork, position: int, event: Event, enabled: dict[str, Any]
) -> list[_Row]:
    """The deliveries of one event: each plugin's messages, or its failure."""
    rows: list[_Row] = []
    for name, settings in enabled.items():
        try:
            decisions, failures = rules.notify(event, work, {name: settings})
        except Exception as error:  # a plugin returning something that is not a list...
            reason = f"plugin {name!r} failed: {type(error).__name__}: {error}"
            failures, decisions = [PluginFailed("plugin", reason)], []
        for failure in failures:
            rows.append(
                _failure(position, event, _Problem(name, _version(rules, name), failure.reason))
            )
        for decision in decisions:
            message = decision.value
            assert isinstance(message, Message)
            rows.append(
                _Row(
                    position=position,
                    command_id=event.command_id,
                    network=event.network,
                    plugin=decision.plugin,
                    plugin_version=decision.version,
                    channel=str(message.channel),
                    recipient=str(message.to),
                    subject=str(message.subject),
                    body=str(message.body),
                    headers={str(k): str(v) for k, v in dict(message.headers).items()},
                    status="pending",
                )
            )
    return rows
