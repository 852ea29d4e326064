"""The network's plugins: which rules it uses, switching them on and off, and their settings.

``/n/{network}/plugins`` lists every installed plugin (name, version, hooks,
what it does) with its state in the network and its settings in force.
A coordinator enables (``plugin.enabled``, default settings) or disables
(``plugin.disabled``) one, and edits its settings in a form **generated from
the plugin's settings Struct**: one input per field, by its type (numbers,
text, a choice for a ``Literal``, a checkbox for a ``bool``, JSON for lists,
mappings and nested structs), with its default and the field's docstring as
the hint. Saving records ``plugin.configured`` (``plugin.enabled`` for a
plugin not yet enabled) with the values that differ from the defaults; the
plugin's own checks run first, and a refused setting (``settings.tyfcb_15``)
is shown next to its input with nothing written.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import textwrap
from dataclasses import dataclass
from typing import Any

import msgspec
import msgspec.inspect as mi
from litestar import Request, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from partnerledger import DomainError
from partnerledger.errors import NotFound, StoreUnavailable
from partnerledger.pluginmanager import Rules, plugin_version

from .pages import NAV, NavItem, page, read_form
from .security import COORDINATOR, current_user, network_guard, services_of
from .services import ensure_network

NAV.append(NavItem("Plugins", "/plugins", order=90))

PREFIX = "settings."
_SETTING = re.compile(r"^settings\.([^.\[]+)")
_SCALARS = {
    mi.IntType: "a whole number",
    mi.FloatType: "a number",
    mi.DecimalType: "a decimal number",
    mi.StrType: "text",
}


# ------------------------------------------------------------ describing


def describe(plugin: object) -> str:
    """The first paragraph of the plugin's docstring: what it does."""
    doc = inspect.getdoc(plugin) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())


def field_docs(cls: type) -> dict[str, str]:
    """Each field's docstring (the string right after it) or comment on its line, from the source.

    msgspec keeps neither, so they are read from the class's source; a class
    whose source is not available has none.
    """
    try:
        lines, _ = inspect.getsourcelines(cls)
    except (OSError, TypeError):
        return {}
    source = textwrap.dedent("".join(lines))
    try:
        body = ast.parse(source).body[0]
    except (SyntaxError, IndexError):
        return {}
    if not isinstance(body, ast.ClassDef):
        return {}
    found: dict[str, str] = {}
    text_lines = source.splitlines()
    statements = body.body
    for index, node in enumerate(statements):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        name = node.target.id
        after = statements[index + 1] if index + 1 < len(statements) else None
        if (
            isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            found[name] = " ".join(after.value.value.split())
            continue
        line = text_lines[(node.end_lineno or node.lineno) - 1]
        if "#" in line:
            found[name] = line.split("#", 1)[1].strip()
    return found


@dataclass(frozen=True)
class Setting:
    """One input of a generated settings form."""

    name: str  # the setting's key, as the plugin reads it
    label: str
    kind: str  # "number", "decimal", "text", "choice", "bool", "json"
    optional: bool
    required: bool
    default: Any  # the default as plain data, or msgspec.NODEFAULT
    hint: str
    choices: tuple[Any, ...] = ()
    integer: bool = False

    @property
    def input(self) -> str:
        """The input's name in the form (as the domain names the field)."""
        return PREFIX + self.name

    def shown(self, value: Any) -> str:
        """A value as the input shows it."""
        if value is None or value is msgspec.NODEFAULT:
            return ""
        if self.kind == "json":
            return json.dumps(value, indent=2, ensure_ascii=False)
        if self.kind == "bool":
            return "true" if value else "false"
        return str(value)


def _plain(value: Any) -> Any:
    """JSON data: lists for tuples, strings for decimals (exact)."""
    return msgspec.json.decode(msgspec.json.encode(value))


def _kind(info: mi.Type) -> tuple[str, bool, tuple[Any, ...], bool, str]:
    """Input kind, optional, choices, integer, and a description of the type."""
    optional = False
    if isinstance(info, mi.UnionType):
        rest = [t for t in info.types if not isinstance(t, mi.NoneType)]
        optional = len(rest) < len(info.types)
        if len(rest) == 1:
            info = rest[0]
        else:
            return "json", optional, (), False, "JSON"
    if isinstance(info, mi.BoolType):
        return "bool", optional, (), False, "yes or no"
    if isinstance(info, mi.LiteralType):
        return "choice", optional, tuple(info.values), False, "one of the choices"
    if isinstance(info, mi.IntType | mi.FloatType | mi.DecimalType | mi.StrType):
        words = _SCALARS[type(info)]
        bounds = [
            f"{word} {getattr(info, attr)}"
            for attr, word in (
                ("ge", "at least"),
                ("gt", "above"),
                ("le", "at most"),
                ("lt", "below"),
            )
            if getattr(info, attr, None) is not None
        ]
        if bounds:
            words += " (" + ", ".join(bounds) + ")"
        kind = "decimal" if isinstance(info, mi.DecimalType) else (
            "number" if isinstance(info, mi.IntType | mi.FloatType) else "text"
        )  # fmt: skip
        return kind, optional, (), isinstance(info, mi.IntType), words
    if isinstance(info, mi.VarTupleType | mi.ListType | mi.SetType | mi.FrozenSetType):
        return "json", optional, (), False, "a JSON list"
    if isinstance(info, mi.DictType):
        return "json", optional, (), False, "a JSON object (name: value)"
    return "json", optional, (), False, "JSON"


def settings_form(cls: type[msgspec.Struct]) -> list[Setting]:
    """One input per field of a settings Struct, with its type, default and hint."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    docs = field_docs(cls)
    found = []
    for f in info.fields:
        kind, optional, choices, integer, words = _kind(f.type)
        if f.default is not msgspec.NODEFAULT:
            default: Any = _plain(f.default)
        elif f.default_factory is not msgspec.NODEFAULT:
            default = _plain(f.default_factory())
        else:
            default = msgspec.NODEFAULT
        parts = [words + ("; leave empty for none" if optional else "")]
        if default is not msgspec.NODEFAULT and kind != "bool":
            shown = (
                json.dumps(default) if kind == "json" else ("none" if default is None else default)
            )
            parts.append(f"default {shown}")
        elif default is not msgspec.NODEFAULT:
            parts.append("default " + ("yes" if default else "no"))
        if f.encode_name in docs or f.name in docs:
            parts.append(docs.get(f.name) or docs[f.encode_name])
        found.append(
            Setting(
                name=f.encode_name,
                label=f.encode_name,
                kind=kind,
                optional=optional,
                required=f.required,
                default=default,
                hint=" · ".join(parts),
                choices=choices,
                integer=integer,
            )
        )
    return found


# ------------------------------------------------------------ reading the form


def read_settings(
    form: dict[str, Any], fields: list[Setting]
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """The raw settings a form gives, the errors of unreadable JSON, and the values as typed."""
    raw: dict[str, Any] = {}
    errors: dict[str, str] = {}
    typed: dict[str, str] = {}
    for setting in fields:
        value = form.get(setting.input)
        text = str(value[-1] if isinstance(value, list) else value or "")
        typed[setting.input] = text
        if setting.kind == "bool":
            raw[setting.name] = text.lower() in ("true", "on", "1", "yes")
            continue
        if not text.strip():
            if setting.optional:
                raw[setting.name] = None
            elif setting.required:
                errors[setting.input] = "required"
            continue  # the default applies
        if setting.kind == "json":
            try:
                raw[setting.name] = json.loads(text)
            except json.JSONDecodeError as error:
                errors[setting.input] = f"not valid JSON: {error.msg} (line {error.lineno})"
            continue
        if setting.kind == "choice":
            by_text = {str(c): c for c in setting.choices}
            raw[setting.name] = by_text.get(text.strip(), text.strip())
            continue
        raw[setting.name] = text.strip() if setting.kind != "text" else text
    return raw, errors, typed


def changed_settings(
    rules: Rules, plugin: str, cls: type[msgspec.Struct], raw: dict[str, Any]
) -> dict[str, Any]:
    """Validated settings, keeping only what differs from the defaults (they fill the rest).

    Raises :class:`InvalidCommand` on ``settings.<name>`` when the plugin refuses them.
    """
    chosen = rules.settings(plugin, raw)
    try:
        defaults = msgspec.convert({}, cls)
    except msgspec.ValidationError:  # a setting without a default: record them all
        defaults = None
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    kept = {}
    for f in info.fields:
        value = getattr(chosen, f.name)
        if defaults is None or value != getattr(defaults, f.name):
            kept[f.encode_name] = _plain(value)
    return kept


def _errors(error: DomainError, fields: list[Setting]) -> dict[str, str]:
    """A refused setting named as its input (``settings.ladder[0].name`` → ``settings.ladder``)."""
    match = _SETTING.match(error.field)
    names = {s.name for s in fields}
    if match and match[1] in names:
        rest = error.field[len(match[0]) :]
        reason = f"{rest.lstrip('.')}: {error.reason}" if rest else error.reason
        return {PREFIX + match[1]: reason}
    return {error.field: error.reason}


# ---------------------------------------------------------------- pages


@dataclass(frozen=True)
class Installed:
    """A plugin as the list shows it."""

    name: str
    version: str
    hooks: tuple[str, ...]
    description: str
    builtin: bool
    installed: bool
    enabled: bool
    settings: dict[str, Any] | None  # in force (defaults filled), None without settings
    problem: str | None


def installed(rules: Rules, enabled: dict[str, dict[str, Any]]) -> list[Installed]:
    """Every installed plugin, and every enabled one this process does not have."""
    found = []
    for name in rules.names():
        plugin = rules.plugin(name)
        hooks = tuple(sorted(c.name for c in rules.pm.get_hookcallers(plugin) or ()))
        settings, problem = None, None
        try:
            chosen = rules.settings(name, enabled.get(name))
            settings = _plain(chosen) if chosen is not None else None
        except DomainError as error:  # bad recorded settings, or a broken settings declaration
            problem = f"{error.field}: {error.reason}"
            settings = enabled.get(name)
        found.append(
            Installed(
                name=name, version=plugin_version(plugin), hooks=hooks,
                description=describe(plugin), builtin=name in rules.builtin, installed=True,
                enabled=name in enabled, settings=settings, problem=problem,
            )
        )  # fmt: skip
    for name in sorted(set(enabled) - set(rules.names())):
        found.append(
            Installed(
                name=name, version="?", hooks=(), description="", builtin=False, installed=False,
                enabled=True, settings=enabled[name],
                problem="not installed here: its rules are not applied by this server",
            )
        )  # fmt: skip
    return found


def _plugins_page(
    request: Request[Any, Any, Any],
    network: str,
    *,
    errors: dict[str, str] | None = None,
    saved: str | None = None,
    status_code: int = 200,
) -> Template:
    services = services_of(request)
    found = ensure_network(services, network)
    rules = services.ledger.rules
    plugins = installed(rules, found.plugins)
    return page(
        request, "plugins.html", network=network, info=found, plugins=plugins,
        failures=rules.failures, errors=errors or {}, saved=saved, status_code=status_code,
    )  # fmt: skip


def _known(rules: Rules, plugin: str) -> None:
    if plugin not in rules.names():
        raise NotFound("plugin", f"no plugin {plugin!r} is installed")


@get(
    "/n/{network:str}/plugins",
    operation_id="pluginsPage",
    guards=[network_guard],
    include_in_schema=False,
)
async def plugins_page(
    request: Request[Any, Any, Any], network: FromPath[str], saved: FromQuery[str | None] = None
) -> Template:
    """The installed plugins, which of them the network uses, and their settings."""
    return _plugins_page(request, network, saved=saved)


async def _switch(request: Request[Any, Any, Any], network: str, plugin: str, kind: str) -> Any:
    services = services_of(request)
    ensure_network(services, network)
    if kind == "plugin.enabled":
        _known(services.ledger.rules, plugin)
    try:
        services.execute(
            {"type": kind, "network": network, "plugin": plugin}, current_user(request)
        )
    except StoreUnavailable:
        raise
    except DomainError as error:
        reason = error.reason if error.field == "plugin" else f"{error.field}: {error.reason}"
        return _plugins_page(request, network, errors={plugin: reason}, status_code=422)
    return Redirect(path=f"/n/{network}/plugins", status_code=303)


@post(
    "/n/{network:str}/plugins/{plugin:str}/enable",
    operation_id="enablePlugin",
    guards=[network_guard],
    opt=COORDINATOR,
    include_in_schema=False,
)
async def enable_plugin(
    request: Request[Any, Any, Any], network: FromPath[str], plugin: FromPath[str]
) -> Any:
    """Start using a plugin with its default settings (a coordinator only)."""
    return await _switch(request, network, plugin, "plugin.enabled")


@post(
    "/n/{network:str}/plugins/{plugin:str}/disable",
    operation_id="disablePlugin",
    guards=[network_guard],
    opt=COORDINATOR,
    include_in_schema=False,
)
async def disable_plugin(
    request: Request[Any, Any, Any], network: FromPath[str], plugin: FromPath[str]
) -> Any:
    """Stop using a plugin (a coordinator only)."""
    return await _switch(request, network, plugin, "plugin.disabled")


def _settings_page(
    request: Request[Any, Any, Any],
    network: str,
    plugin: str,
    *,
    typed: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    services = services_of(request)
    found = ensure_network(services, network)
    rules = services.ledger.rules
    _known(rules, plugin)
    cls = rules.settings_type(plugin)
    fields = settings_form(cls) if cls is not None else []
    values = dict(typed or {})
    problem = None
    if typed is None:
        try:
            chosen = rules.settings(plugin, found.plugins.get(plugin))
            current = _plain(chosen) if chosen is not None else {}
        except DomainError as error:  # recorded under older rules: show what was recorded
            problem = f"{error.field}: {error.reason}"
            current = dict(found.plugins.get(plugin) or {})
        values = {s.input: s.shown(current.get(s.name, s.default)) for s in fields}
    return page(
        request, "plugins_settings.html", network=network, info=found, plugin=plugin,
        about=rules.info(plugin), description=describe(rules.plugin(plugin)), fields=fields,
        values=values, enabled=plugin in found.plugins, problem=problem,
        errors=errors or {}, status_code=status_code,
    )  # fmt: skip


@get(
    "/n/{network:str}/plugins/{plugin:str}/settings",
    operation_id="pluginSettingsPage",
    guards=[network_guard],
    include_in_schema=False,
)
async def plugin_settings_page(
    request: Request[Any, Any, Any], network: FromPath[str], plugin: FromPath[str]
) -> Template:
    """A plugin's settings in this network, as a form generated from its settings Struct."""
    return _settings_page(request, network, plugin)


@post(
    "/n/{network:str}/plugins/{plugin:str}/settings",
    operation_id="configurePlugin",
    guards=[network_guard],
    opt=COORDINATOR,
    include_in_schema=False,
)
async def configure_plugin(
    request: Request[Any, Any, Any], network: FromPath[str], plugin: FromPath[str]
) -> Any:
    """Record a plugin's settings; enables it with them when it is not enabled yet."""
    services = services_of(request)
    found = ensure_network(services, network)
    rules = services.ledger.rules
    _known(rules, plugin)
    cls = rules.settings_type(plugin)
    fields = settings_form(cls) if cls is not None else []
    form = await read_form(request)
    raw, errors, typed = read_settings(form, fields)
    enabled = plugin in found.plugins
    if not errors:
        try:
            settings = changed_settings(rules, plugin, cls, raw) if cls is not None else {}
            kind = "plugin.configured" if enabled else "plugin.enabled"
            fields_in = {"type": kind, "network": network, "plugin": plugin, "settings": settings}
            services.execute(fields_in, current_user(request))
        except StoreUnavailable:
            raise
        except DomainError as error:
            errors = _errors(error, fields)
    if errors:
        return _settings_page(request, network, plugin, typed=typed, errors=errors, status_code=422)
    return Redirect(path=f"/n/{network}/plugins?saved={plugin}", status_code=303)


ROUTES = [
    plugins_page,
    enable_plugin,
    disable_plugin,
    plugin_settings_page,
    configure_plugin,
]

__all__ = [
    "ROUTES",
    "Setting",
    "changed_settings",
    "describe",
    "field_docs",
    "installed",
    "read_settings",
    "settings_form",
]
