"""The benchmark harness (``python -m benchmarks``) run for real with tiny sizes.

One run covers every workload on SQLite and PostgreSQL and writes its report
to a temporary path (never the real docs/performance.md); a second one runs
the load test with our own asyncio + httpx client, as on a machine without
wrk.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
REAL_REPORT = ROOT / "docs" / "performance.md"
NOTES = "<!-- notes -->\nOur own profile findings, kept: 4711 flamegraphs.\n<!-- /notes -->"

pytestmark = pytest.mark.slow


def _bench(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _snapshot(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def test_every_workload_on_both_databases(tmp_path: Path, postgres_url: str) -> None:
    output = tmp_path / "docs" / "performance.md"
    output.parent.mkdir()
    output.write_text(f"# Performance\n\nold figures, to be replaced\n\n{NOTES}\n")
    real = _snapshot(REAL_REPORT), _snapshot(REAL_REPORT.with_suffix(".svg"))
    done = _bench(
        "--events", "400",
        "--members", "8",
        "--clients", "4",
        "--duration", "1",
        "--commands", "5",
        "--databases", "sqlite,postgresql",
        "--output", str(output),
        "--json", str(tmp_path / "figures.json"),
        "--workdir", str(tmp_path / "work"),
        "--postgres-url", postgres_url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    # The printed table: every workload on both databases, each beside its raw limit.
    printed = done.stdout
    assert "figure | raw limit | ratio | target | met?" in printed
    rows = [line for line in printed.splitlines() if line.startswith("(")]
    for letter in "abcdefg":
        for database in ("SQLite", "PostgreSQL"):
            found = [r for r in rows if r.startswith(f"({letter})") and f"| {database} " in r]
            assert found, f"no ({letter}) line on {database}:\n{printed}"
    assert "failed" not in printed
    assert "SQLite executemany insert, one transaction, WAL" in printed
    assert "PostgreSQL binary COPY, one transaction" in printed
    assert "targets met" in printed

    figures = json.loads((tmp_path / "figures.json").read_text())
    assert figures["failures"] == []
    lines = figures["lines"]
    assert {line["workload"] for line in lines} == set("abcdefg")
    for line in lines:
        assert line["value"] > 0, line
        assert line["error"] == "", line
        if line["workload"] in "abdf":
            assert line["raw"] and line["ratio"] > 0, line
    imported = [line for line in lines if line["name"] == "import"]
    assert {line["database"] for line in imported} == {"sqlite", "postgresql"}
    assert all("400 events" in line["detail"] for line in imported)
    targets = {(line["name"], line["database"]): line["target"] for line in lines}
    assert targets["import", "sqlite"] == 100_000
    assert targets["import", "postgresql"] == 60_000
    assert targets["command visible in every view, p99", "postgresql"] is None
    memory = [line for line in lines if line["workload"] == "g"]
    assert memory and all(line["target"] == 500 and line["unit"] == "MB" for line in memory)

    # The rewritten report: machine, date, command, figures, chart; the notes kept.
    report = output.read_text()
    assert report.startswith("# Performance\n")
    assert "old figures, to be replaced" not in report
    for heading in ("## Machine", "## Sizes", "## Figures", "## Raw limits"):
        assert f"\n{heading}\n" in report, heading
    assert "| CPU |" in report and "| PostgreSQL |" in report and "| SQLite |" in report
    assert "Measured on 20" in report
    assert "python -m benchmarks --events 400 --members 8" in report
    assert "](performance.svg)" in report
    assert "| (a) import | SQLite |" in report and "| (a) import | PostgreSQL |" in report
    assert report.count("<!-- notes -->") == 1 and report.count("<!-- /notes -->") == 1
    assert "Our own profile findings, kept: 4711 flamegraphs." in report
    assert report.index("## Figures") < report.index("<!-- notes -->")

    chart = ET.parse(output.with_suffix(".svg")).getroot()
    assert chart.tag == "{http://www.w3.org/2000/svg}svg"
    bars = chart.findall("{http://www.w3.org/2000/svg}rect")
    assert len(bars) > len(lines)  # two bars a line, less the missing ones, plus the legend
    labels = "".join(chart.itertext())
    assert "(a) import · SQLite" in labels and "(a) import · PostgreSQL" in labels

    # The project's own report was not touched.
    assert (_snapshot(REAL_REPORT), _snapshot(REAL_REPORT.with_suffix(".svg"))) == real


def test_load_with_the_httpx_client(tmp_path: Path) -> None:
    done = _bench(
        "--events", "300",
        "--clients", "3",
        "--duration", "1",
        "--databases", "sqlite",
        "--only", "d",
        "--load-tool", "httpx",
        "--no-output",
        "--workdir", str(tmp_path / "work"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("(d)")]
    assert len(rows) == 9, done.stdout  # five pages and four API endpoints
    assert all("| SQLite " in row and " ms " in row for row in rows)
    assert "GET /healthz, 3 clients, p99" in done.stdout
    assert "load tool: httpx" in done.stderr
    assert not list(tmp_path.glob("**/performance.md"))


def test_bad_options_are_refused() -> None:
    done = _bench("--only", "a,z", "--no-output", timeout=60)
    assert done.returncode == 2
    assert "--only: unknown workload 'z'" in done.stderr
    done = _bench("--databases", "oracle", "--no-output", timeout=60)
    assert done.returncode == 2
    assert "--databases: unknown database 'oracle'" in done.stderr


def _report_module() -> ModuleType:
    import importlib

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("benchmarks.report")


def test_ratio_target_and_chart_semantics() -> None:
    report = _report_module()
    rate = report.Line("a", "import", "sqlite", 25_000.0, "events/s", True,
                       raw=100_000.0, target=100_000.0)  # fmt: skip
    latency = report.Line("c", "latency <p99>", "postgresql", 20.0, "ms", False,
                          raw=5.0, target=10.0)  # fmt: skip
    beyond = report.Line("d", "page & more", "sqlite", 8_000.0, "ms", False,
                         raw=100.0, target=50.0, above=True)  # fmt: skip
    broken = report.Line("d", "page", "postgresql", None, "ms", False, error="no server")
    assert (rate.ratio, rate.score, rate.met) == (0.25, 0.25, False)
    assert (latency.ratio, latency.score, latency.met) == (0.25, 0.5, False)
    assert report.Line("e", "close", "sqlite", 1.5, "s", False, target=2.0).met is True
    assert broken.ratio is None and broken.met is None
    table = report.print_report([rate, latency, beyond, broken], [])
    assert "> 8,000.0 ms" in table and "< 1.2%" in table and "failed: no server" in table
    assert ">= 100,000 events/s" in table and "<= 10.0 ms" in table
    chart = ET.fromstring(report.svg_chart([rate, latency, beyond, broken], "a <title> & more"))
    text = "".join(chart.itertext())
    assert "< 1.2%" in text and "25%" in text and "page & more" in text
