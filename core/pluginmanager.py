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
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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

#: A network's enabled plugins: name → validated settings (``None`` without settings).
Enabled = Mapping[str, Any]


class PluginFailed(DomainError):
    """A plugin raised while deciding; the operation failed and wrote nothing."""

    code = "plugin_failed"


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
                declared = impl.function()
                if declared is not None and not (
                    isinstance(declared, type) and issubclass(declared, msgspec.Struct)
                ):
                    raise PluginFailed(
                        "plugin", f"plugin {name!r} declares settings that are not a msgspec Struct"
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

    def _call(self, name: str, impl: Any, settings: Any, **kwargs: Any) -> Any:
        kwargs["settings"] = settings
        try:
            return impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
        except Exception as error:
            raise PluginFailed(
                "plugin", f"plugin {name!r} failed: {type(error).__name__}: {error}"
            ) from error

    def _decision(self, name: str, value: Any) -> Decision:
        return Decision(plugin=name, version=plugin_version(self.pm.get_plugin(name)), value=value)

    def _first(self, hook: str, enabled: Enabled, **kwargs: Any) -> Decision | None:
        for name, impl, settings in self._calls(hook, enabled):
            value = self._call(name, impl, settings, **kwargs)
            if value is not None:
                return self._decision(name, value)
        return None

    def _collect(self, hook: str, enabled: Enabled, **kwargs: Any) -> list[Decision]:
        decisions = []
        for name, impl, settings in self._calls(hook, enabled):
            for value in self._call(name, impl, settings, **kwargs) or ():
                decisions.append(self._decision(name, value))
        return decisions

    def score(self, activity: Activity, enabled: Enabled) -> Decision | None:
        """The network's score for one member's activity (a :class:`Score` decision)."""
        decision = self._first("partnerledger_score", enabled, activity=activity)
        _expect(decision, Score)
        return decision

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
        decision = self._first(
            "partnerledger_tier",
            enabled,
            score=score,
            ladder=ladder,
            previous=previous,
            periods_below=periods_below,
        )
        _expect(decision, TierChoice)
        return decision

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
        decisions = self._collect(
            "partnerledger_incentives",
            enabled,
            event=event,
            referral=referral,
            terms=terms,
            tier=tier,
        )
        for decision in decisions:
            _expect(decision, LedgerEntry)
        return decisions

    def attribute(
        self, customer: str, referrals: list[ReferralFacts], enabled: Enabled
    ) -> list[Decision]:
        """Credits for competing referrals of one customer (empty: no plugin decided)."""
        for name, impl, settings in self._calls("partnerledger_attribute", enabled):
            credits = self._call(name, impl, settings, customer=customer, referrals=referrals)
            if credits is None:
                continue
            if not isinstance(credits, list) or not all(isinstance(c, Credit) for c in credits):
                raise PluginFailed("plugin", f"plugin {name!r} returned no list of Credit")
            return [self._decision(name, credit) for credit in credits]
        return []

    def notify(
        self, event: Event, lookup: Lookup, enabled: Enabled
    ) -> tuple[list[Decision], list[PluginFailed]]:
        """Messages an event sends, and the failures of plugins that raised.

        One failing plugin never stops the others: its error is returned
        beside the messages of the rest.
        """
        decisions: list[Decision] = []
        failures: list[PluginFailed] = []
        for name, impl, settings in self._calls("partnerledger_notify", enabled):
            try:
                produced = self._call(name, impl, settings, event=event, lookup=lookup) or []
                if not isinstance(produced, list) or not all(
                    isinstance(m, Message) for m in produced
                ):
                    raise PluginFailed(
                        "plugin", f"plugin {name!r} returned something other than a list of Message"
                    )
            except PluginFailed as failure:
                failures.append(failure)
                continue
            decisions.extend(self._decision(name, m) for m in produced)
        return decisions, failures

    def validate(self, command: Command, lookup: Lookup, enabled: Enabled) -> list[Decision]:
        """Every veto of a command by the enabled validation plugins."""
        vetoes = []
        for name, impl, settings in self._calls("partnerledger_validate", enabled):
            veto = self._call(name, impl, settings, command=command, lookup=lookup)
            if veto is not None:
                decision = self._decision(name, veto)
                _expect(decision, Veto)
                vetoes.append(decision)
        return vetoes


def _expect(decision: Decision | None, kind: type) -> None:
    if decision is not None and not isinstance(decision.value, kind):
        raise PluginFailed(
            "plugin",
            f"plugin {decision.plugin!r} returned {type(decision.value).__name__}, "
            f"not {kind.__name__}",
        )


def load_rules(
    builtins: Iterable[object] | None = None, env: Mapping[str, str] | None = None
) -> Rules:
    """A plugin manager with the built-ins and the allowed third-party plugins."""
    env = os.environ if env is None else env
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if builtins is None:
        # The built-ins live in partnerledger.plugins, outside the kernel.
        builtins = importlib.import_module("partnerledger.plugins").BUILTIN_PLUGINS
    names = set()
    for plugin in builtins:
        name = plugin_name(plugin)
        pm.register(plugin, name=name)
        names.add(name)
    rules = Rules(pm, frozenset(names))
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
