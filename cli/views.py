"""Commands over the views: keeping them up to date, and rebuilding them."""

from __future__ import annotations

import threading

import click

from partnerledger import DomainError
from partnerledger.projection import PROJECTIONS, Projector

from .main import _fail, _progress, _state, cli, err, out


@cli.group()
def projections() -> None:
    """The views computed from the log (standings, scorecards, ledger, trail)."""


@projections.command("status")
def projections_status() -> None:
    """Each view's tracking position against the end of the log."""
    state = _state()
    try:
        with Projector(state.store()) as projector:
            last = state.store().last_position()
            for name, position in projector.positions().items():
                out.print(f"{name:<12} at {position:>9,} of {last:,} ({last - position:,} behind)")
    except DomainError as error:
        raise _fail(error) from error


@projections.command("rebuild")
@click.argument("names", nargs=-1)
@click.option("--progress/--no-progress", default=None, help="Show a progress bar.")
def projections_rebuild(names: tuple[str, ...], progress: bool | None) -> None:
    """Drop views (NAMES, all by default) and rebuild them from the log."""
    state = _state()
    try:
        with Projector(state.store(), names=names or None) as projector:
            total = state.store().last_position()
            show = err.is_terminal if progress is None else progress
            with _progress(show) as bar:
                task = bar.add_task("rebuilding", total=total)
                handled = projector.rebuild(
                    names or None, lambda done, _: bar.update(task, completed=done)
                )
    except DomainError as error:
        raise _fail(error) from error
    chosen = ", ".join(names) if names else ", ".join(PROJECTIONS)
    out.print(f"Rebuilt {chosen} from {handled:,} events")


@cli.command("worker")
@click.option("--poll", default=0.2, show_default=True, help="Seconds between polls when idle.")
@click.option("--once", is_flag=True, help="Catch up once and exit.")
def worker(poll: float, once: bool) -> None:
    """Follow the log and keep every view up to date (Ctrl-C stops).

    Several workers (and web processes) may share one PostgreSQL database:
    each batch of events is taken by exactly one of them. On PostgreSQL one
    worker follows at a time; another started beside it stands by and takes
    over when the first stops or dies (docs/deployment.md). When the database
    goes away the worker says so, tries again with growing pauses (up to 10 s)
    and carries on when it is back (docs/operations.md).
    """
    state = _state()
    try:
        with Projector(state.store()) as projector:
            if once:
                out.print(f"Handled {projector.catch_up():,} events")
                return
            err.print(f"Following {state.store().database.describe()} (Ctrl-C stops)")
            stop = threading.Event()
            try:
                projector.follow(
                    stop,
                    poll,
                    on_standby=lambda: err.print(
                        "Another worker is following this database: standing by to take over"
                    ),
                    on_error=lambda error, delay: err.print(
                        f"Database unavailable ({error.reason}); trying again in {delay:.1f} s",
                        markup=False,
                        highlight=False,
                    ),
                    on_recovered=lambda: err.print("Database back: following the log again"),
                )
            except KeyboardInterrupt:
                stop.set()
    except DomainError as error:
        raise _fail(error) from error


# Each module registers its commands on the group when imported.
from . import periods, scorecards, serve, trail  # noqa: E402, F401
