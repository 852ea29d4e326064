"""Notifications, delivered for real: inbox rows, email over SMTP, signed webhooks over HTTP.

Every test runs on SQLite and PostgreSQL. The SMTP server (aiosmtpd) and the
HTTP server (http.server) listen on 127.0.0.1 only; every loop is bounded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner

import partnerledger.ledger
from partnerledger import InvalidCommand, Ledger, Store
from partnerledger.cli.main import cli
from partnerledger.commands import decode_command
from partnerledger.delivery import Deliveries, backoff_delay, smtp_from_env
from partnerledger.hookspecs import hookimpl
from partnerledger.pluginmanager import Rules, load_rules
from partnerledger.plugins import BUILTIN_PLUGINS, notifications

HISTORY = Path(__file__).parent / "data" / "riverside.jsonl"
SECRET = "s3cret-for-tests"
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def line(type_: str, at: str = "2025-01-06T09:01:00Z", **fields: object) -> bytes:
    record = {"type": type_, "network": "riverside", "actor": "coord", "occurred_at": at}
    return msgspec.json.encode({**record, **fields})


def run(ledger: Ledger, *lines: bytes) -> None:
    ledger.execute(*(decode_command(x) for x in lines))


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# ---------------------------------------------------------------- servers


class Mailbox:
    """An aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, tuple[str, int]]]:
    """A real SMTP server on 127.0.0.1 and an ephemeral port."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        yield mailbox, ("127.0.0.1", port)
    finally:
        controller.stop()


class Hook:
    """What the webhook server received, and the statuses it answers with."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []  # answered in order; 200 once exhausted
        self.url = ""


@pytest.fixture
def hook() -> Iterator[Hook]:
    """A real HTTP server on 127.0.0.1:0, in a thread."""
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append((dict(self.headers.items()), body))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the test output quiet (no access log on stderr)."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/partnerledger"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def verified(headers: dict[str, str], body: bytes) -> bool:
    """The receiver's check: the signature is the HMAC-SHA256 of the body under the secret."""
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["X-Partnerledger-Signature"], expected)


# ---------------------------------------------------------------- plugins


class Broken:
    """A notification plugin that always raises."""

    NAME = "broken"
    VERSION = "0.1"

    @hookimpl
    def partnerledger_notify(self, event: Any) -> list[Any]:
        raise RuntimeError(f"boom on {event.type}")


@pytest.fixture
def rules() -> Rules:
    # notifications is listed once it is a built-in; until then it is added here.
    builtins = [p for p in BUILTIN_PLUGINS if p is not notifications]
    return load_rules(
        builtins=[*builtins, notifications, Broken()], env={"PARTNERLEDGER_PLUGINS": ""}
    )


@pytest.fixture
def nledger(store: Store, rules: Rules) -> Ledger:
    return Ledger(store, rules=rules)


@pytest.fixture
def deliveries(store: Store) -> Iterator[Deliveries]:
    with Deliveries(store.database, backoff=10, max_backoff=3600, max_attempts=3) as opened:
        yield opened


def riverside(ledger: Ledger, **settings: object) -> None:
    """The riverside history, with notifications enabled right after the network is created."""
    first, *rest = HISTORY.read_bytes().splitlines()
    run(ledger, first, line("plugin.enabled", plugin="notifications", settings=settings))
    run(ledger, *rest)


def chapter(ledger: Ledger, **settings: object) -> None:
    """A small network: notifications enabled, two members with emails."""
    run(
        ledger,
        line("network.created", name="Riverside Chamber", currency="USD"),
        line("plugin.enabled", plugin="notifications", settings=settings),
        line(
            "member.joined",
            member="lee-law",
            name="Lee & Co. Law",
            category="lawyer",
            contact={"email": "ana@lee-law.example"},
        ),
        line(
            "member.joined",
            member="park-cpa",
            name="Park CPA",
            category="accountant",
            contact={"email": "jo@park-cpa.example"},
        ),
    )


def send_referral(ledger: Ledger, referral: str = "r-0001") -> None:
    run(
        ledger,
        line(
            "referral.sent",
            "2025-01-10T09:00:00Z",
            referral=referral,
            from_member="lee-law",
            to_member="park-cpa",
            customer="Dana Whitfield",
        ),
    )


def subjects(deliveries: Deliveries, member: str) -> list[str]:
    return [m.subject for m in reversed(deliveries.inbox("riverside", member))]


# ------------------------------------------------------------------ tests


def test_inbox_email_and_signed_webhook_are_delivered(
    nledger: Ledger,
    store: Store,
    deliveries: Deliveries,
    smtp: tuple[Mailbox, tuple[str, int]],
    hook: Hook,
) -> None:
    mailbox, address = smtp
    riverside(nledger, email=True, webhook_url=hook.url, webhook_secret=SECRET)

    queued = deliveries.collect(nledger)
    report = deliveries.deliver(smtp=address, sender="ledger@riverside.example")

    assert report.errors == []
    assert report.attempted == report.delivered == queued > 0
    assert deliveries.status_counts() == {"pending": 0, "delivered": queued, "failed": 0}
    assert deliveries.position() == store.last_position()

    # Inbox: the receiver of a new referral, the sender of its outcomes, agreement parties
    # (not the program), the suspended member.
    assert subjects(deliveries, "park-cpa") == [
        "New referral r-0001 from Lee & Co. Law: customer Dana Whitfield",
        "Referral r-0002 declined by Lee & Co. Law: customer Sam Ortiz",
        "Agreement a-lee-park proposed: referral with Lee & Co. Law",
    ]
    assert subjects(deliveries, "lee-law") == [
        "Referral r-0001 accepted by Park CPA: customer Dana Whitfield",
        "Referral r-0001 converted by Park CPA: 10000.00 USD",
        "Referral r-0001 reversed: 2500.00 USD",
        "New referral r-0002 from Park CPA: customer Sam Ortiz",
        "New referral r-0003 from Bloom Florists: customer Kim Nakamura",
        "Agreement a-lee-park proposed: referral with Park CPA",
    ]
    assert subjects(deliveries, "bloom") == [
        "Referral r-0003 accepted by Lee & Co. Law: customer Kim Nakamura",
        "Agreement a-bloom-program proposed: co-marketing with the program",
        "Agreement a-bloom-program with the program terminated",
        "Your membership of Riverside Chamber is suspended",
    ]
    assert deliveries.inbox("riverside", "program") == []
    first = deliveries.inbox("riverside", "park-cpa")[-1]
    assert "Customer: Dana Whitfield" in first.body
    assert first.read_at is None

    # Email: only lee-law has a contact email; the others are skipped.
    assert len(mailbox.received) == 6
    for mail_from, rcpt_tos, _ in mailbox.received:
        assert mail_from == "ledger@riverside.example"
        assert rcpt_tos == ["ana@lee-law.example"]
    mail = message_from_bytes(mailbox.received[0][2])
    assert mail["Subject"] == "Referral r-0001 accepted by Park CPA: customer Dana Whitfield"
    assert mail["To"] == "ana@lee-law.example"
    assert "Park CPA accepted your referral r-0001" in mail.get_payload()

    # Webhooks: one per event of the listed types, each signed over its exact body.
    notifying = [
        (position, event)
        for position, event in store.read()
        if event.type in notifications.DEFAULT_EVENTS
    ]
    assert len(hook.requests) == len(notifying) == 12
    for (headers, body), (_, event) in zip(hook.requests, notifying, strict=True):
        assert verified(headers, body)
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Partnerledger-Event"] == event.type
        assert headers["X-Partnerledger-Delivery"].isdigit()
        document = json.loads(body)
        assert sorted(document) == ["command", "command_id", "network", "recorded_at", "type"]
        assert document["type"] == event.type
        assert document["command_id"] == event.command_id
        assert document["command"] == json.loads(msgspec.json.encode(event.command))
        assert body == notifications.canonical_body(event)


def test_a_failing_webhook_is_retried_with_backoff(
    nledger: Ledger, deliveries: Deliveries, hook: Hook
) -> None:
    settings = {"inbox": False, "events": ["member.joined"], "webhook_secret": SECRET}
    chapter(nledger, webhook_url=hook.url, **settings)
    hook.statuses = [500, 500]
    assert deliveries.collect(nledger) == 2

    first = deliveries.deliver(now=T0)
    assert (first.attempted, first.delivered, first.retrying, first.failed) == (2, 0, 2, 0)
    assert first.errors[0]["error"] == "DeliveryError: HTTP 500 Internal Server Error"
    rows = deliveries.deliveries(channel="webhook")
    assert [(r["status"], r["attempts"]) for r in rows] == [("pending", 1), ("pending", 1)]
    assert {r["next_attempt_at"] for r in rows} == {T0 + timedelta(seconds=10)}

    # Not due yet: nothing is attempted.
    assert deliveries.deliver(now=T0 + timedelta(seconds=9)).attempted == 0

    later = deliveries.deliver(now=T0 + timedelta(seconds=10))
    assert (later.attempted, later.delivered) == (2, 2)
    assert deliveries.status_counts() == {"pending": 0, "delivered": 2, "failed": 0}
    rows = deliveries.deliveries(channel="webhook")
    assert [(r["status"], r["attempts"], r["last_error"]) for r in rows] == [
        ("delivered", 2, None),
        ("delivered", 2, None),
    ]
    assert rows[0]["delivered_at"] == T0 + timedelta(seconds=10)
    # Each retry sends the very same signed body.
    assert len(hook.requests) == 4
    assert all(verified(headers, body) for headers, body in hook.requests)
    assert hook.requests[0][1] in (hook.requests[2][1], hook.requests[3][1])


def test_a_dead_channel_never_stops_the_others_and_ends_failed(
    nledger: Ledger, deliveries: Deliveries, smtp: tuple[Mailbox, tuple[str, int]]
) -> None:
    mailbox, address = smtp
    dead = f"http://127.0.0.1:{free_port()}/hook"
    chapter(nledger, email=True, webhook_url=dead, webhook_secret=SECRET)
    send_referral(nledger)
    deliveries.collect(nledger)

    now = T0
    for attempt in range(1, 4):  # max_attempts = 3
        report = deliveries.deliver(now=now, smtp=address)
        assert report.attempted == (3 if attempt == 1 else 1)
        assert [e["channel"] for e in report.errors] == ["webhook"]
        assert report.errors[0]["final"] is (attempt == 3)
        now += backoff_delay(attempt, 10, 3600)

    assert deliveries.deliver(now=now + timedelta(days=1), smtp=address).attempted == 0
    by_channel = {r["channel"]: r for r in deliveries.deliveries()}
    assert by_channel["inbox"]["status"] == "delivered"
    assert by_channel["email"]["status"] == "delivered"
    failed = by_channel["webhook"]
    assert (failed["status"], failed["attempts"]) == ("failed", 3)
    assert "ConnectError" in failed["last_error"]
    assert subjects(deliveries, "park-cpa") == [
        "New referral r-0001 from Lee & Co. Law: customer Dana Whitfield"
    ]
    assert [rcpt for _, rcpt, _ in mailbox.received] == [["jo@park-cpa.example"]]


def test_an_unreachable_smtp_server_does_not_stop_inbox_or_webhook(
    nledger: Ledger, deliveries: Deliveries, hook: Hook
) -> None:
    chapter(nledger, email=True, webhook_url=hook.url, webhook_secret=SECRET)
    send_referral(nledger)
    deliveries.collect(nledger)

    report = deliveries.deliver(now=T0, smtp=("127.0.0.1", free_port()), timeout=2)

    assert (report.attempted, report.delivered, report.retrying) == (3, 2, 1)
    assert report.errors[0]["channel"] == "email"
    assert "ConnectionRefused" in report.errors[0]["error"]
    assert len(hook.requests) == 1
    assert len(deliveries.inbox("riverside", "park-cpa")) == 1


def test_a_plugin_that_raises_is_recorded_and_the_others_deliver(
    nledger: Ledger, deliveries: Deliveries
) -> None:
    chapter(nledger)
    run(nledger, line("plugin.enabled", plugin="broken"))
    send_referral(nledger)

    # broken fails on its own plugin.enabled and on the referral; notifications queues one.
    assert deliveries.collect(nledger) == 3
    failures = deliveries.deliveries(channel="plugin")
    assert len(failures) == 2
    failure = failures[-1]
    assert (failure["plugin"], failure["plugin_version"], failure["status"]) == (
        "broken",
        "0.1",
        "failed",
    )
    assert failure["last_error"] == "plugin 'broken' failed: RuntimeError: boom on referral.sent"

    report = deliveries.deliver(now=T0)
    assert (report.attempted, report.delivered) == (1, 1)
    assert len(deliveries.inbox("riverside", "park-cpa")) == 1
    assert deliveries.status_counts() == {"pending": 0, "delivered": 1, "failed": 2}


def test_collect_is_exactly_once_and_never_touches_the_events(
    nledger: Ledger, store: Store, deliveries: Deliveries, monkeypatch: pytest.MonkeyPatch
) -> None:
    chapter(nledger, email=True)
    send_referral(nledger)
    before = [(p, msgspec.json.encode(e)) for p, e in store.read()]

    # A crash while a batch is written leaves no delivery and the position unmoved.
    original = Deliveries._insert

    def crash(self: Deliveries, rows: Any, now: datetime) -> int:
        original(self, rows, now)
        raise RuntimeError("power cut")

    monkeypatch.setattr(Deliveries, "_insert", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        deliveries.collect(nledger)
    monkeypatch.undo()
    assert deliveries.position() == 0
    assert deliveries.deliveries() == []

    assert deliveries.collect(nledger) == 2
    assert deliveries.collect(nledger) == 0
    with Deliveries(store.database) as other_worker:
        assert other_worker.collect(nledger) == 0
    deliveries.deliver(now=T0, smtp=("127.0.0.1", free_port()))
    deliveries.deliver(now=T0)  # the email is not due again yet; the inbox is delivered once
    assert len(deliveries.inbox("riverside", "park-cpa")) == 1

    send_referral(nledger, "r-0002")
    assert deliveries.collect(nledger) == 2
    assert [(r["position"], r["channel"]) for r in deliveries.deliveries()][-2:] == [
        (store.last_position(), "inbox"),
        (store.last_position(), "email"),
    ]
    after = [(p, msgspec.json.encode(e)) for p, e in store.read()]
    assert after[: len(before)] == before
    assert len(after) == len(before) + 1


def test_only_events_recorded_while_the_plugin_is_enabled_notify(
    nledger: Ledger, deliveries: Deliveries
) -> None:
    chapter(nledger)
    run(nledger, line("plugin.disabled", plugin="notifications"))
    send_referral(nledger, "r-0001")
    run(nledger, line("plugin.enabled", "2025-01-11T09:00:00Z", plugin="notifications"))
    send_referral(nledger, "r-0002")

    deliveries.collect(nledger)
    deliveries.deliver(now=T0)
    assert subjects(deliveries, "park-cpa") == [
        "New referral r-0002 from Lee & Co. Law: customer Dana Whitfield"
    ]


def test_inbox_unread_and_mark_read(nledger: Ledger, deliveries: Deliveries) -> None:
    chapter(nledger)
    send_referral(nledger, "r-0001")
    send_referral(nledger, "r-0002")
    deliveries.collect(nledger)
    deliveries.deliver(now=T0)

    newest, oldest = deliveries.inbox("riverside", "park-cpa")
    assert newest.subject.startswith("New referral r-0002")
    assert deliveries.mark_read(oldest.id, now=T0) is True
    assert deliveries.mark_read(oldest.id, now=T0) is False
    assert [m.id for m in deliveries.inbox("riverside", "park-cpa", unread_only=True)] == [
        newest.id
    ]
    assert deliveries.inbox("riverside", "park-cpa")[1].read_at == T0
    with pytest.raises(Exception, match="no inbox message"):
        deliveries.mark_read(999_999)


def test_cli_deliver_and_inbox(
    database_url: str,
    nledger: Ledger,
    rules: Rules,
    smtp: tuple[Mailbox, tuple[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mailbox, (host, port) = smtp
    chapter(nledger, email=True)
    send_referral(nledger)
    monkeypatch.setattr(partnerledger.ledger, "default_rules", lambda: rules)
    runner = CliRunner()
    env = {"PARTNERLEDGER_SMTP": f"{host}:{port}", "PARTNERLEDGER_MAIL_FROM": "l@example.org"}

    def invoke(*args: str) -> Any:
        return runner.invoke(cli, ["--database", database_url, *args], env=env)

    result = invoke("deliver", "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert (counts["queued"], counts["delivered"]) == (2, 2)
    assert counts["position"] == nledger.store.last_position()
    assert counts["totals"] == {"pending": 0, "delivered": 2, "failed": 0}
    assert [rcpt for _, rcpt, _ in mailbox.received] == [["jo@park-cpa.example"]]

    result = invoke("deliver")
    assert result.exit_code == 0
    assert "Queued 0 deliveries" in result.stdout

    result = invoke("inbox", "riverside", "park-cpa", "--json", "--mark-read")
    assert result.exit_code == 0
    (message,) = [json.loads(x) for x in result.stdout.splitlines()]
    assert message["subject"] == "New referral r-0001 from Lee & Co. Law: customer Dana Whitfield"
    result = invoke("inbox", "riverside", "park-cpa", "--unread", "--json")
    assert result.stdout == ""
    result = invoke("inbox", "riverside", "park-cpa")
    assert "New referral r-0001" in result.stdout

    def interrupt(seconds: float) -> None:
        assert 0 < seconds <= 0.5
        raise KeyboardInterrupt

    monkeypatch.setattr("partnerledger.cli.main.time.sleep", interrupt)
    send_referral(nledger, "r-0002")
    result = invoke("deliver", "--follow", "--interval", "0.5")
    assert result.exit_code == 0, result.output
    assert "Queued 2 deliveries" in result.stdout
    assert "Stopped." in result.stderr

    result = invoke("inbox", "riverside", "nobody")
    assert result.exit_code == 1
    assert "Error: member: no member 'nobody' in network 'riverside'" in result.output

    result = runner.invoke(
        cli, ["--database", database_url, "deliver"], env={"PARTNERLEDGER_SMTP": "nonsense"}
    )
    assert result.exit_code == 1
    assert "Error: PARTNERLEDGER_SMTP: expected host:port" in result.output


# ------------------------------------------------------------ the plugin itself


@pytest.mark.parametrize(
    ("settings", "field", "reason"),
    [
        ({"webhook_url": "https://example.org/h"}, "settings.webhook_secret", "required with"),
        ({"webhook_url": "ftp://x", "webhook_secret": "k"}, "settings.webhook_url", "http"),
        ({"events": ["referral.sent", "nope"]}, "settings.events", "unknown event type 'nope'"),
        ({"email": "sometimes"}, "settings.email", "Expected `bool`"),
    ],
)
def test_bad_settings_are_refused(
    rules: Rules, settings: dict[str, object], field: str, reason: str
) -> None:
    with pytest.raises(InvalidCommand) as caught:
        rules.settings("notifications", settings)
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_webhook_secret_from_the_environment(
    nledger: Ledger, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    chapter(nledger)
    _, event = next(iter(store.read()))
    settings = notifications.Settings(
        inbox=False,
        events=("network.created",),
        webhook_url="http://127.0.0.1/h",
        webhook_secret="env:RIVERSIDE_HOOK_SECRET",
    )
    work = nledger.unit_of_work()
    with pytest.raises(ValueError, match="RIVERSIDE_HOOK_SECRET is not set"):
        notifications.partnerledger_notify(event, work, settings)
    monkeypatch.setenv("RIVERSIDE_HOOK_SECRET", SECRET)
    (message,) = notifications.partnerledger_notify(event, work, settings)
    assert verified(message.headers, message.body.encode())
    assert SECRET not in message.body


def test_backoff_and_smtp_setting() -> None:
    assert [backoff_delay(n, 2, 3600).total_seconds() for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert backoff_delay(20, 2, 3600) == timedelta(hours=1)
    assert smtp_from_env({}) == ("127.0.0.1", 25)
    assert smtp_from_env({"PARTNERLEDGER_SMTP": "mail.example.org:2525"}) == (
        "mail.example.org",
        2525,
    )
    with pytest.raises(InvalidCommand, match="expected host:port"):
        smtp_from_env({"PARTNERLEDGER_SMTP": "mail.example.org"})
