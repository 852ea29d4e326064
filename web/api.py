"""The JSON API under ``/api/v1``: one router over the same application services as the pages.

Networks, members, referrals (every transition), agreements, standings,
scorecards, statements and the event log. Requests and responses are
msgspec Structs, so the OpenAPI document at ``/schema`` (``/schema/openapi.json``)
describes every operation with its id, description, parameters and schemas.
Clients authenticate with an API token (``Authorization: Bearer plt_...``);
errors are RFC 9457 problem documents naming the field at fault. See
``docs/api.md``.
"""

from __future__ import annotations

from litestar import Router

from . import api_agreements, api_members, api_referrals, api_reports
from .api_common import EXCEPTION_HANDLERS

PATH = "/api/v1"

router = Router(
    path=PATH,
    route_handlers=[
        *api_members.HANDLERS,
        *api_referrals.HANDLERS,
        *api_agreements.HANDLERS,
        *api_reports.HANDLERS,
    ],
    exception_handlers=EXCEPTION_HANDLERS,
)

ROUTES = [router]

__all__ = ["PATH", "ROUTES", "router"]
