"""The benchmark harness: ``python -m benchmarks`` (or ``make bench``).

Runs every workload on SQLite and on PostgreSQL, each in a fresh
subprocess (so that its peak memory is its own), measures the raw limits
of the same machine in the same run (plain SQL inserts and reads of the
same encoded events, the eventsourcing notification log, an empty HTTP
request), prints each figure beside its raw limit, their ratio and the
issue's target, and rewrites ``docs/performance.md`` with a chart
(``docs/performance.svg``). See ``docs/performance.md`` for how to read it.

Modules: :mod:`.run` (options and orchestration), :mod:`.child` (the
subprocess entry point), :mod:`.workloads` (what runs inside a child),
:mod:`.web` (the served app: command latency and load), :mod:`.report`
(targets, the table, the markdown and the SVG chart).
"""
