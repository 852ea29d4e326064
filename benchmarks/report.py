"""Targets, the printed table, ``docs/performance.md`` and its SVG chart.

Every figure is a :class:`Line`: the value measured, the raw limit measured
in the same run beside it, their ratio, the issue's target and whether it
is met. The ratio is always "how close to the raw limit": the figure over
the limit for rates (higher is better), the limit over the figure for
times, latencies and memory (lower is better), so 100 % means "as fast as
the raw machine", whichever way the unit goes.
"""

from __future__ import annotations

import html
import os
import platform
import re
import shutil
import sqlite3
import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

#: The issue's targets: (value, unit) per figure and database; None where there is none.
TARGETS: dict[str, dict[str, float | None]] = {
    "import": {"sqlite": 100_000, "postgresql": 60_000},  # events/s, at least
    "rebuild": {"sqlite": 100_000, "postgresql": 100_000},  # events/s, at least
    "latency": {"sqlite": 10.0, "postgresql": None},  # ms at p99, at most
    "load": {"sqlite": 50.0, "postgresql": 50.0},  # ms at p99, at most
    "close": {"sqlite": 2.0, "postgresql": 2.0},  # seconds, at most
    "export": {"sqlite": None, "postgresql": None},
    "verify": {"sqlite": 200_000, "postgresql": 200_000},  # events/s, at least
    "memory": {"sqlite": 500.0, "postgresql": 500.0},  # MB, at most
}

DATABASE_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
NOTES_START = "<!-- notes -->"
NOTES_END = "<!-- /notes -->"


@dataclass
class Line:
    """One figure of the report."""

    workload: str  # the letter: a (import) ... g (memory)
    name: str
    database: str
    value: float | None
    unit: str
    higher: bool  # whether a higher value is better
    raw: float | None = None
    raw_name: str = ""
    target: float | None = None
    detail: str = ""
    peak_mb: float | None = None
    error: str = ""
    #: The value is a bound: the real figure lies beyond it (nothing finished in time).
    above: bool = False

    @property
    def ratio(self) -> float | None:
        """The figure as a share of the raw limit (1.0: as fast as the raw machine)."""
        if self.value is None or self.raw is None or self.value <= 0 or self.raw <= 0:
            return None
        return self.value / self.raw if self.higher else self.raw / self.value

    @property
    def score(self) -> float | None:
        """The figure as a share of its target (1.0 or more: met)."""
        if self.value is None or self.target is None or self.value <= 0:
            return None
        return self.value / self.target if self.higher else self.target / self.value

    @property
    def met(self) -> bool | None:
        """Whether the target is met (None: no target, or nothing measured)."""
        if self.target is None or self.value is None:
            return None
        return self.value >= self.target if self.higher else self.value <= self.target

    def as_dict(self) -> dict[str, Any]:
        """Plain data, with the derived columns."""
        return {**asdict(self), "ratio": self.ratio, "met": self.met}


@dataclass
class RawLine:
    """One raw limit, as measured."""

    name: str
    database: str
    value: float
    unit: str
    detail: str = ""


def amount(value: float | None, unit: str) -> str:
    """A value with its unit, as the tables show it."""
    if value is None:
        return "-"
    if unit in ("events/s", "rows/s", "req/s", "decisions/s"):
        return f"{value:,.0f} {unit}"
    if unit == "ms":
        return f"{value:,.2f} ms" if value < 10 else f"{value:,.1f} ms"
    if unit == "s":
        return f"{value:,.3f} s" if value < 1 else f"{value:,.2f} s"
    if unit == "MB":
        return f"{value:,.0f} MB"
    return f"{value:,.4g} {unit}"


def percent(share: float | None) -> str:
    """A share as a percentage, with a decimal when it is small."""
    if share is None:
        return "-"
    if share < 0.1:
        return f"{share * 100:.1f}%"
    return f"{share * 100:.0f}%"


def target_text(line: Line) -> str:
    """The target as the tables show it: ">= 100,000 events/s", "<= 50 ms"."""
    if line.target is None:
        return "-"
    return (">= " if line.higher else "<= ") + amount(line.target, line.unit)


def met_text(line: Line) -> str:
    """yes / NO / - for the tables."""
    met = line.met
    return "-" if met is None else ("yes" if met else "NO")


COLUMNS = (
    "workload",
    "database",
    "figure",
    "raw limit",
    "ratio",
    "target",
    "met?",
    "peak memory",
    "details",
)


def rows(lines: list[Line]) -> list[tuple[str, ...]]:
    """The figures table, one tuple of cells per line."""
    table: list[tuple[str, ...]] = []
    for line in lines:
        figure = f"failed: {line.error}" if line.error else amount(line.value, line.unit)
        ratio = percent(line.ratio)
        if line.above and not line.error:
            figure, ratio = f"> {figure}", f"< {ratio}"
        raw = "-"
        if line.raw is not None:
            raw = f"{amount(line.raw, line.unit)} ({line.raw_name})"
        table.append(
            (
                f"({line.workload}) {line.name}",
                DATABASE_NAMES.get(line.database, line.database),
                figure,
                raw,
                ratio,
                target_text(line),
                met_text(line),
                amount(line.peak_mb, "MB") if line.peak_mb is not None else "-",
                line.detail,
            )
        )
    return table


def text_table(header: tuple[str, ...], body: list[tuple[str, ...]]) -> str:
    """A plain text table, columns separated by ' | '."""
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    out.append("-+-".join("-" * w for w in widths))
    for row in body:
        out.append(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(out)


def markdown_table(header: tuple[str, ...], body: list[tuple[str, ...]]) -> str:
    """A GitHub markdown table (pipes in cells escaped)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out.extend("| " + " | ".join(cell(c) for c in row) + " |" for row in body)
    return "\n".join(out)


def raw_rows(raws: list[RawLine]) -> list[tuple[str, ...]]:
    """The raw limits table."""
    return [
        (r.name, DATABASE_NAMES.get(r.database, r.database), amount(r.value, r.unit), r.detail)
        for r in raws
    ]


RAW_COLUMNS = ("raw limit", "database", "value", "details")


def summary(lines: list[Line]) -> str:
    """How many targets are met, and how many figures failed."""
    judged = [line for line in lines if line.met is not None]
    met = sum(1 for line in judged if line.met)
    failed = sum(1 for line in lines if line.error)
    text = f"{met} of {len(judged)} targets met"
    if failed:
        text += f"; {failed} figure(s) could not be measured"
    return text


def print_report(lines: list[Line], raws: list[RawLine]) -> str:
    """The report as printed to stdout."""
    parts = [
        "figure | raw limit | ratio | target | met?, for each line:",
        "",
        text_table(COLUMNS, rows(lines)),
        "",
        summary(lines),
        "",
        "Raw limits measured in the same run:",
        "",
        text_table(RAW_COLUMNS, raw_rows(raws)),
    ]
    return "\n".join(parts)


# ------------------------------------------------------------------- machine


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def machine(
    postgres_version: str | None, load_tool: str, load: tuple[float, float] | None = None
) -> dict[str, str]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    system = platform.system()
    try:
        found = re.search(r'^PRETTY_NAME="?([^"\n]*)', Path("/etc/os-release").read_text(), re.M)
        if found:
            system = found.group(1)
    except OSError:
        pass
    from partnerledger import __version__

    commit = _git("rev-parse", "--short", "HEAD")
    changed = _git("status", "--porcelain", "--untracked-files=no")
    dirty = " with uncommitted changes" if changed else ""
    return {
        "CPU": f"{cpu}, {os.cpu_count()} cores",
        "RAM": ram,
        "OS": f"{system}, kernel {platform.release()}",
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
        "PostgreSQL": postgres_version or "not used",
        "libraries": libraries(),
        "load tool": load_tool,
        "partnerledger": f"{__version__}" + (f", commit {commit}{dirty}" if commit else ""),
    } | (
        # Other work on the machine slows every figure down: say how busy it was.
        {"load average": f"{load[0]:.2f} at the start, {load[1]:.2f} at the end (1 min)"}
        if load
        else {}
    )


def libraries() -> str:
    """The versions that move the figures most, and psycopg's and uvicorn's implementations."""
    from importlib import metadata
    from importlib.util import find_spec

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    import psycopg

    http = "httptools" if find_spec("httptools") else "h11"
    loop = "uvloop" if find_spec("uvloop") else "asyncio"
    return (
        f"psycopg {version('psycopg')} ({psycopg.pq.__impl__} implementation), "
        f"eventsourcing {version('eventsourcing')}, msgspec {version('msgspec')}, "
        f"litestar {version('litestar')}, uvicorn {version('uvicorn')} ({http}, {loop})"
    )


def wrk_version() -> str | None:
    """``wrk``'s version line, or None when it is not installed."""
    path = shutil.which("wrk")
    if path is None:
        return None
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    first = (done.stdout or done.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0] if first else "wrk"


# -------------------------------------------------------------------- chart

_BAR_TARGET = "#2b6cb0"
_BAR_RAW = "#a0aec0"
_MAX_SHARE = 2.0


def svg_chart(lines: list[Line], title: str) -> str:
    """Each figure as a share of its target and of its raw limit: two bars per line.

    Hand-written SVG (no plotting library): 100 % is marked; bars beyond
    200 % are cut and labelled with their value.
    """
    shown = [line for line in lines if line.value is not None]
    label_w, bar_w, row_h, top = 370, 480, 34, 70
    width = label_w + bar_w + 90
    height = top + row_h * max(len(shown), 1) + 30

    def x_of(share: float) -> float:
        return label_w + bar_w * min(share, _MAX_SHARE) / _MAX_SHARE

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="10" y="20" font-size="14" font-weight="bold">{html.escape(title)}</text>',
        f'<rect x="10" y="32" width="12" height="10" fill="{_BAR_TARGET}"/>',
        '<text x="27" y="41">share of the target (100% = met)</text>',
        f'<rect x="250" y="32" width="12" height="10" fill="{_BAR_RAW}"/>',
        '<text x="267" y="41">share of the raw limit measured in the same run</text>',
    ]
    for share in (0.0, 0.5, 1.0, 1.5, 2.0):
        x = x_of(share)
        dash = "" if share == 1.0 else ' stroke-dasharray="2,3"'
        colour = "#c53030" if share == 1.0 else "#cbd5e0"
        out.append(
            f'<line x1="{x:.1f}" y1="{top - 8}" x2="{x:.1f}" y2="{height - 24}" '
            f'stroke="{colour}"{dash}/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle">{share * 100:.0f}%</text>'
        )
    for i, line in enumerate(shown):
        y = top + i * row_h
        name = re.sub(r" under \d+ clients", "", line.name)
        label = f"({line.workload}) {name} · {DATABASE_NAMES.get(line.database, '')}"
        out.append(f'<text x="10" y="{y + 16}">{html.escape(label[:62])}</text>')
        for offset, share, colour, missing in (
            (0, line.score, _BAR_TARGET, "no target"),
            (13, line.ratio, _BAR_RAW, "no raw limit"),
        ):
            if share is None:
                out.append(
                    f'<text x="{label_w + 4}" y="{y + offset + 10}" fill="#718096" '
                    f'font-size="10">{missing}</text>'
                )
                continue
            end = x_of(share)
            out.append(
                f'<rect x="{label_w}" y="{y + offset}" width="{max(end - label_w, 1):.1f}" '
                f'height="11" fill="{colour}"/>'
            )
            mark = "+" if share > _MAX_SHARE else ""
            bound = "< " if line.above else ""
            out.append(
                f'<text x="{end + 4:.1f}" y="{y + offset + 10}" font-size="10">'
                f"{html.escape(bound + percent(share) + mark)}</text>"
            )
    out.append("</svg>")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------- markdown

DEFAULT_NOTES = """\
## How to read

Every figure is printed beside a raw limit measured on the same machine,
in the same run, with the same data: what the hardware and the libraries
can do with nothing of partnerledger in the way. The ratio is the figure as
a share of that limit, so 100 % means "as fast as plain SQL (or plain
HTTP)"; rates are divided by the limit, times by their limit's time.
Targets are the issue's; **met?** says whether the figure reaches it.

Sizes are options; the figures are rates and percentiles, so they compare
across sizes as long as the store fits the same caches. Run the issue's
sizes with `python -m benchmarks --events 1000000` (it takes far longer
than the default run today).

## Profile notes

(Findings from profiling the workloads; `python -m benchmarks --profile DIR`
writes a cProfile file per workload and database. Kept across runs.)
"""


def notes_of(existing: str | None) -> str:
    """The hand-written part between the notes markers, or the default one."""
    if existing and NOTES_START in existing and NOTES_END in existing:
        inner = existing.split(NOTES_START, 1)[1].split(NOTES_END, 1)[0]
        return inner.strip("\n") + "\n"
    return DEFAULT_NOTES


def markdown(
    *,
    lines: list[Line],
    raws: list[RawLine],
    info: dict[str, str],
    when: datetime,
    command: str,
    sizes: list[str],
    chart: str,
    notes: str,
    elapsed: float | None = None,
) -> str:
    """The whole of docs/performance.md."""
    machine_rows = list(info.items())
    parts = [
        "# Performance",
        "",
        "<!-- Written by `python -m benchmarks` (`make bench`): everything outside the notes",
        "     markers is rewritten on each run; the text between them is kept. -->",
        "",
        f"Measured on {when:%Y-%m-%d %H:%M} UTC"
        + (f" (the run took {elapsed / 60:.1f} minutes)" if elapsed is not None else "")
        + " with:",
        "",
        "```console",
        f"$ {command}",
        "```",
        "",
        "## Machine",
        "",
        markdown_table(("", ""), machine_rows),
        "",
        "## Sizes",
        "",
        *[f"- {size}" for size in sizes],
        "",
        "## Figures",
        "",
        markdown_table(COLUMNS, rows(lines)),
        "",
        f"{summary(lines)}.",
        "",
        f"![Each figure as a share of its target and of its raw limit]({chart})",
        "",
        "## Raw limits",
        "",
        "Measured in the same run, on the same machine, with the same encoded events.",
        "",
        markdown_table(RAW_COLUMNS, raw_rows(raws)),
        "",
        NOTES_START,
        notes.rstrip("\n"),
        NOTES_END,
        "",
    ]
    return "\n".join(parts)
