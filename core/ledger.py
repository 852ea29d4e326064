"""The application service: load, decide, record, in a unit of work.

``Ledger.execute`` is the one way a command becomes an event, whether it
comes from the CLI, an import file or (later) the web. A :class:`UnitOfWork`
keeps the aggregates it touched in memory, so a batch of commands is decided
against the state the earlier commands of the batch produced, and writes
nothing until :meth:`UnitOfWork.commit`.
"""

from __future__ import annotations

import itertools
import random
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar
from uuid import UUID

import msgspec
from eventsourcing.persistence import StoredEvent

from .commands import (
    AgreementAmended,
    Command,
    CreditReassigned,
    MemberUpdated,
    NetworkTiersSet,
    PeriodClosed,
    PluginConfigured,
    StatementClosed,
    SubjectErased,
    TierDecided,
    TierOverridden,
    content_digest,
    decode_command,
    derived_command_id,
    encode_command,
    unencodable,
)
from .domain import (
    ROUTES,
    Aggregate,
    Agreement,
    Member,
    Network,
    Referral,
    agreement_id,
    member_id,
    network_id,
    referral_id,
)
from .errors import (
    ConcurrencyConflict,
    DomainError,
    InvalidCommand,
    NotFound,
    VersionConflict,
    from_validation_error,
)
from .events import Event, decode_event, encode_event
from .log_index import LogIndex, entries
from .pluginmanager import Rules, load_rules
from .privacy import (
    Sealed,
    Vault,
    complete_erasure,
    has_plaintext,
    sealed_subjects,
    shown,
    subject_of,
)
from .recorders import KeysTaken, NewKeys, Unchanged
from .rules import Veto
from .spool import ERASURE, SEAL, Spool
from .store import Store
from .types import OUT_OF_RANGE, in_range

A = TypeVar("A", bound=Aggregate)
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The store clock: timezone-aware UTC."""
    return datetime.now(UTC)


#: Commands that restate part of a record (new terms, a new profile, new
#: settings, a tier) or were computed from the views (a period's close): the
#: client chose their content knowing the version it read, so when another
#: command changed the record first they are refused (409), never decided
#: again on a version their author has not seen. Every other command is a
#: step whose rule, checked again on the new version, is all it needs.
NOT_RETRIED: frozenset[type[Command]] = frozenset(
    {
        AgreementAmended,
        CreditReassigned,
        MemberUpdated,
        NetworkTiersSet,
        PluginConfigured,
        TierOverridden,
        PeriodClosed,
        TierDecided,
        StatementClosed,
    }
)
#: How many times :meth:`Ledger.execute` decides commands in all (the first
#: time and the retries) before a version conflict reaches the caller.
ATTEMPTS = 5

#: How many times a commit seals its events again when another writer stored a key
#: of one of their data subjects first (each time nothing was written).
KEY_ATTEMPTS = 3

#: The command field that names an aggregate of each kind (the field a conflict is on).
_FIELD_OF_KIND = {"closing": "period"}


def retry_safe(commands: Iterable[Command]) -> bool:
    """Whether deciding the commands again on newer versions is what their author asked for."""
    return not any(type(command) in NOT_RETRIED for command in commands)


@cache
def default_rules() -> Rules:
    """The process-wide plugins: built-ins plus the allowed installed ones."""
    return load_rules()


class UnitOfWork:
    """Decides commands against stored state plus the commands decided so far."""

    def __init__(
        self,
        store: Store,
        clock: Clock = utc_now,
        rules: Rules | None = None,
        vault: Vault | None = None,
        log_index: LogIndex | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self.rules = rules if rules is not None else default_rules()
        #: The keys of the data subjects: personal fields are sealed at commit.
        self.vault = vault if vault is not None else Vault(store.database)
        self._aggregates: dict[UUID, Aggregate | None] = {}
        #: Streams read ahead (:meth:`prefetch`), not made into aggregates yet; () = none.
        self._streams: dict[UUID, Sequence[Event]] = {}
        #: Set by :meth:`assume_empty`: an aggregate not decided here has no events.
        self._empty = False
        #: Decided events go to this file instead of :attr:`pending` (:meth:`spool_to_disk`).
        self._spool: Spool | None = None
        #: Aggregate → where its last event decided here starts in the spool.
        self._spooled: dict[UUID, int] = {}
        #: Network → the data subjects of the spooled events to seal.
        self._to_seal: defaultdict[str, set[str]] = defaultdict(set)
        #: With a spool, aggregates kept in memory at most (the oldest are dropped, then
        #: read again from the store and the spool when needed).
        self.keep = KEEP
        #: Agreements by party and referrals by subject, read from the log (shared by
        #: the units of work of a :class:`Ledger`, so the history is read once a process).
        self._log_index = log_index if log_index is not None else LogIndex(store)
        #: The log position this unit of work reads the index at (``None``: not yet).
        self._seen: int | None = None
        #: The index's entries of the events decided here: (network, member or subject) →
        #: agreement ids, and → (kind, referral slug), in the order decided.
        self._own_parties: defaultdict[tuple[str, str], list[UUID]] = defaultdict(list)
        self._own_subjects: defaultdict[tuple[str, str], list[tuple[str, str | None]]] = (
            defaultdict(list)
        )
        #: (network, subject) of the erasures decided here and not committed yet.
        self._erasing: set[tuple[str, str | None]] = set()
        #: The events the last commit appended, as stored (personal fields sealed).
        self.committed: list[Event] = []
        self._enabled: dict[UUID, tuple[int, dict[str, Any]]] = {}
        self.pending: list[Event] = []
        #: The pending events before sealing, and how often they were sealed again
        #: because another writer stored a key of one of their subjects first.
        self._unsealed: list[Event] = []
        self._resealed = 0

    # -- Lookup -----------------------------------------------------------

    def load(self, cls: type[A], aggregate_id: UUID) -> A | None:
        """The aggregate as of the last decided command, or ``None`` if it does not exist."""
        found = self._aggregates.get(aggregate_id, _ABSENT)  # one lookup (UUID hashes in Python)
        if found is _ABSENT:
            events = self._streams.pop(aggregate_id, None)
            if events is None:
                events = () if self._empty else self._store.stream(aggregate_id)
            if self._spool is not None and aggregate_id in self._spooled:
                # Dropped from memory earlier: what this unit of work decided is in the spool.
                events = [*events, *self._spool.stream(self._spooled[aggregate_id])]
            found = None
            if events:
                found = cls(aggregate_id)
                for event in events:
                    found.apply(event)
            self._aggregates[aggregate_id] = found
        assert found is None or isinstance(found, cls)
        return found

    def network(self, slug: str) -> Network:
        """The network, or NotFound on ``network``."""
        found = self.load(Network, network_id(slug))
        if found is None:
            raise NotFound("network", f"no network {slug!r}")
        return found

    def member(self, network: str, slug: str, field: str) -> Member:
        """A member of the network, or NotFound on ``field``."""
        found = self.load(Member, member_id(network, slug))
        if found is None:
            raise NotFound(field, f"no member {slug!r} in network {network!r}")
        return found

    def referral(self, network: str, slug: str, field: str) -> Referral:
        """A referral of the network, or NotFound on ``field``."""
        found = self.load(Referral, referral_id(network, slug))
        if found is None:
            raise NotFound(field, f"no referral {slug!r} in network {network!r}")
        return found

    def agreement(self, network: str, slug: str, field: str) -> Agreement:
        """An agreement of the network, or NotFound on ``field``."""
        found = self.load(Agreement, agreement_id(network, slug))
        if found is None:
            raise NotFound(field, f"no agreement {slug!r} in network {network!r}")
        return found

    def agreements_of(self, network: str, member: str) -> list[Agreement]:
        """Every agreement the member is (or was) a party to, oldest first.

        From the log as this unit of work first read it (:class:`LogIndex`),
        then the proposals decided here.
        """
        ids = [
            *self._log_index.parties(network, member, self._index_position()),
            *self._own_parties.get((network, member), ()),
        ]
        found = [self.load(Agreement, i) for i in ids]
        return [agreement for agreement in found if agreement is not None]

    def subject_referrals(
        self, network: str, subject: str, since_erasure: bool = False
    ) -> list[str]:
        """The referrals of a data subject (only those after its last erasure, if asked).

        From the log as this unit of work first read it (:class:`LogIndex`),
        then the referrals and erasures decided here.
        """
        every: list[str] = []
        since: list[str] = []
        steps = [
            *self._log_index.subject(network, subject, self._index_position()),
            *self._own_subjects.get((network, subject), ()),
        ]
        for kind, referral in steps:
            if kind == "sent":
                assert referral is not None
                every.append(referral)
                since.append(referral)
            else:
                since.clear()
        return since if since_erasure else every

    def _index_position(self) -> int:
        """The log position the index is read at: the end of the log when first asked."""
        if self._seen is None:
            self._seen = self._log_index.refresh()
        return self._seen

    def reveal(self, network: str, value: str | Sealed | None, field: str = "customer") -> str:
        """A personal field as people read it: the text, ``[erased]``, or ``""`` for none."""
        return shown(self.vault.reveal(network, field, value))

    def check_plugin(self, plugin: str, settings: Mapping[str, Any]) -> None:
        """Refuse an unknown plugin or settings its Struct does not accept."""
        self.rules.settings(plugin, settings)

    def enabled(self, network: Network) -> dict[str, Any]:
        """The network's enabled plugins with their validated settings.

        Validated once per version of the network (only its own events change them).
        """
        cached = self._enabled.get(network.id)
        if cached is not None and cached[0] == network.version:
            return cached[1]
        enabled = {
            name: self.rules.settings(name, raw)
            for name, raw in network.plugins.items()
            if self.rules.plugin(name) is not None
        }
        self._enabled[network.id] = (network.version, enabled)
        return enabled

    def _vetoed(self, command: Command) -> None:
        network = self.load(Network, network_id(command.network))
        if network is None or not network.plugins:
            return
        for decision in self.rules.validate(command, self, self.enabled(network)):
            veto = decision.value
            assert isinstance(veto, Veto)
            raise InvalidCommand(veto.field, f"{veto.reason} (rule of plugin {decision.plugin!r})")

    # -- Commands ---------------------------------------------------------

    def decide(self, command: Command, *, checked: bool = False) -> Event | None:
        """Decide one command; returns its event, or ``None`` if it was already recorded.

        The event holds the command as given (its data subject filled in);
        :meth:`commit` seals its personal fields before storing it.

        Raises a :class:`~partnerledger.errors.DomainError` and changes nothing
        when the command is refused. ``checked`` says the command was decoded
        from JSON, so its field constraints (slugs, lengths, ranges) already
        hold; a command built in Python is held to them here, because msgspec
        checks constraints only when decoding.
        """
        if not checked:
            found = unencodable(command)
            if found is not None:  # encoding it would fail: no store can hold it
                raise InvalidCommand(*found)
            try:
                command = decode_command(encode_command(command))
            except msgspec.ValidationError as error:
                raise from_validation_error(error) from None
        # The data subject first: the identity covers it, never the personal data.
        if type(command).personal:  # prepare returns the others unchanged
            command = self.vault.prepare(command)
        route = ROUTES.get(type(command))
        if route is None:
            raise InvalidCommand("type", f"no rule handles {command.type!r}")
        command_id = derived_command_id(command)
        target_id = route.key(command, command_id)
        target = self.load(route.aggregate, target_id)
        if target is not None and command_id in target.command_ids:
            if target.command_ids[command_id] != content_digest(command):
                raise InvalidCommand(
                    "command_id",
                    f"{command_id!r} was already used for a different command; "
                    "give each command its own id",
                )
            return None
        # Checked here, for new commands only: a recorded event always reads back.
        if not in_range(command.occurred_at):
            raise InvalidCommand("occurred_at", OUT_OF_RANGE)
        # Most commands have no personal field: then no subject and nothing in the clear.
        personal = bool(type(command).personal)
        subject = subject_of(command) if personal else None
        plaintext = personal and has_plaintext(command)
        if plaintext and (command.network, subject) in self._erasing:
            # Its key is destroyed when this unit of work commits: the data would go with it.
            raise InvalidCommand(
                "subject",
                f"data subject {subject!r} is erased earlier in the same batch; "
                "record this referral in a later one",
            )
        route.decide(self, target, command)
        self._vetoed(command)
        if target is None:
            target = route.aggregate(target_id)
            self._aggregates[target_id] = target
        event = Event(
            originator_id=target_id,
            originator_version=target.version + 1,
            recorded_at=self._clock(),
            command_id=command_id,
            command=command,  # type: ignore[arg-type]  # every Command subclass is in AnyCommand
        )
        target.apply(event)
        for kind, network, key, value in entries(event):
            if kind == "party":
                assert isinstance(value, UUID)
                self._own_parties[(network, key)].append(value)
            else:
                assert value is None or isinstance(value, str)
                self._own_subjects[(network, key)].append((kind, value))
        erasure = isinstance(command, SubjectErased)
        if self._spool is not None:
            flags = 0
            if plaintext and subject is not None:
                flags = SEAL
                self._to_seal[command.network].add(subject)
            if erasure:
                flags |= ERASURE
            self._spooled[target_id] = self._spool.add(
                event, flags, self._spooled.get(target_id, -1)
            )
            if len(self._aggregates) > self.keep:
                self._forget_oldest()
        else:
            self.pending.append(event)
        if erasure:
            assert isinstance(command, SubjectErased)
            self._erasing.add((command.network, command.subject))
        return event

    # -- Imports ----------------------------------------------------------

    def assume_empty(self) -> bool:
        """Read no stream when the store holds no events now; returns whether it was empty.

        For a unit of work that starts on an empty store (a first import):
        every aggregate it does not decide itself is new, so none is looked
        up. A writer appending meanwhile makes the commit fail with
        ConcurrencyConflict where it meets an aggregate of ours.
        """
        self._empty = self._store.last_position() == 0
        return self._empty

    def _forget_oldest(self) -> None:
        """Drop the older half of the aggregates in memory (they are read again when needed)."""
        drop = len(self._aggregates) - self.keep // 2
        for aggregate_id in list(itertools.islice(self._aggregates, drop)):
            del self._aggregates[aggregate_id]

    def spool_to_disk(self) -> None:
        """Keep decided events in a temporary file until :meth:`commit`, not in memory.

        :attr:`pending` stays empty and :attr:`committed` is not filled.
        """
        if self._spool is None:
            self._spool = Spool()

    def prefetch(self, commands: Iterable[Command]) -> int:
        """Read, in one query, the streams the commands are likely to look up; returns how many.

        The targets and the network, members, referrals and agreements
        their fields name. Forgets what the previous call read and no
        :meth:`load` used. A stream missed here is read when looked up.
        """
        self._streams = {}
        if self._empty:
            return 0
        wanted: dict[UUID, None] = {}
        for command in commands:
            for candidate in self._candidates(command):
                if candidate not in self._aggregates:
                    wanted[candidate] = None
        if not wanted:
            return 0
        found = self._store.streams(wanted)
        self._streams = {i: found.get(i, ()) for i in wanted}
        return len(wanted)

    def _candidates(self, command: Command) -> Iterator[UUID]:
        network = command.network
        yield network_id(network)
        route = ROUTES.get(type(command))
        if route is not None:
            try:
                target = route.key(command, derived_command_id(self.vault.prepare(command)))
            except DomainError:  # decide reports it
                target = None
            if target is not None:
                yield target
        for name in command.__struct_fields__:
            if name in _NOT_REFERENCES:
                continue
            value = getattr(command, name)
            values = value if isinstance(value, list) else (value,)
            for item in values:
                if isinstance(item, str) and _SLUG.match(item):
                    yield member_id(network, item)
                    yield referral_id(network, item)
                    if name == "agreement":
                        yield agreement_id(network, item)

    def commit(
        self,
        batch_size: int = 0,
        on_write: Callable[[int], None] | None = None,
        *,
        unchanged_after: Unchanged | None = None,
    ) -> int:
        """Append the pending events (all in one transaction, or in batches); returns the count.

        With batches, each batch is a transaction of whole commands.
        Personal fields are sealed first; the subjects' new keys are written
        in the first batch's transaction, before its events (docs/privacy.md),
        and sealed again when another writer stored one of them first (at
        most :data:`KEY_ATTEMPTS` times); the key of a subject whose erasure was
        recorded is destroyed after its event is stored. ``on_write(n)`` is
        called after each batch with its size. ``unchanged_after``: see
        :meth:`Store.append` (for one transaction).
        """
        if self._spool is not None:
            return self._commit_spool(batch_size, on_write)
        written = 0
        size = batch_size or len(self.pending) or 1
        erased: list[SubjectErased] = []
        # New keys are stored in the first batch's transaction, before its events.
        new_keys, self.pending = self._sealed(self.pending)
        for start in range(0, len(self.pending), size):
            batch = self.pending[start : start + size]
            try:
                options: dict[str, Any] = {}
                if unchanged_after is not None:
                    options["unchanged_after"] = unchanged_after
                if new_keys is not None:
                    options["new_keys"] = new_keys
                self._store.append(batch, **options)
            except KeysTaken as error:
                if written or self._resealed >= KEY_ATTEMPTS:
                    raise ConcurrencyConflict(
                        "subject",
                        "another process stored the key of one of the data subjects at the "
                        "same time; nothing was written, try again",
                    ) from error
                # Nothing was written: seal again with the keys another writer stored.
                self._resealed += 1
                self.pending = [*self._unsealed]
                return self.commit(batch_size, on_write, unchanged_after=unchanged_after)
            except VersionConflict as error:
                raise self._conflict(batch, error) from error
            new_keys = None
            written += len(batch)
            erased.extend(e.command for e in batch if isinstance(e.command, SubjectErased))
            if on_write is not None:
                on_write(len(batch))
        self.committed, self.pending = self.pending, []
        self._unsealed = []
        self._resealed = 0
        self._committed()
        for command in erased:
            complete_erasure(self, command.network, command.subject)
        return written

    def _sealed(self, events: list[Event]) -> tuple[NewKeys | None, list[Event]]:
        """The keys to store with the events, and the events with their personal fields sealed."""
        self._unsealed = events
        wanted = sealed_subjects(events)
        if not wanted:
            return None, events
        keys, new_keys = self.vault.keys_for(wanted)
        return new_keys, self.vault.seal_events(events, keys)

    def _conflict(self, batch: Sequence[Event], error: VersionConflict) -> VersionConflict:
        """The conflict named by the record another writer changed first (its field and version)."""
        seen: set[UUID] = set()
        for event in batch:
            if event.originator_id in seen:
                continue
            seen.add(event.originator_id)
            stored = self._store.stream(event.originator_id)
            if len(stored) < event.originator_version:
                continue  # not this one: nobody wrote the version we meant to write
            route = ROUTES.get(type(event.command))
            kind = route.aggregate.kind if route is not None else "record"
            name = _FIELD_OF_KIND.get(kind, kind)
            field = name if hasattr(event.command, name) else "command"
            slug = getattr(event.command, name, None)
            what = f"{kind} {slug!r}" if isinstance(slug, str) else f"the {kind}"
            return VersionConflict(
                field,
                f"{what} was changed by another command at the same time (it is now at "
                f"version {len(stored)}, this command was decided on version "
                f"{event.originator_version - 1}); nothing was written, send it again to have "
                "it decided on the new version",
            )
        return error  # the other writer's change is not visible (yet): the store's own words

    def _commit_spool(self, batch_size: int, on_write: Callable[[int], None] | None) -> int:
        spool = self._spool
        assert spool is not None
        self._spool = None
        written = 0
        erased: list[SubjectErased] = []
        try:
            # Every key first, in one go (a key without its event is harmless).
            keys = self.vault.create_keys(self._to_seal) if self._to_seal else {}
            self._to_seal = defaultdict(set)
            for batch in spool.batches(batch_size or spool.count or 1):
                rows = [row for row, _ in batch]
                todo = [i for i, (_, flags) in enumerate(batch) if flags & SEAL]
                if todo:
                    sealed = self.vault.seal_events(
                        [decode_event(rows[i].state) for i in todo], keys
                    )
                    for i, event in zip(todo, sealed, strict=True):
                        rows[i] = _stored(event)
                self._store.append_stored(rows)
                written += len(rows)
                for row, flags in batch:
                    if flags & ERASURE:
                        command = decode_event(row.state).command
                        assert isinstance(command, SubjectErased)
                        erased.append(command)
                if on_write is not None:
                    on_write(len(rows))
        finally:
            spool.close()
        self.committed = []
        self._committed()
        for command in erased:
            complete_erasure(self, command.network, command.subject)
        return written

    def discard(self) -> None:
        """Drop what was decided and not committed (and the spool's file)."""
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        self.pending = []
        self._streams = {}
        self._spooled = {}
        self._to_seal = defaultdict(set)

    def _committed(self) -> None:
        if self._seen is None:
            # What was decided here is in the log now: the index, read later, finds it there.
            self._own_parties = defaultdict(list)
            self._own_subjects = defaultdict(list)
        self._erasing = set()
        self._spooled = {}
        self._empty = False


#: What :meth:`UnitOfWork.load` finds for an aggregate not in memory (``None`` is "no such").
_ABSENT: Any = object()
#: Aggregates a spooling unit of work keeps in memory at most (some 2 kB each).
KEEP = 50_000
#: Fields whose values never name another aggregate.
_NOT_REFERENCES = frozenset(
    {"type", "network", "actor", "occurred_at", "command_id", "name", "reason", "subject"}
)
_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,99}\Z")


def _stored(event: Event) -> StoredEvent:
    """An event as the store's mapper encodes it."""
    return StoredEvent(
        originator_id=event.originator_id,
        originator_version=event.originator_version,
        topic=event.type,
        state=encode_event(event),
    )


@dataclass
class Outcome:
    """What ``execute`` did.

    ``recorded`` holds the events as recorded in the store: personal fields
    sealed (docs/privacy.md; ``Ledger.vault`` reveals them).
    """

    recorded: list[Event] = field(default_factory=list)
    duplicates: int = 0


class Ledger:
    """Commands in, events out, against one store."""

    def __init__(self, store: Store, clock: Clock = utc_now, rules: Rules | None = None) -> None:
        self.store = store
        self.clock = clock
        self.rules = rules if rules is not None else default_rules()
        #: The data subjects' keys (docs/privacy.md).
        self.vault = Vault(store.database)
        #: Agreements by party and referrals by subject, shared by its units of work.
        self.log_index = LogIndex(store)

    def unit_of_work(self) -> UnitOfWork:
        """A fresh unit of work over the store."""
        return UnitOfWork(self.store, self.clock, self.rules, self.vault, self.log_index)

    def prepare(self, command: Command) -> Command:
        """The command with its data subject filled in (see :meth:`Vault.prepare`)."""
        return self.vault.prepare(command)

    def execute(self, *commands: Command) -> Outcome:
        """Decide and record commands: all of them, or (on the first error) none."""
        return self.execute_all(commands)

    def execute_all(self, commands: Iterable[Command]) -> Outcome:
        """As :meth:`execute`, for an iterable of commands.

        When another writer changed one of the same records first (a
        :class:`~partnerledger.errors.VersionConflict`; nothing was written),
        the commands are decided again on the new versions, up to
        :data:`ATTEMPTS` times in all, unless one of them is in
        :data:`NOT_RETRIED`: a retry that the rules still accept records
        them (a command already recorded meanwhile is a duplicate), one they
        refuse raises that refusal (e.g. the referral is now declined).
        """
        batch = list(commands)
        retry = retry_safe(batch)
        for attempt in range(1, ATTEMPTS + 1):
            work = self.unit_of_work()
            # The streams they will look up, in one query (an unencodable command is
            # refused by decide, naming its field: nothing to read ahead for it).
            work.prefetch(c for c in batch if unencodable(c) is None)
            outcome = Outcome()
            for command in batch:
                event = work.decide(command)
                if event is None:
                    outcome.duplicates += 1
            try:
                work.commit()
            except VersionConflict:
                if not retry or attempt == ATTEMPTS:
                    raise
                # The others are writing now: let them finish (jittered, growing).
                time.sleep(random.uniform(0.001, 0.01) * attempt)  # noqa: S311
                continue
            outcome.recorded = work.committed  # as stored: personal fields sealed
            return outcome
        raise AssertionError("unreachable")  # pragma: no cover

    def history(self, aggregate_id: UUID) -> list[Event]:
        """Every event of one aggregate."""
        return self.store.stream(aggregate_id)
