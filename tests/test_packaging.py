"""The wheel holds every subpackage and data file of the source tree.

An editable install finds modules through ``package-dir`` whatever
``packages`` and ``package-data`` say; a wheel holds only what they list.
This test builds a real wheel and compares it with the source tree, so a
new subpackage (``core/domain/``) or data file (``core/py.typed``, templates,
static files) that pyproject.toml forgets fails here, not in production.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Source folder -> where its content lives in the wheel (pyproject's package-dir).
TREES = {
    "core": "partnerledger",
    "cli": "partnerledger/cli",
    "plugins": "partnerledger/plugins",
    "web": "partnerledger/web",
}

#: Left in the source tree by Python, tools and builds; never part of a package.
_JUNK_SUFFIXES = {".pyc", ".pyo"}
_NOT_COPIED = ("__pycache__", "*.pyc", ".git", ".venv", "*.egg-info", "build", "dist", "*.db*")

REQUIRED_DEPENDENCIES = {
    "eventsourcing",
    "msgspec",
    "pluggy",
    "litestar",
    "jinja2",
    "click",
    "rich",
}


def _shipped(path: Path) -> bool:
    parts = path.parts
    return (
        "__pycache__" not in parts
        and not any(part.startswith(".") or part.endswith(".egg-info") for part in parts)
        and path.suffix not in _JUNK_SUFFIXES
    )


def expected_files() -> dict[str, str]:
    """Wheel path -> source path, for every module and data file of the four trees."""
    expected: dict[str, str] = {}
    for folder, target in TREES.items():
        base = ROOT / folder
        assert base.is_dir(), f"{base} is missing"
        for path in sorted(base.rglob("*")):
            relative = path.relative_to(base)
            if path.is_file() and _shipped(relative):
                expected[f"{target}/{relative.as_posix()}"] = f"{folder}/{relative.as_posix()}"
    return expected


def expected_packages() -> dict[str, str]:
    """Dotted package name -> source folder, for every folder holding .py files."""
    packages: dict[str, str] = {}
    for wheel_path, source in expected_files().items():
        if wheel_path.endswith(".py"):
            package = wheel_path.rsplit("/", 1)[0]
            packages[package.replace("/", ".")] = source.rsplit("/", 1)[0]
    return packages


def _copy_source(destination: Path) -> Path:
    """A clean copy of the repository to build from.

    Building in place would reuse ``build/lib``, where a file from an earlier
    build can hide one that the configuration no longer ships, and would race
    with another build of the same checkout.
    """
    copy = destination / "src"
    shutil.copytree(
        ROOT,
        copy,
        ignore=shutil.ignore_patterns(*_NOT_COPIED, ".*_cache"),
    )
    return copy


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    work = tmp_path_factory.mktemp("wheel")
    source = _copy_source(work)
    outdir = work / "dist"
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(outdir), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"building the wheel failed:\n{result.stdout}\n{result.stderr}"
    wheels = list(outdir.glob("partnerledger-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {outdir}, found {wheels}"
    with zipfile.ZipFile(wheels[0]) as archive:
        yield archive


def _dist_info(archive: zipfile.ZipFile, name: str) -> str:
    matches = [n for n in archive.namelist() if re.fullmatch(rf"[^/]+\.dist-info/{name}", n)]
    assert len(matches) == 1, f"the wheel has no single *.dist-info/{name}: {matches}"
    return archive.read(matches[0]).decode("utf-8")


def test_the_source_tree_is_what_the_test_expects() -> None:
    # Sanity check of expected_files() itself, on files that exist today.
    expected = expected_files()
    assert expected["partnerledger/__init__.py"] == "core/__init__.py"
    assert expected["partnerledger/py.typed"] == "core/py.typed"
    assert expected["partnerledger/domain/member.py"] == "core/domain/member.py"
    assert expected["partnerledger/cli/main.py"] == "cli/main.py"
    assert not [path for path in expected if "__pycache__" in path or path.endswith(".pyc")]
    assert {"partnerledger", "partnerledger.domain", "partnerledger.cli"} <= set(
        expected_packages()
    )


@pytest.mark.slow
def test_wheel_contains_every_subpackage_and_data_file(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    expected = expected_files()
    packages = expected_packages()

    missing_packages = sorted(
        f"{package}  (from {folder}/)"
        for package, folder in packages.items()
        if f"{package.replace('.', '/')}/__init__.py" not in names
    )
    missing_files = sorted(
        f"{wheel_path}  (from {source})"
        for wheel_path, source in expected.items()
        if wheel_path not in names
    )
    report = []
    if missing_packages:
        report.append("packages missing from the wheel (add them to [tool.setuptools] packages):")
        report += [f"  {line}" for line in missing_packages]
    if missing_files:
        report.append(
            "files missing from the wheel (a package not listed, or a data file not matched by "
            "[tool.setuptools.package-data]):"
        )
        report += [f"  {line}" for line in missing_files]
    print("\n".join(report))
    assert not report, "\n".join(report)


@pytest.mark.slow
def test_wheel_declares_the_console_script(wheel: zipfile.ZipFile) -> None:
    entry_points = configparser.ConfigParser()
    entry_points.read_string(_dist_info(wheel, "entry_points.txt"))

    assert entry_points.has_section("console_scripts")
    assert entry_points["console_scripts"].get("partnerledger") == "partnerledger.cli.main:main"
    # ...and the module it points to is in the wheel.
    assert "partnerledger/cli/main.py" in wheel.namelist()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, f"unreadable requirement {requirement!r}"
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


@pytest.mark.slow
def test_wheel_metadata_requires_the_runtime_dependencies(wheel: zipfile.ZipFile) -> None:
    metadata = _dist_info(wheel, "METADATA")
    assert re.search(r"^Name: partnerledger$", metadata, re.MULTILINE)
    runtime = {
        _requirement_name(value)
        for value in re.findall(r"^Requires-Dist: (.+)$", metadata, re.MULTILINE)
        if "extra ==" not in value
    }

    assert runtime >= REQUIRED_DEPENDENCIES, f"missing: {REQUIRED_DEPENDENCIES - runtime}"
    # Everything pyproject.toml declares at run time is in the metadata.
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert {_requirement_name(r) for r in declared["project"]["dependencies"]} <= runtime
