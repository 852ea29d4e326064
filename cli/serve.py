"""``partnerledger serve``: the web app and the JSON API, with uvicorn."""

from __future__ import annotations

import os
import secrets
from urllib.parse import quote

import click

from partnerledger import DomainError, Ledger

from .main import _fail, _state, cli, err

DEMO_NETWORKS = 2


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, help="Worker processes.")
@click.option(
    "--demo",
    is_flag=True,
    help="Load the demo networks into an empty store and create the demo sign-ins.",
)
@click.option("--log-level", default="info", show_default=True, help="uvicorn's log level.")
def serve(host: str, port: int, workers: int, demo: bool, log_level: str) -> None:
    """Run the web app and the JSON API (uvicorn; --workers for several processes).

    On PostgreSQL with several workers, run `partnerledger worker` beside it to
    keep the views up to date; on SQLite each process catches them up itself.
    Set PARTNERLEDGER_SECRET to share the CSRF secret between workers and restarts.
    """
    import uvicorn

    from partnerledger.web.demo import DEMO_PASSWORD, demo_logins
    from partnerledger.web.services import Services

    state = _state()
    database = state.store().database
    if demo:
        try:
            if state.store().last_position() == 0:
                from partnerledger.commands import encode_command
                from partnerledger.demo import generate
                from partnerledger.jsonl import import_lines

                err.print("Loading the demo networks…")
                import_lines(
                    Ledger(state.store()),
                    (encode_command(c) for c in generate(networks=DEMO_NETWORKS)),
                )
            state.catch_up(show=True)
            services = Services(database)
            try:
                logins = demo_logins(services)
            finally:
                services.close()
        except DomainError as error:
            raise _fail(error) from error
        err.print(f"Demo sign-ins (password: {DEMO_PASSWORD}):")
        for login in logins:
            where = f" of {login.network}" if login.network else ""
            member = f" ({login.member})" if login.member else ""
            err.print(f"  {login.role + where + member:<40} {login.email}")
    os.environ.setdefault("PARTNERLEDGER_SECRET", secrets.token_hex(32))
    os.environ["PARTNERLEDGER_DATABASE"] = _url(database)
    err.print(f"partnerledger on http://{host}:{port}/ ({database.describe()})")
    uvicorn.run(
        "partnerledger.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
    )


def _url(database: object) -> str:
    """The database as ``PARTNERLEDGER_DATABASE`` names it, for the worker processes."""
    from partnerledger.store import Database

    assert isinstance(database, Database)
    if database.kind == "sqlite":
        return database.path
    password = f":{quote(database.password, safe='')}" if database.password else ""
    schema = f"?schema={database.schema}" if database.schema else ""
    return (
        f"postgresql://{quote(database.user, safe='')}{password}@{database.host}:{database.port}/"
        f"{database.dbname}{schema}"
    )
