"""Loading plugins, and the typed facade the rest of the code calls them through.

One process-wide pluggy manager holds the built-in plugins (registered from
the one tuple in :mod:`partnerledger.plugins`) and the third-party ones found
under the entry-point group ``partnerledger``. ``PARTNERLEDGER_PLUGINS`` names
the third-party plugins to load (comma-separated): unset loads all installed,
empty loads none; built-ins are always registered. A plugin that fails to
import or register is reported by name in :attr:`Rules.failures` and left out.

A network calls only the plugins it enabled: :class:`Rules` walks a hook's
implementations itself, in pluggy's call order, calling each enabled plugin
with its own settings, so every result comes back as a
:class:`~partnerledger.rules.Decision` naming the plugin and its version, and
a plugin that raises is named in the error.

Every call is timed. A plugin that takes longer than
``PARTNERLEDGER_PLUGIN_SLOW`` seconds (default 1) is logged as slow; one
that takes longer than ``PARTNERLEDGER_PLUGIN_TIMEOUT`` seconds (default 5;
``0`` turns the limit off) fails with :class:`PluginFailed`. Python cannot
stop a thread, so a plugin under a time limit runs in a worker thread of a
small shared pool and the caller stops waiting at the deadline: the hung
call's thread keeps running, but nothing it returns is used, the ``lookup``
it was given refuses it from then on, and the plugin's next calls fail at
once while that thread is still busy. The built-in plugins (the pure
functions of :mod:`partnerledger.plugins`) run inline in the caller's
thread: handing a call to a thread costs some 50 microseconds, and they are
called once per event on the hot paths of imports and projections.
"""

from __future__ import annotations

import importlib
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import metadata
from types import ModuleType
from typing import Any

import msgspec
import pluggy

from . import hookspecs
from .commands import Command, Terms, Tier
from .domain import Lookup
from .errors import DomainError, InvalidCommand
from .events import Event
from .rules import (
    Activity,
    Credit,
    Decision,
    LedgerEntry,
    Message,
    ReferralFacts,
    Score,
    TierChoice,
    Veto,
)

_NAMED = re.compile(r"^(?P<field>[A-Za-z_][\w.\[\]]*): (?P<reason>.+)$")

ENTRY_POINT_GROUP = "partnerledger"
ALLOWLIST_ENV = "PARTNERLEDGER_PLUGINS"
TIMEOUT_ENV = "PARTNERLEDGER_PLUGIN_TIMEOUT"
SLOW_ENV = "PARTNERLEDGER_PLUGIN_SLOW"
#: Seconds a plugin call may take before it fails (``0``: no limit).
DEFAULT_TIMEOUT = 5.0
#: Seconds after which a plugin call is logged as slow.
DEFAULT_SLOW = 1.0
#: The modules whose plugins run inline, without a time limit: the built-ins.
INLINE_PACKAGE = "partnerledger.plugins"
#: Threads of the shared pool that runs plugin calls under a time limit.
POOL_THREADS = 8

_log = logging.getLogger("partnerledger.plugins")

#: A network's enabled plugins: name → validated settings (``None`` without settings).
Enabled = Mapping[str, Any]


class PluginFailed(DomainError):
    """A plugin raised, returned the wrong type or timed out; the operation wrote nothing.

    ``plugin`` and ``hook`` name the plugin and the hook when known.
    """

    code = "plugin_failed"

    def __init__(
        self, field: str, reason: str, *, plugin: str | None = None, hook: str | None = None
    ) -> None:
        super().__init__(field, reason)
        self.plugin = plugin
        self.hook = hook


class _Fenced:
    """A ``lookup`` handed to a plugin under a time limit: closed when its time runs out.

    Every read goes through a lock; :meth:`close` takes it, so once the
    caller has stopped waiting, a late plugin thread can no longer read
    (or fill the caches of) the caller's unit of work.
    """

    def __init__(self, target: Any, name: str, hook: str) -> None:
        self._target = target
        self._name = name
        self._hook = hook
        self._lock = threading.Lock()
        self._open = True

    def close(self) -> None:
        with self._lock:
            self._open = False

    def __getattr__(self, attribute: str) -> Any:
        found = getattr(self._target, attribute)
        if not callable(found):
            return found

        def guarded(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                if not self._open:
                    raise PluginFailed(
                        "plugin",
                        f"plugin {self._name!r} read the lookup after its time ran out",
                        plugin=self._name,
                        hook=self._hook,
                    )
                return found(*args, **kwargs)

        return guarded


class _DaemonPool:
    """A small pool of daemon threads that run plugin calls under a time limit.

    Not :class:`~concurrent.futures.ThreadPoolExecutor`: its threads are
    joined when the interpreter exits, so one hung plugin would keep a
    finished CLI command from ever exiting. Threads start as calls need them,
    up to ``size``; a call waits in the queue when all are busy.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], dict[str, Any]]]
        self._queue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def submit(self, function: Callable[..., Any], arguments: dict[str, Any]) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._idle:
                self._idle -= 1  # an idle thread takes it
            elif self._threads < self._size:
                self._threads += 1
                name = f"partnerledger-plugin-{self._threads}"
                threading.Thread(target=self._work, name=name, daemon=True).start()
        self._queue.put((future, function, arguments))
        return future

    def _work(self) -> None:
        while True:
            future, function, arguments = self._queue.get()
            if future.set_running_or_notify_cancel():
                try:
                    result = function(**arguments)
                except BaseException as error:  # handed to the caller, who may be gone
                    future.set_exception(error)
                else:
                    future.set_result(result)
            del future, function, arguments  # a late result is dropped here, unread
            with self._lock:
                self._idle += 1


_pool = _DaemonPool(POOL_THREADS)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (value >= 0 and value != float("inf")):
        raise InvalidCommand(name, f"must be a number of seconds, 0 or more (got {raw!r})")
    return value


def _shown(seconds: float) -> str:
    return f"{seconds:g} s"


@dataclass(frozen=True)
class PluginInfo:
    """What ``partnerledger plugins`` lists."""

    name: str
    version: str
    hooks: tuple[str, ...]
    settings: dict[str, Any] | None  # JSON Schema of the settings Struct
    builtin: bool

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "name": self.name,
            "version": self.version,
            "hooks": list(self.hooks),
            "settings": self.settings,
            "builtin": self.builtin,
        }


def plugin_name(plugin: object) -> str:
    """A plugin's name: its ``NAME`` attribute, else its module or class name."""
    name = getattr(plugin, "NAME", None)
    if isinstance(name, str):
        return name
    if isinstance(plugin, ModuleType):
        return plugin.__name__.rsplit(".", 1)[-1]
    return type(plugin).__name__


def _module_of(plugin: object) -> str:
    if isinstance(plugin, ModuleType):
        return plugin.__name__
    return type(plugin).__module__


def plugin_version(plugin: object) -> str:
    """A plugin's version: its ``VERSION`` attribute, else ``"0"``."""
    version = getattr(plugin, "VERSION", None)
    return version if isinstance(version, str) else "0"


@dataclass
class Rules:
    """The plugins of this process, and the only way the application calls hooks."""

    pm: pluggy.PluginManager
    builtin: frozenset[str] = frozenset()
    failures: dict[str, str] = field(default_factory=dict)
    #: Seconds a call may take (``0``: no limit); see the module's docstring.
    timeout: float = DEFAULT_TIMEOUT
    #: Seconds after which a call is logged as slow.
    slow: float = DEFAULT_SLOW
    #: Plugins called inline (no time limit): the built-ins of :data:`INLINE_PACKAGE`.
    inline: frozenset[str] = frozenset()
    #: Calls that timed out and are still running, per plugin.
    _hung: dict[str, int] = field(default_factory=dict)
    _hung_lock: threading.Lock = field(default_factory=threading.Lock)

    # -- what is installed ------------------------------------------------

    def names(self) -> list[str]:
        """Every registered plugin's name."""
        return sorted(name for name, _ in self.pm.list_name_plugin() if name is not None)

    def plugin(self, name: str) -> object | None:
        """The registered plugin called ``name``."""
        return self.pm.get_plugin(name)

    def info(self, name: str) -> PluginInfo:
        """Name, version, hooks and settings schema of one plugin."""
        plugin = self.pm.get_plugin(name)
        hooks = tuple(sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or ()))
        settings_type = self.settings_type(name)
        schema = msgspec.json.schema(settings_type) if settings_type is not None else None
        return PluginInfo(name, plugin_version(plugin), hooks, schema, name in self.builtin)

    def implements(self, name: str, hook: str) -> bool:
        """Whether the plugin called ``name`` implements ``hook``."""
        caller = getattr(self.pm.hook, hook)
        return any(impl.plugin_name == name for impl in caller.get_hookimpls())

    def settings_type(self, name: str) -> type[msgspec.Struct] | None:
        """The plugin's settings Struct (``None`` for a plugin without settings)."""
        for impl in self.pm.hook.partnerledger_settings.get_hookimpls():
            if impl.plugin_name == name:
                declared = self._call(name, impl, None, "partnerledger_settings")
                if declared is not None and not (
                    isinstance(declared, type) and issubclass(declared, msgspec.Struct)
                ):
                    raise PluginFailed(
                        "plugin",
                        f"plugin {name!r} declares settings that are not a msgspec Struct",
                        plugin=name,
                        hook="partnerledger_settings",
                    )
                return declared
        return None

    def settings(self, name: str, raw: Mapping[str, Any] | None, field: str = "settings") -> Any:
        """Validate raw settings for a plugin; defaults fill what is missing.

        Raises :class:`InvalidCommand` naming ``field.<setting>`` and the reason.
        """
        if self.pm.get_plugin(name) is None:
            known = ", ".join(self.names())
            raise InvalidCommand("plugin", f"no plugin {name!r} is installed (installed: {known})")
        settings_type = self.settings_type(name)
        if settings_type is None:
            if raw:
                raise InvalidCommand(field, f"plugin {name!r} has no settings")
            return None
        try:
            return msgspec.convert(dict(raw or {}), settings_type, strict=False)
        except msgspec.ValidationError as error:
            from .errors import from_validation_error

            problem = from_validation_error(error)
            inner, reason = problem.field, problem.reason
            # A settings Struct's own checks say "name: reason" (see docs/plugins.md).
            named = _NAMED.match(reason) if inner == "-" else None
            if named:
                inner, reason = named["field"], named["reason"]
            suffix = "" if inner == "-" else f".{inner}"
            raise InvalidCommand(f"{field}{suffix}", reason) from None

    # -- calling hooks ----------------------------------------------------

    def _calls(self, hook: str, enabled: Enabled) -> Iterable[tuple[str, Any, Any]]:
        caller = getattr(self.pm.hook, hook)
        # pluggy calls implementations last-registered first: keep its order.
        for impl in reversed(caller.get_hookimpls()):
            if impl.plugin_name in enabled:
                yield impl.plugin_name, impl, enabled[impl.plugin_name]

    def _call(self, name: str, impl: Any, settings: Any, hook: str, **kwargs: Any) -> Any:
        """Call one implementation: timed, and under the time limit unless it runs inline.

        Raises :class:`PluginFailed` naming the plugin and the hook when it
        raises or times out; logs a warning when it is slow.
        """
        kwargs["settings"] = settings
        arguments = {arg: kwargs[arg] for arg in impl.argnames}
        if self.timeout <= 0 or name in self.inline:
            started = time.perf_counter()
            try:
                value = impl.function(**arguments)
            except Exception as error:
                raise self._raised(name, hook, error) from error
            self._timed(name, hook, time.perf_counter() - started)
            return value
        return self._call_limited(name, hook, impl.function, arguments)

    def _call_limited(
        self, name: str, hook: str, function: Callable[..., Any], arguments: dict[str, Any]
    ) -> Any:
        limit = _shown(self.timeout)
        with self._hung_lock:
            if self._hung.get(name):
                raise PluginFailed(
                    "plugin",
                    f"plugin {name!r} timed out after {limit} in {hook}: "
                    "an earlier call that timed out is still running",
                    plugin=name,
                    hook=hook,
                )
        fenced = None
        if "lookup" in arguments:
            fenced = arguments["lookup"] = _Fenced(arguments["lookup"], name, hook)
        if isinstance(arguments.get("referrals"), list):
            arguments["referrals"] = list(arguments["referrals"])  # the caller's list stays its own
        started = time.perf_counter()
        future = _pool.submit(function, arguments)
        try:
            value = future.result(timeout=self.timeout)
        except FutureTimeout:
            if fenced is not None:
                fenced.close()
            if not future.cancel():  # it is running: count it until it ends
                with self._hung_lock:
                    self._hung[name] = self._hung.get(name, 0) + 1
                future.add_done_callback(lambda _: self._ended(name))
            _log.warning("plugin %r timed out after %s in %s", name, limit, hook)
            raise PluginFailed(
                "plugin",
                f"plugin {name!r} timed out after {limit} in {hook}",
                plugin=name,
                hook=hook,
            ) from None
        except Exception as error:
            raise self._raised(name, hook, error) from error
        finally:
            if fenced is not None:
                fenced.close()
        self._timed(name, hook, time.perf_counter() - started)
        return value

    def _ended(self, name: str) -> None:
        with self._hung_lock:
            self._hung[name] = self._hung.get(name, 1) - 1

    def _raised(self, name: str, hook: str, error: Exception) -> PluginFailed:
        if isinstance(error, PluginFailed) and error.plugin is not None:
            return error  # already names a plugin (a fenced lookup read too late...)
        reason = f"plugin {name!r} failed: {type(error).__name__}: {error}"
        return PluginFailed("plugin", reason, plugin=name, hook=hook)

    def _timed(self, name: str, hook: str, elapsed: float) -> None:
        if elapsed >= self.slow:
            _log.warning("plugin %r was slow in %s: %.3f s", name, hook, elapsed)

    def _decision(self, name: str, value: Any) -> Decision:
        return Decision(plugin=name, version=plugin_version(self.pm.get_plugin(name)), value=value)

    def _first(self, hook: str, kind: type, enabled: Enabled, **kwargs: Any) -> Decision | None:
        for name, impl, settings in self._calls(hook, enabled):
            value = self._call(name, impl, settings, hook, **kwargs)
            if value is not None:
                _expect(name, hook, value, kind)
                return self._decision(name, value)
        return None

    def _collect(self, hook: str, kind: type, enabled: Enabled, **kwargs: Any) -> list[Decision]:
        decisions: list[Decision] = []
        for name, impl, settings in self._calls(hook, enabled):
            values = self._call(name, impl, settings, hook, **kwargs)
            if values is None:
                continue
            _expect_list(name, hook, values, kind)
            decisions.extend(self._decision(name, value) for value in values)
        return decisions

    def score(self, activity: Activity, enabled: Enabled) -> Decision | None:
        """The network's score for one member's activity (a :class:`Score` decision)."""
        return self._first("partnerledger_score", Score, enabled, activity=activity)

    def tier(
        self,
        score: Score,
        ladder: tuple[Tier, ...],
        enabled: Enabled,
        *,
        previous: str | None = None,
        periods_below: int = 0,
    ) -> Decision | None:
        """The tier a score earns (a :class:`TierChoice` decision)."""
        return self._first(
            "partnerledger_tier",
            TierChoice,
            enabled,
            score=score,
            ladder=ladder,
            previous=previous,
            periods_below=periods_below,
        )

    def incentives(
        self,
        event: Event,
        enabled: Enabled,
        *,
        referral: ReferralFacts | None = None,
        terms: Terms | None = None,
        tier: TierChoice | None = None,
    ) -> list[Decision]:
        """Every ledger entry the enabled plugins derive from an event."""
        return self._collect(
            "partnerledger_incentives",
            LedgerEntry,
            enabled,
            event=event,
            referral=referral,
            terms=terms,
            tier=tier,
        )

    def attribute(
        self, customer: str, referrals: list[ReferralFacts], enabled: Enabled
    ) -> list[Decision]:
        """Credits for competing referrals of one customer (empty: no plugin decided)."""
        hook = "partnerledger_attribute"
        for name, impl, settings in self._calls(hook, enabled):
            credits = self._call(name, impl, settings, hook, customer=customer, referrals=referrals)
            if credits is None:
                continue
            _expect_list(name, hook, credits, Credit)
            known = {r.referral for r in referrals}
            strange = sorted({c.referral for c in credits} - known)
            if strange:
                raise _wrong(name, hook, f"credited referrals it was not given: {strange}")
            shares = sum((c.share for c in credits), Decimal(0))
            if credits and shares != 1:
                raise _wrong(name, hook, f"returned shares adding up to {shares}, not 1")
            return [self._decision(name, credit) for credit in credits]
        return []

    def notify(
        self, event: Event, lookup: Lookup, enabled: Enabled
    ) -> tuple[list[Decision], list[PluginFailed]]:
        """Messages an event sends, and the failures of plugins that raised.

        One failing plugin (raising, returning the wrong type, timing out)
        never stops the others: its error is returned beside the messages of
        the rest.
        """
        hook = "partnerledger_notify"
        decisions: list[Decision] = []
        failures: list[PluginFailed] = []
        for name, impl, settings in self._calls(hook, enabled):
            try:
                produced = self._call(name, impl, settings, hook, event=event, lookup=lookup)
                if produced is None:
                    continue
                if not isinstance(produced, list) or not all(
                    isinstance(m, Message) for m in produced
                ):
                    raise _wrong(name, hook, "returned something other than a list of Message")
            except PluginFailed as failure:
                failures.append(failure)
                continue
            decisions.extend(self._decision(name, m) for m in produced)
        return decisions, failures

    def validate(self, command: Command, lookup: Lookup, enabled: Enabled) -> list[Decision]:
        """Every veto of a command by the enabled validation plugins."""
        hook = "partnerledger_validate"
        vetoes: list[Decision] = []
        if not enabled:
            return vetoes
        # As _calls does, without a generator: called for every command a network decides.
        for impl in reversed(self.pm.hook.partnerledger_validate.get_hookimpls()):
            name = impl.plugin_name
            if name not in enabled:
                continue
            veto = self._call(name, impl, enabled[name], hook, command=command, lookup=lookup)
            if veto is not None:
                _expect(name, hook, veto, Veto)
                vetoes.append(self._decision(name, veto))
        return vetoes


def _wrong(name: str, hook: str, what: str) -> PluginFailed:
    return PluginFailed("plugin", f"plugin {name!r} {what}", plugin=name, hook=hook)


def _expect(name: str, hook: str, value: object, kind: type) -> None:
    if not isinstance(value, kind):
        raise _wrong(name, hook, f"returned {type(value).__name__}, not {kind.__name__}")


def _expect_list(name: str, hook: str, values: object, kind: type) -> None:
    if not isinstance(values, list):
        raise _wrong(name, hook, f"returned {type(values).__name__}, not a list of {kind.__name__}")
    for value in values:
        if not isinstance(value, kind):
            raise _wrong(
                name, hook, f"returned a list holding {type(value).__name__}, not {kind.__name__}"
            )


def load_rules(
    builtins: Iterable[object] | None = None, env: Mapping[str, str] | None = None
) -> Rules:
    """A plugin manager with the built-ins and the allowed third-party plugins.

    ``PARTNERLEDGER_PLUGIN_TIMEOUT`` and ``PARTNERLEDGER_PLUGIN_SLOW`` (seconds)
    set the time limit and the slow-call warning; a value that is not a number
    of seconds, 0 or more, is refused (:class:`InvalidCommand` naming it).
    """
    env = os.environ if env is None else env
    timeout = _seconds(env, TIMEOUT_ENV, DEFAULT_TIMEOUT)
    slow = _seconds(env, SLOW_ENV, DEFAULT_SLOW)
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if builtins is None:
        # The built-ins live in partnerledger.plugins, outside the kernel.
        builtins = importlib.import_module("partnerledger.plugins").BUILTIN_PLUGINS
    names = set()
    inline = set()
    for plugin in builtins:
        name = plugin_name(plugin)
        pm.register(plugin, name=name)
        names.add(name)
        if _module_of(plugin).startswith(INLINE_PACKAGE + "."):
            inline.add(name)
    rules = Rules(pm, frozenset(names), timeout=timeout, slow=slow, inline=frozenset(inline))
    allow = env.get(ALLOWLIST_ENV)
    allowed = None if allow is None else {n.strip() for n in allow.split(",") if n.strip()}
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and entry.name not in allowed:
            continue
        try:
            plugin = entry.load()
            pm.register(plugin, name=entry.name)
        except Exception as error:
            rules.failures[entry.name] = f"{type(error).__name__}: {error}"
    return rules
