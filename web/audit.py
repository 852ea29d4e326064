"""The audit page: is history intact, the signed checkpoints, and the bundle to download.

``GET /n/{network}/audit`` (coordinators and auditors) checks the network's
live events against the witness and the signed checkpoints, as
``partnerledger audit verify`` does, and lists the checkpoints with their
signed notes and the installation's public key. ``POST
/n/{network}/audit/checkpoint`` (coordinators) signs a checkpoint now.
``GET /n/{network}/audit/bundle`` downloads the audit bundle as of the
latest checkpoint (it writes nothing, so auditors may use it too). See
docs/audit.md.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from litestar import Request, get, post
from litestar.background_tasks import BackgroundTask
from litestar.params import FromPath
from litestar.response import File, Redirect, Template

from partnerledger.audit.bundle import export_bundle
from partnerledger.audit.checkpoints import checkpoints, installation_signer, record_checkpoint
from partnerledger.audit.verify import verify_network

from .pages import NAV, NavItem, page
from .security import COORDINATOR, network_guard, services_of

NAV.append(NavItem("Audit", "/audit", roles=("coordinator", "auditor"), order=80))
READERS = {"roles": ("coordinator", "auditor")}


@get(
    "/n/{network:str}/audit",
    guards=[network_guard],
    opt=READERS,
    include_in_schema=False,
)
async def audit_page(request: Request[Any, Any, Any], network: FromPath[str]) -> Template:
    """Whether the network's history matches its signed checkpoints, and where it does not."""
    services = services_of(request)
    services.network(network)
    signer = installation_signer(services.database)
    report = verify_network(services.store, services.db, network, [signer.verifier()])
    signed = checkpoints(services.db, network)
    return page(
        request,
        "audit.html",
        network=network,
        report=report,
        checkpoints=list(reversed(signed)),
        key=signer.verifier().text(),
    )


@post(
    "/n/{network:str}/audit/checkpoint",
    guards=[network_guard],
    opt=COORDINATOR,
    include_in_schema=False,
)
async def sign_checkpoint(request: Request[Any, Any, Any], network: FromPath[str]) -> Redirect:
    """Sign a checkpoint of the network's tree as it stands now."""
    services = services_of(request)
    services.network(network)
    record_checkpoint(services.projector, network)
    return Redirect(path=f"/n/{network}/audit")


@get(
    "/n/{network:str}/audit/bundle",
    guards=[network_guard],
    opt=READERS,
    include_in_schema=False,
)
async def download_bundle(request: Request[Any, Any, Any], network: FromPath[str]) -> File:
    """The network's audit bundle as of its latest checkpoint (writes nothing to the store)."""
    services = services_of(request)
    services.network(network)
    handle, name = tempfile.mkstemp(prefix="partnerledger-bundle-", suffix=".bundle")
    os.close(handle)
    path = Path(name)
    try:
        export_bundle(services.projector, network, path, sign=False)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return File(
        path=path,
        filename=f"{network}.bundle",
        media_type="application/x-tar",
        background=BackgroundTask(path.unlink, missing_ok=True),
        headers={"X-Content-Type-Options": "nosniff"},
    )


ROUTES = [audit_page, sign_checkpoint, download_bundle]

__all__ = ["ROUTES"]
