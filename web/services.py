"""The application services the pages and the JSON API share.

One :class:`Services` per process holds the event store, the ledger, the
views and the accounts. Writes go through :meth:`Services.execute` (a dict
of fields, as a form or a JSON body gives them, becomes a command; the
actor is the signed-in user); reads go to the views, caught up first when
this process keeps them itself (``inline``: the SQLite default) or read as
the worker left them (PostgreSQL with ``partnerledger worker``).

Handlers are ``async`` and call these synchronous services directly, on the
event loop's thread: every connection is used by the thread that opened it,
and one process handles one request at a time against SQLite, which
serialises writes anyway.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import msgspec

from partnerledger import DomainError, Ledger, Store
from partnerledger.accounts import Accounts, User
from partnerledger.commands import Command, convert_command
from partnerledger.domain import Agreement, Member, Network, agreement_id, member_id
from partnerledger.domain.base import Aggregate
from partnerledger.errors import NotFound, StoreUnavailable, from_validation_error
from partnerledger.events import Event
from partnerledger.privacy import Value, Vault
from partnerledger.projection import Projector
from partnerledger.store import Database

#: ``worker``: leave the views to ``partnerledger worker`` (default ``inline``).
VIEWS_ENV = "PARTNERLEDGER_VIEWS"
log = logging.getLogger("partnerledger.web")

#: The standings view's members: each network's, in order of first appearance.
MEMBERS = "partnerledger_standing_members"
#: The ledger view's table of agreements (one row each, with the position it was proposed at).
AGREEMENTS = "partnerledger_ledger_agreements"

A = TypeVar("A", bound=Aggregate)


class Services:
    """The store, the ledger, the views and the accounts of one process."""

    def __init__(self, database: Database, *, inline: bool | None = None) -> None:
        if inline is None:
            inline = os.environ.get(VIEWS_ENV, "inline").strip().lower() != "worker"
        self.database = database
        self.store = Store(database)
        self.ledger = Ledger(self.store)
        self.projector = Projector(self.store, self.ledger.rules)
        self.accounts = Accounts(database)
        #: Reads the subjects' keys through the views' connection, so that revealing
        #: a page's personal fields does not open (and, on PostgreSQL, authenticate)
        #: a connection of its own on every request. Reading only: the ledger's vault
        #: writes keys. Keys are read each time (an erased subject's key is gone).
        self._reader = Vault(database, db=self.projector.db)
        #: Whether this process brings the views up to date itself.
        self.inline = inline

    def close(self) -> None:
        """Release every connection."""
        self.accounts.close()
        self.projector.close()
        self.ledger.vault.close()
        self.store.close()

    # -- reading ----------------------------------------------------------

    @property
    def db(self) -> Any:
        """The views' connection, brought up to date first when this process keeps them."""
        if self.inline:
            self.projector.catch_up()
        return self.projector.db

    def network(self, slug: str) -> Network:
        """The network, or NotFound."""
        return self.ledger.unit_of_work().network(slug)

    def networks(self) -> list[Network]:
        """Every network, by slug."""
        work = self.ledger.unit_of_work()
        slugs = sorted({e.command.network for _, e in self.store.read(topics=["network.created"])})
        return [work.network(s) for s in slugs]

    def members(self, network: str, db: Any = None) -> list[Member]:
        """Every member of a network, in order of appearance.

        ``db``: the views' connection this request already brought up to date
        (:attr:`db`), so that it is not caught up a second time.

        Two queries whatever the history: the slugs from the standings view
        (its members in order of first appearance), then every member's
        stream at once. Never the log's notifications: a page must not read
        the log.
        """
        db = self.db if db is None else db
        _, rows = db.execute(
            f"SELECT member FROM {db.table(MEMBERS)} WHERE network = ? "  # noqa: S608  # a view's table
            "ORDER BY first_position, member",
            (network,),
        )
        return self._built(Member, [member_id(network, str(row[0])) for row in rows])

    def agreements(self, network: str) -> list[Agreement]:
        """Every agreement of a network, in the order they were proposed.

        Two queries whatever the history: the slugs from the ledger view,
        then every agreement's stream at once (never the log's notifications).
        """
        db = self.db
        _, rows = db.execute(
            f"SELECT agreement FROM {db.table(AGREEMENTS)} WHERE network = ? "  # noqa: S608  # a view's table
            "ORDER BY proposed_position, agreement",
            (network,),
        )
        return self._built(Agreement, [agreement_id(network, str(row[0])) for row in rows])

    def _built(self, cls: type[A], ids: list[UUID]) -> list[A]:
        """The aggregates of these ids (one query for every stream), in that order."""
        streams = self.store.streams(ids)
        found = []
        for aggregate_id in ids:
            events = streams.get(aggregate_id)
            if events:
                aggregate = cls(aggregate_id)
                for event in events:
                    aggregate.apply(event)
                found.append(aggregate)
        return found

    def reveal_many(self, network: str, items: list[tuple[str, Value]]) -> list[str | None]:
        """Personal values of one network as people read them (text or ``[erased]``).

        As :meth:`partnerledger.privacy.Vault.reveal_many`, with one read of
        the keys on the connection this process already holds.
        """
        return self._reader.reveal_many(network, items)

    # -- writing ----------------------------------------------------------

    def command(self, fields: dict[str, Any], user: User, *, at: datetime | None = None) -> Command:
        """Build a command from plain fields; the actor is the user, the time now by default."""
        payload = {k: v for k, v in fields.items() if v not in (None, "", [], {})}
        payload["actor"] = user.email
        payload.setdefault("occurred_at", (at or datetime.now(UTC)).isoformat())
        try:
            command = convert_command(payload)
        except msgspec.ValidationError as error:
            raise from_validation_error(error) from None
        # With its data subject filled in, as the ledger records it (its identity covers it).
        return self.ledger.prepare(command)

    def execute(self, fields: dict[str, Any], user: User) -> Event | None:
        """Decide and record one command; ``None`` when it was already recorded."""
        outcome = self.ledger.execute(self.command(fields, user))
        self._after_write()
        return outcome.recorded[0] if outcome.recorded else None

    def run(self, commands: list[Command]) -> list[Event]:
        """Record several commands, all or nothing."""
        outcome = self.ledger.execute(*commands)
        self._after_write()
        return outcome.recorded

    def _after_write(self) -> None:
        """Bring the views up to date after a recorded command, when this process keeps them.

        The command is recorded whatever happens here: if the database went
        away just now, the views catch up with the next request (or the
        worker), and the answer still says what was recorded.
        """
        if not self.inline:
            return
        try:
            self.projector.catch_up()
        except StoreUnavailable as error:
            log.warning("recorded, but the views are not up to date: %s", error)


def ensure_network(services: Services, slug: str) -> Network:
    """The network, or NotFound on ``network``."""
    try:
        return services.network(slug)
    except StoreUnavailable:
        raise
    except DomainError as error:
        raise NotFound("network", error.reason) from error


__all__ = ["Services", "ensure_network"]
