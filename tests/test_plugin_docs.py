"""docs/plugins.md documents every hook: keep it true.

Every hook of :mod:`partnerledger.hookspecs` (every function named
``partnerledger_*``) has a ``### `partnerledger_xxx``` section that names each
of its arguments in backticks, shows its signature as declared, and gives an
example that registers as a plugin; every Python block on the page is valid
Python; and the worked plugin is shown file for file as it is in examples/.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy
import pytest

from partnerledger import hookspecs

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "plugins.md"
TEXT = DOC.read_text(encoding="utf-8")
EXAMPLE = ROOT / "examples" / "partnerledger-referral-streak"

HOOKS = {
    name: function
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
    if name.startswith("partnerledger_")
}

_HEADING = re.compile(r"^#{1,6} ")
_HOOK_HEADING = re.compile(r"^### `(partnerledger_\w+)`\s*$")
_FENCE = re.compile(r"^(`{3,})(\S*)\s*$")


def _blocks(text: str) -> list[tuple[str, str]]:
    """Every fenced code block of ``text``: (language, content)."""
    blocks: list[tuple[str, str]] = []
    fence: str | None = None
    language = ""
    lines: list[str] = []
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if fence is None:
            opening = _FENCE.match(stripped)
            if opening:
                fence, language, lines = opening.group(1), opening.group(2), []
        elif stripped == fence:
            blocks.append((language, "".join(lines)))
            fence = None
        else:
            lines.append(line)
    return blocks


def _hook_sections(text: str) -> dict[str, str]:
    """Hook name -> the text of its ``### `name``` section (to the next heading)."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    fence: str | None = None
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        opening = _FENCE.match(stripped)
        if fence is None and opening:
            fence = opening.group(1)
        elif fence is not None and stripped == fence:
            fence = None
        elif fence is None and _HEADING.match(line):
            match = _HOOK_HEADING.match(line)
            current = sections.setdefault(match.group(1), []) if match else None
            continue
        if current is not None:
            current.append(line)
    return {name: "".join(lines) for name, lines in sections.items()}


SECTIONS = _hook_sections(TEXT)


def test_the_hookspecs_are_found() -> None:
    assert {"partnerledger_score", "partnerledger_validate"} <= set(HOOKS)


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_every_hook_and_argument_is_documented(hook: str) -> None:
    assert hook in SECTIONS, f"docs/plugins.md has no '### `{hook}`' section"
    section = SECTIONS[hook]
    missing = [
        name for name in inspect.signature(HOOKS[hook]).parameters if f"`{name}`" not in section
    ]
    assert not missing, f"the section of {hook} does not name these arguments: {missing}"


def test_no_section_documents_a_hook_that_does_not_exist() -> None:
    assert set(SECTIONS) <= set(HOOKS), f"stale sections: {set(SECTIONS) - set(HOOKS)}"


def _spec_options(hook: str) -> dict[str, Any]:
    options: dict[str, Any] = getattr(HOOKS[hook], f"{hookspecs.PROJECT}_spec")
    return options


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_the_documented_signature_is_the_declared_one(hook: str) -> None:
    python = [code for language, code in _blocks(SECTIONS.get(hook, "")) if language == "python"]
    assert python, f"the section of {hook} shows no signature"
    (function,) = [
        node
        for node in ast.walk(ast.parse(python[0]))
        if isinstance(node, ast.FunctionDef) and node.name == hook
    ]
    documented = [arg.arg for arg in function.args.args]
    assert documented == list(inspect.signature(HOOKS[hook]).parameters)
    decorator = ast.unparse(function.decorator_list[0])
    firstresult = bool(_spec_options(hook).get("firstresult"))
    assert ("firstresult=True" in decorator) == firstresult, decorator


def _implemented(code: str, name: str) -> set[str]:
    """Register the code as a plugin module; the hooks it implements."""
    module = ModuleType(name)
    exec(compile(code, f"<docs/plugins.md: {name}>", "exec"), module.__dict__)
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(module, name=name)  # pluggy refuses unknown hooks and arguments
    return {caller.name for caller in pm.get_hookcallers(module) or ()}


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_each_hook_example_is_a_valid_plugin(hook: str) -> None:
    python = [code for language, code in _blocks(SECTIONS.get(hook, "")) if language == "python"]
    examples = python[1:]
    assert examples, f"the section of {hook} has no example after its signature"
    for number, code in enumerate(examples):
        implemented = _implemented(code, f"{hook}-example-{number}")
        assert hook in implemented, f"example {number} of {hook} does not implement it"


def test_every_python_block_on_the_page_is_valid_python() -> None:
    for number, (language, code) in enumerate(_blocks(TEXT)):
        if language == "python":
            compile(code, f"<docs/plugins.md block {number}>", "exec")


@pytest.mark.parametrize(
    "relative",
    [
        "pyproject.toml",
        "src/partnerledger_referral_streak/__init__.py",
        "tests/test_streak.py",
    ],
)
def test_the_worked_plugin_is_shown_in_full(relative: str) -> None:
    path = f"examples/partnerledger-referral-streak/{relative}"
    marker = f"**`{path}`**"
    assert marker in TEXT, f"docs/plugins.md does not show {path}"
    shown = _blocks(TEXT.split(marker, 1)[1])[0][1]
    actual = (EXAMPLE / relative).read_text(encoding="utf-8")
    assert shown == actual, f"docs/plugins.md shows an outdated {path}: copy the file again"


def test_the_readme_links_the_page() -> None:
    assert "(docs/plugins.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
