"""A test kit for plugin authors: pytest fixtures over a real ledger.

This module is a pytest plugin, registered through the ``pytest11`` entry
point of the ``partnerledger`` distribution, so any project that has
partnerledger installed gets these fixtures without importing anything:

``partnerledger_store``
    an empty :class:`~partnerledger.Store` on a SQLite file in the test's
    temporary directory, closed after the test.
``partnerledger_rules``
    the plugins the ledger calls: the process's plugins (the built-ins plus
    the installed ones that ``PARTNERLEDGER_PLUGINS`` allows). Override this
    fixture in a ``conftest.py`` to test a plugin object that is not
    installed (see :func:`rules_with`).
``partnerledger_ledger``
    a :class:`~partnerledger.Ledger` over that store with those plugins.
``partnerledger_network``
    a :class:`NetworkHelper` over that ledger: it writes a network's history
    in a few calls (``create``, ``member``, ``referral``, ``enable``,
    ``execute``) and reads it back (``events``, ``plugins``, ``standings``,
    ``score``).

Every helper builds real commands from plain data with
:func:`partnerledger.commands.convert_command` and records them with
:meth:`partnerledger.Ledger.execute`, so a plugin is exercised exactly as in
production: settings validated, validation vetoes applied, decisions named.
Every fixture name starts with ``partnerledger_`` so it never clashes with a
project's own. Disable the kit with ``pytest -p no:partnerledger``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import msgspec
import pytest

from .activity import member_activity
from .commands import Command, Period, Tier, convert_command
from .domain import Network
from .errors import from_validation_error
from .events import Event
from .ledger import Ledger, Outcome, default_rules
from .pluginmanager import ALLOWLIST_ENV, Rules, load_rules
from .rules import Activity, Decision, Window
from .standings import Standing
from .standings import standings as compute_standings
from .store import Database, Store

#: When the first command of a helper happens (business time), unless told otherwise.
START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
#: The start of the default window of :meth:`NetworkHelper.activity`.
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
#: How far business time moves on after each command a helper records.
STEP = timedelta(minutes=1)

Money = Decimal | int | str


def rules_with(*plugins: object, env: Mapping[str, str] | None = None) -> Rules:
    """The built-in plugins plus ``plugins`` (objects or modules with ``NAME`` and ``VERSION``).

    Installed third-party plugins are left out unless ``env`` allows them
    (``{"PARTNERLEDGER_PLUGINS": "name,..."}``), so the result does not depend
    on what else happens to be installed.
    """
    # The built-ins live in partnerledger.plugins, outside the kernel.
    builtins: tuple[object, ...] = importlib.import_module("partnerledger.plugins").BUILTIN_PLUGINS
    return load_rules(
        builtins=(*builtins, *plugins), env={ALLOWLIST_ENV: ""} if env is None else env
    )


class NetworkHelper:
    """Writes and reads one network's history through a :class:`~partnerledger.Ledger`.

    Each command gets the helper's ``actor`` and business time ``now``
    unless the data says otherwise; ``now`` then moves on by one minute, so
    commands are in time order and two identical calls are two commands.
    Refused commands raise the ledger's
    :class:`~partnerledger.DomainError` (field and reason) and write nothing.

    The ``partnerledger_network`` fixture is a helper bound to the first
    network it creates; :meth:`create` again makes another network in the same
    store and returns a helper bound to that one, and :meth:`on` gives a
    helper for a network that already exists.
    """

    def __init__(
        self,
        ledger: Ledger,
        slug: str = "test-network",
        *,
        actor: str = "test-kit",
        now: datetime = START,
    ) -> None:
        self.ledger = ledger
        self.slug = slug
        self.actor = actor
        self.now = now
        self.currency = "USD"
        self._created = False
        self._referrals = 0

    # -- writing ----------------------------------------------------------

    def create(
        self,
        slug: str = "test-network",
        currency: str = "USD",
        period: Period = "quarter",
        tiers: Iterable[Tier | Mapping[str, Any]] = (),
        *,
        name: str | None = None,
        **fields: Any,
    ) -> NetworkHelper:
        """Create a network (``network.created``); returns the helper bound to it.

        ``tiers`` are :class:`~partnerledger.commands.Tier` objects or plain
        mappings (``{"name": "gold", "threshold": "80"}``), lowest rung first.
        """
        target = self
        if self._created:
            target = NetworkHelper(self.ledger, slug, actor=self.actor, now=self.now)
        target.slug = slug
        target.currency = currency
        target.execute(
            {
                "type": "network.created",
                "name": name or slug,
                "currency": currency,
                "period": period,
                "tiers": [
                    msgspec.to_builtins(tier) if isinstance(tier, Tier) else dict(tier)
                    for tier in tiers
                ],
                **fields,
            }
        )
        target._created = True
        if target is not self:
            self.now = max(self.now, target.now)
        return target

    def on(self, slug: str) -> NetworkHelper:
        """A helper for another network of the same store (one that exists already)."""
        helper = NetworkHelper(self.ledger, slug, actor=self.actor, now=self.now)
        found = self.network_state(slug)
        helper.currency = found.currency
        helper._created = True
        return helper

    def member(self, slug: str, category: str = "consulting", **fields: Any) -> str:
        """A business joins the network (``member.joined``); returns its slug."""
        self.execute(
            {"type": "member.joined", "member": slug, "name": slug, "category": category, **fields}
        )
        return slug

    def members(self, *slugs: str, category: str = "consulting") -> tuple[str, ...]:
        """Several members of one category join, in order."""
        return tuple(self.member(slug, category) for slug in slugs)

    def referral(
        self,
        from_member: str,
        to_member: str,
        deal_value: Money | None = "1000",
        *,
        referral: str | None = None,
        customer: str | None = None,
        until: Literal["sent", "accepted", "converted"] = "converted",
    ) -> str:
        """A referral sent, accepted and converted for ``deal_value``; returns its slug.

        ``until`` stops earlier (``"sent"``, ``"accepted"``); so does a
        ``deal_value`` of ``None``, after the acceptance. The three commands
        are recorded together: all of them, or none.
        """
        self._referrals += 1
        slug = referral or f"r-{self._referrals}"
        commands: list[dict[str, Any]] = [
            {
                "type": "referral.sent",
                "referral": slug,
                "from_member": from_member,
                "to_member": to_member,
                "customer": customer or f"customer of {slug}",
            }
        ]
        if until != "sent":
            commands.append({"type": "referral.accepted", "referral": slug})
        if until == "converted" and deal_value is not None:
            commands.append(
                {
                    "type": "referral.converted",
                    "referral": slug,
                    "deal_value": str(deal_value),
                    "currency": self.currency,
                }
            )
        self.execute(*commands)
        return slug

    def enable(self, plugin: str, /, **settings: Any) -> Outcome:
        """The network enables a plugin with these settings (``plugin.enabled``)."""
        return self.execute({"type": "plugin.enabled", "plugin": plugin, "settings": settings})

    def configure(self, plugin: str, /, **settings: Any) -> Outcome:
        """Replace an enabled plugin's settings (``plugin.configured``)."""
        return self.execute({"type": "plugin.configured", "plugin": plugin, "settings": settings})

    def disable(self, plugin: str, /) -> Outcome:
        """The network stops using a plugin (``plugin.disabled``)."""
        return self.execute({"type": "plugin.disabled", "plugin": plugin})

    def command(self, data: Mapping[str, Any]) -> Command:
        """The command for plain data, with the helper's network, actor and time filled in.

        ``data`` is what one line of an import file holds (``type`` and the
        fields of that type); ``network``, ``actor`` and ``occurred_at`` may be
        left out. Moves ``now`` on. Raises
        :class:`~partnerledger.InvalidCommand` naming the field at fault.
        """
        full = {"network": self.slug, "actor": self.actor, "occurred_at": self.now, **data}
        self.now += STEP
        try:
            return convert_command(full)
        except msgspec.ValidationError as error:
            raise from_validation_error(error) from None

    def execute(self, *data: Mapping[str, Any]) -> Outcome:
        """Record commands given as plain data (see :meth:`command`), all or none."""
        return self.ledger.execute(*(self.command(item) for item in data))

    def advance(self, **delta: float) -> datetime:
        """Move business time on (``advance(days=30)``); returns the new ``now``."""
        self.now += timedelta(**delta)
        return self.now

    # -- reading ----------------------------------------------------------

    def events(self, *types: str) -> list[Event]:
        """The network's events in log order, optionally only these types.

        As stored: a referral's ``customer`` and ``customer_contact`` are sealed
        (``self.ledger.vault.reveal_events(...)`` shows them; docs/privacy.md).
        """
        return [
            event for _, event in self.ledger.store.read(topics=types) if event.network == self.slug
        ]

    def types(self) -> list[str]:
        """The type of each of the network's events, in log order."""
        return [event.type for event in self.events()]

    def network_state(self, slug: str | None = None) -> Network:
        """The network aggregate as the ledger sees it now."""
        return self.ledger.unit_of_work().network(slug or self.slug)

    def plugins(self) -> dict[str, Any]:
        """The network's enabled plugins, each with its validated settings."""
        work = self.ledger.unit_of_work()
        return work.enabled(work.network(self.slug))

    def activity(self, member: str, window: Window | None = None) -> Activity:
        """A member's activity in a window (default: everything before ``now``)."""
        window = window or Window(start=EPOCH, end=self.now)
        return member_activity(self.ledger.store, self.slug, member, window)

    def standings(self, as_of: datetime | None = None) -> list[Standing]:
        """Every member's score and tier under the enabled plugins, as of ``now``."""
        return compute_standings(self.ledger, self.slug, as_of or self.now)

    def score(self, member: str, as_of: datetime | None = None) -> Decision | None:
        """A member's score decision (``None``: no enabled plugin scored it)."""
        (standing,) = compute_standings(self.ledger, self.slug, as_of or self.now, member=member)
        return standing.score

    def tier(self, member: str, as_of: datetime | None = None) -> Decision | None:
        """A member's tier decision (``None``: no score, or no plugin tiered it)."""
        (standing,) = compute_standings(self.ledger, self.slug, as_of or self.now, member=member)
        return standing.tier


# ----------------------------------------------------------------- fixtures


@pytest.fixture
def partnerledger_store(tmp_path: Path) -> Iterator[Store]:
    """An empty event store on a SQLite file in the test's temporary directory."""
    with Store(Database.parse(str(tmp_path / "partnerledger.db"))) as store:
        yield store


@pytest.fixture
def partnerledger_rules() -> Rules:
    """The process's plugins: built-ins plus the installed ones ``PARTNERLEDGER_PLUGINS`` allows."""
    return default_rules()


@pytest.fixture
def partnerledger_ledger(partnerledger_store: Store, partnerledger_rules: Rules) -> Ledger:
    """The application service over ``partnerledger_store``, with ``partnerledger_rules``."""
    return Ledger(partnerledger_store, rules=partnerledger_rules)


@pytest.fixture
def partnerledger_network(partnerledger_ledger: Ledger) -> NetworkHelper:
    """A :class:`NetworkHelper` over ``partnerledger_ledger``; call ``.create()`` first."""
    return NetworkHelper(partnerledger_ledger)


__all__ = [
    "START",
    "STEP",
    "NetworkHelper",
    "partnerledger_ledger",
    "partnerledger_network",
    "partnerledger_rules",
    "partnerledger_store",
    "rules_with",
]
