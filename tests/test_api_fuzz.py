"""The JSON API under a schema-based fuzzer: no request makes it fail on our side.

schemathesis reads the OpenAPI document the app publishes at
``/schema/openapi.json`` and generates requests for each operation, valid
ones and invalid ones (wrong types, numbers out of range, odd text, far-off
times, unknown fields), sent in-process to the ASGI app as riverside's
coordinator in the small world of ``webkit``. Whatever the request, the
answer is no server error (bad input is a 4xx problem document), and it is
an answer the document promises: a documented status code, with its
content type and headers, and a body that conforms to its schema
(schemathesis's conformance checks, :data:`CHECKS`). The path
names riverside and its members, referral and agreement most of the time,
so that requests get past the 404 of an unknown record to the rules.

Deterministic (``derandomize``, no example database) and bounded
(:data:`EXAMPLES` per operation), on SQLite: it runs in seconds and the
same on every run. ``schemathesis run`` against ``partnerledger serve``
fuzzes further (see docs/api.md).

Each operation is a test of its own, driven by hypothesis from
``operation.as_strategy()``: schemathesis's own ``from_fixture`` pytest
integration reads ``request.node._nodeid``, which pytest 9 no longer has.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from partnerledger import Database
from partnerledger.accounts import Accounts
from partnerledger.commands import convert_command
from partnerledger.web import api
from partnerledger.web.app import create_app
from webkit import START, build_world, record

#: Examples per operation: enough to reach each route's checks, few enough for every CI run.
EXAMPLES = 50
TERMS = {"scope": "Referrals of legal and tax clients", "duration_days": 365}
#: Offsets as far as RFC 3339 goes: near year 1 or 9999 they push a time off the calendar.
OFFSETS = [timezone(timedelta(hours=hours)) for hours in (0, 1, -1, 14, -12)]

# Times anywhere in the calendar, with any offset: hypothesis favours the ends (years 1, 9999).
schemathesis.openapi.format(
    "date-time", st.datetimes(timezones=st.sampled_from(OFFSETS)).map(datetime.isoformat)
)


_CONVERTER = re.compile(r":[a-z]+}")


def _labels() -> list[str]:
    """Every operation of the API, as schemathesis labels it: ``POST /api/v1/networks/...``."""
    found = []
    for handler in api.HANDLERS:
        for path in sorted(handler.paths):
            template = _CONVERTER.sub("}", path)  # "{network:str}" -> "{network}"
            found.extend(
                f"{method} {api.PATH}{template}" for method in sorted(handler.http_methods)
            )
    return found


LABELS = _labels()
#: schemathesis's checks run on every answer.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The API's schema from the app (on SQLite), set up to call it as riverside's coordinator."""
    folder: Path = tmp_path_factory.mktemp("fuzz")
    world = build_world(str(folder / "ledger.db"))
    proposal = {"type": "agreement.proposed", "network": "riverside", "actor": "setup",
                "occurred_at": START, "agreement": "a-1", "kind": "referral",
                "parties": ["ann-law", "bob-tax"], "terms": TERMS}  # fmt: skip
    record(world, convert_command(proposal))
    with Accounts(Database.parse(world.database_url)) as accounts:
        user = accounts.by_email(world.coordinator)
        assert user is not None
        token = accounts.create_token(user.id, "fuzzer")[0]
    app = create_app(world.database_url, secret="test-secret", sessions=folder / "sessions",
                     inline=True)  # fmt: skip
    known = {"network": ["riverside"], "member": ["ann-law", "bob-tax"], "referral": ["r-1"],
             "agreement": ["a-1"]}  # fmt: skip
    config = SchemathesisConfig.from_dict(
        {
            "headers": {"Authorization": f"Bearer {token}"},
            "dictionaries": {name: {"values": values} for name, values in known.items()},
            # Mostly records the world holds; now and then anything (a 404).
            "parameters": {
                f"path.{name}": {"dictionary": name, "probability": 0.9} for name in known
            },
            # No server error, and every answer is one the document promises: a
            # documented status code, its content type, a body of its schema.
            "checks": {
                "enabled": False,
                **{name: {"enabled": True} for name in CHECKS},
            },
        }
    )
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app, config=config)
    published = {result.ok().label for result in schema.get_all_operations()}
    assert published == set(LABELS), "every operation of the document is fuzzed"
    return schema


def test_every_operation_is_fuzzed() -> None:
    assert len(LABELS) == len(set(LABELS)) >= 30


@pytest.mark.parametrize("label", LABELS)
def test_no_request_makes_the_api_fail(api_schema: Any, label: str) -> None:
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, label
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=cases)
    def call(case: Any) -> None:
        case.call_and_validate()  # not_a_server_error: any 5xx fails, with the request

    call()
