"""docs/security.md names a test for each promise: every test it names exists.

The test is looked up in its file's syntax tree (a function, or a method of a
test class, whose name matches), so a renamed or removed test fails here
instead of leaving the page pointing at nothing.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "security.md"
CITED = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _tests_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    }


def test_every_test_the_security_page_names_exists() -> None:
    cited = CITED.findall(DOC.read_text(encoding="utf-8"))
    assert len(cited) >= 20
    missing = []
    for file, name in cited:
        path = ROOT / file
        if not path.is_file() or name not in _tests_of(path):
            missing.append(f"{file}::{name}")
    assert not missing, f"docs/security.md names tests that do not exist: {missing}"


def test_every_row_of_the_promise_tables_names_a_test() -> None:
    rows = [
        line
        for line in DOC.read_text(encoding="utf-8").splitlines()
        if line.startswith("| ") and not line.startswith(("| promise", "|---"))
    ]
    assert rows
    bare = [row for row in rows if not CITED.search(row)]
    assert not bare, f"promises without a test: {bare}"
