"""The JSON API under /api/v1: tokens, roles, every endpoint, problem details, pages, OpenAPI.

Each test runs on SQLite and PostgreSQL over the small world of
``webkit`` (riverside: a coordinator, members ann-law and bob-tax, an
auditor; harbor: the outsider's network). The app keeps its views up to
date itself (``inline``), as ``partnerledger serve`` does on SQLite, so that
reads right after writes see them on PostgreSQL too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from partnerledger import Database, Ledger, Store
from partnerledger.accounts import Accounts
from partnerledger.commands import MemberLeft
from partnerledger.errors import InvalidCommand
from partnerledger.web.app import create_app
from partnerledger.web.services import Services
from webkit import World, browser, build_world, command, record

ROLES = {
    "coordinator": "coordinator",
    "member": "member",  # ann-law
    "other": "other_member",  # bob-tax
    "auditor": "auditor",
    "outsider": "outsider",  # coordinator of harbor only
}
FEE_TERMS = {
    "scope": "Referrals of legal and tax clients",
    "compensation": {"kind": "referral_fee", "amount": "250"},
    "duration_days": 365,
}


@dataclass
class Api:
    """A client of the API with one token per role."""

    client: TestClient[Any]
    tokens: dict[str, str]

    def call(self, method: str, path: str, who: str = "coordinator", **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}", **kwargs.pop("headers", {})}
        return self.client.request(method, f"/api/v1{path}", headers=headers, **kwargs)

    def get(self, path: str, who: str = "coordinator", **params: Any) -> Any:
        return self.call("GET", path, who, params=params)

    def post(self, path: str, body: Any = None, who: str = "coordinator") -> Any:
        if body is None:
            return self.call("POST", path, who)
        return self.call("POST", path, who, json=body)

    def ok(self, method: str, path: str, body: Any = None, who: str = "coordinator") -> Any:
        """A write that must be recorded: the event."""
        extra = {"json": body} if body is not None else {}
        response = self.call(method, path, who, **extra)
        assert response.status_code == 201, response.text
        found = response.json()
        assert found["recorded"] is True
        return found["event"]

    def log_size(self) -> int:
        return int(self.client.app.state.services.store.last_position())


@pytest.fixture
def world(database_url: str) -> World:
    return build_world(database_url)


@pytest.fixture
def api(world: World, tmp_path: Path) -> Iterator[Api]:
    with Accounts(Database.parse(world.database_url)) as accounts:
        tokens = {}
        for role, attribute in ROLES.items():
            user = accounts.by_email(getattr(world, attribute))
            assert user is not None
            tokens[role] = accounts.create_token(user.id, f"{role} script")[0]
    app = create_app(
        world.database_url, secret="test-secret", sessions=tmp_path / "sessions", inline=True
    )
    with TestClient(app) as client:
        yield Api(client, tokens)


def problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """The response is a problem document with that status (naming ``field``)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body


# ------------------------------------------------------------ authentication


def test_without_a_valid_token_the_api_answers_401(api: Api, world: World, tmp_path: Path) -> None:
    response = api.client.get("/api/v1/networks")
    assert "API token" in problem(response, 401)["detail"]
    bad = api.client.get("/api/v1/networks", headers={"Authorization": "Bearer plt_nope"})
    assert "unknown or revoked" in problem(bad, 401)["detail"]
    assert api.get("/networks", "member").status_code == 200
    with Accounts(Database.parse(world.database_url)) as accounts:
        user = accounts.by_email(world.member)
        assert user is not None
        [token] = accounts.tokens(user.id)
        accounts.revoke_token(user.id, token.id)
    problem(api.get("/networks", "member"), 401)
    # A signed-in browser's session cookie is no API credential.
    with browser(world, tmp_path, world.member) as web:
        problem(web.get("/api/v1/networks"), 401)


# ------------------------------------------------------------------ networks


def test_networks_are_those_of_the_caller(api: Api) -> None:
    mine = api.get("/networks", "member").json()
    assert mine["next"] is None
    [riverside] = mine["items"]
    assert riverside == {
        "network": "riverside",
        "name": "Riverside Chamber",
        "currency": "USD",
        "period": "quarter",
        "rolling_days": None,
        "tiers": [{"name": "bronze", "threshold": "0"}, {"name": "silver", "threshold": "20"}],
        "plugins": ["points", "threshold-tiers"],
        "role": "member",
        "member": "ann-law",
    }
    assert api.get("/networks/riverside", "auditor").json()["role"] == "auditor"
    assert [n["network"] for n in api.get("/networks", "outsider").json()["items"]] == ["harbor"]
    problem(api.get("/networks/harbor", "coordinator"), 404)
    problem(api.get("/networks/nowhere", "coordinator"), 404)


# ------------------------------------------------------------------- members


def test_members_directory_and_lifecycle(api: Api) -> None:
    page = api.get("/networks/riverside/members", "auditor", limit=1).json()
    assert [m["member"] for m in page["items"]] == ["ann-law"] and page["next"] == "1"
    rest = api.get("/networks/riverside/members", "auditor", limit=1, cursor=page["next"]).json()
    assert [m["member"] for m in rest["items"]] == ["bob-tax"] and rest["next"] is None
    ann = api.get("/networks/riverside/members/ann-law", "other").json()
    assert ann["name"] == "Ann Law" and ann["status"] == "active" and ann["category"] == "lawyer"
    problem(api.get("/networks/riverside/members/nobody"), 404, "member")

    invite = {
        "member": "cal-flowers",
        "name": "Cal Flowers",
        "category": "florist",
        "contact": {"email": "cal@flowers.example"},
    }
    problem(api.post("/networks/riverside/members", invite, "member"), 403)
    event = api.ok("POST", "/networks/riverside/members", invite)
    assert event["type"] == "member.invited" and event["actor"] == "coord@riverside.example"
    assert event["command"]["contact"] == {"email": "cal@flowers.example"}
    assert event["position"] == api.log_size()
    assert (
        api.get("/networks/riverside/members", status="invited").json()["items"][0]["member"]
        == "cal-flowers"
    )
    problem(api.post("/networks/riverside/members", invite), 409, "member")

    assert api.ok("POST", "/networks/riverside/members/cal-flowers/join")["type"] == "member.joined"
    api.ok("POST", "/networks/riverside/members/cal-flowers/suspend", {"reason": "unpaid dues"})
    cal = api.get("/networks/riverside/members/cal-flowers").json()
    assert cal["status"] == "suspended"
    problem(api.post("/networks/riverside/members/cal-flowers/suspend"), 409, "member")
    api.ok("POST", "/networks/riverside/members/cal-flowers/reinstate")
    # A member updates their own profile only; fields left out keep their value.
    problem(
        api.call(
            "PATCH",
            "/networks/riverside/members/bob-tax",
            "member",
            json={"service_area": "Uptown"},
        ),
        403,
    )
    event = api.ok(
        "PATCH", "/networks/riverside/members/ann-law", {"service_area": "Uptown"}, "member"
    )
    assert event["type"] == "member.updated" and event["command"]["member"] == "ann-law"
    assert event["command"]["service_area"] == "Uptown" and "name" not in event["command"]
    ann = api.get("/networks/riverside/members/ann-law").json()
    assert (ann["name"], ann["service_area"]) == ("Ann Law", "Uptown")
    # Leaving: a member for their own business, a coordinator for anyone.
    problem(api.post("/networks/riverside/members/bob-tax/leave", who="member"), 403)
    api.ok("POST", "/networks/riverside/members/cal-flowers/leave", {"reason": "moved away"})
    assert api.get("/networks/riverside/members/cal-flowers").json()["status"] == "left"


def test_bad_member_input_names_the_field_and_writes_nothing(api: Api) -> None:
    before = api.log_size()
    problem(
        api.post("/networks/riverside/members", {"member": "x-co", "name": "X"}), 422, "category"
    )
    problem(
        api.post(
            "/networks/riverside/members", {"member": "bad slug!", "name": "X", "category": "y"}
        ),
        422,
        "member",
    )
    problem(
        api.post(
            "/networks/riverside/members",
            {"member": "x-co", "name": "X", "category": "y", "colour": "red"},
        ),
        422,
        "colour",
    )
    problem(
        api.post(
            "/networks/riverside/members",
            {"member": "x-co", "name": "X", "category": "y", "contact": {"email": "no-at-sign"}},
        ),
        422,
        "contact.email",
    )
    problem(api.call("PATCH", "/networks/riverside/members/ann-law", json={}), 422, "name")
    malformed = api.call(
        "POST",
        "/networks/riverside/members",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    problem(malformed, 400)
    problem(api.get("/networks/riverside/members", limit=0), 422, "limit")
    problem(api.get("/networks/riverside/members", cursor="abc"), 422, "cursor")
    problem(api.get("/networks/riverside/members", cursor="²"), 422, "cursor")
    problem(api.get("/networks/riverside/members", status="sleeping"), 422, "status")
    assert api.log_size() == before


# ----------------------------------------------------------------- referrals


def test_referral_lifecycle_with_roles(api: Api) -> None:
    base = "/networks/riverside/referrals"
    # Only the receiver (bob-tax) or a coordinator answers r-1.
    problem(api.post(f"{base}/r-1/accept", who="member"), 403)
    problem(api.post(f"{base}/r-1/accept", who="auditor"), 403)
    problem(api.post(f"{base}/nope/accept", who="other"), 404, "referral")
    accepted = api.ok(
        "POST", f"{base}/r-1/accept", {"occurred_at": "2025-02-01T10:00:00Z"}, "other"
    )
    assert accepted["type"] == "referral.accepted" and accepted["actor"] == "bob@riverside.example"
    assert accepted["occurred_at"] == "2025-02-01T10:00:00Z"
    problem(api.post(f"{base}/r-1/accept", who="other"), 409, "referral")
    problem(api.post(f"{base}/r-1/convert", {"deal_value": "1000"}, "member"), 403)
    converted = api.ok(
        "POST",
        f"{base}/r-1/convert",
        {"deal_value": "1500.50", "occurred_at": "2025-02-10T12:00:00Z"},
        "other",
    )
    assert converted["command"]["deal_value"] == "1500.50"
    assert converted["command"]["currency"] == "USD"  # the network's by default
    # Reversals are the coordinator's.
    problem(api.post(f"{base}/r-1/reverse", {"amount": "100", "reason": "refund"}, "other"), 403)
    problem(api.post(f"{base}/r-1/reverse", {"amount": "9999", "reason": "refund"}), 422, "amount")
    api.ok(
        "POST",
        f"{base}/r-1/reverse",
        {"amount": "500.50", "reason": "partial refund", "occurred_at": "2025-03-01T09:00:00Z"},
    )
    detail = api.get(f"{base}/r-1", "member").json()
    assert detail["status"] == "reversed"
    assert (detail["deal_value"], detail["reversed_amount"]) == ("1500.50", "500.50")
    assert detail["net_value"] == "1000.00"
    assert [e["type"] for e in detail["events"]] == [
        "referral.sent",
        "referral.accepted",
        "referral.converted",
        "referral.reversed",
    ]
    positions = [e["position"] for e in detail["events"]]
    assert positions == sorted(positions)


def test_sending_decline_and_lose(api: Api) -> None:
    base = "/networks/riverside/referrals"
    # A member sends from their own business only.
    problem(
        api.post(
            base, {"from_member": "bob-tax", "to_member": "ann-law", "customer": "X"}, "member"
        ),
        403,
    )
    problem(api.post(base, {"to_member": "bob-tax", "customer": "X"}, "auditor"), 403)
    sent = api.ok(
        "POST",
        base,
        {"to_member": "bob-tax", "customer": "Eve Stone", "note": "needs a tax return"},
        "member",
    )
    slug = sent["command"]["referral"]
    assert sent["command"]["from_member"] == "ann-law" and slug.startswith("r-")
    api.ok("POST", f"{base}/{slug}/decline", {"reason": "no capacity"}, "other")
    assert api.get(f"{base}/{slug}").json()["status"] == "declined"
    problem(api.post(f"{base}/{slug}/lose", who="other"), 409, "referral")
    # A coordinator names the sender.
    lead = api.ok(
        "POST",
        base,
        {"referral": "r-lost", "from_member": "bob-tax", "to_member": "ann-law", "customer": "Fay"},
    )
    assert lead["command"]["referral"] == "r-lost"
    api.ok("POST", f"{base}/r-lost/accept", who="member")
    api.ok("POST", f"{base}/r-lost/lose", {"reason": "went elsewhere"}, "member")
    assert api.get(f"{base}/r-lost", "other").json()["status"] == "lost"


def test_bad_referral_input_names_the_field_and_writes_nothing(api: Api) -> None:
    base = "/networks/riverside/referrals"
    api.ok("POST", f"{base}/r-1/accept", who="other")
    before = api.log_size()
    problem(api.post(base, {"to_member": "bob-tax", "customer": "X"}), 422, "from_member")
    problem(api.post(base, {"to_member": "zed", "customer": "X"}, "member"), 422, "to_member")
    problem(api.post(base, {"to_member": "ann-law", "customer": "X"}, "member"), 422, "to_member")
    problem(api.post(base, {"to_member": "bob-tax"}, "member"), 422, "customer")
    problem(api.post(f"{base}/r-1/convert", {"deal_value": "lots"}, "other"), 422, "deal_value")
    problem(api.post(f"{base}/r-1/convert", {"deal_value": "-5"}, "other"), 422, "deal_value")
    problem(
        api.post(f"{base}/r-1/convert", {"deal_value": "5", "currency": "EUR"}, "other"),
        422,
        "currency",
    )
    problem(api.post(f"{base}/r-1/convert", {}, "other"), 422, "deal_value")
    problem(
        api.post(f"{base}/r-1/convert", {"deal_value": "5", "occurred_at": "2025-02-10"}, "other"),
        422,
        "occurred_at",
    )
    assert api.log_size() == before
    assert api.get(f"{base}/r-1").json()["status"] == "accepted"


def test_a_repeated_command_id_is_recorded_once(api: Api) -> None:
    base = "/networks/riverside/referrals"
    body = {"to_member": "bob-tax", "customer": "Gil", "command_id": "crm-4711"}
    first = api.ok("POST", base, body, "member")
    size = api.log_size()
    again = api.post(base, body, "member")
    assert again.status_code == 200
    assert again.json() == {"recorded": False, "event": first}
    assert api.log_size() == size
    changed = api.post(base, {**body, "customer": "Someone else"}, "member")
    problem(changed, 422, "command_id")
    assert api.log_size() == size


def test_a_member_sees_only_their_own_referrals(api: Api) -> None:
    base = "/networks/riverside/referrals"
    api.ok(
        "POST",
        "/networks/riverside/members",
        {"member": "cal-flowers", "name": "Cal", "category": "florist"},
    )
    api.ok("POST", "/networks/riverside/members/cal-flowers/join")
    api.ok(
        "POST",
        base,
        {
            "referral": "r-2",
            "from_member": "bob-tax",
            "to_member": "cal-flowers",
            "customer": "Hal",
        },
    )
    api.ok(
        "POST",
        base,
        {
            "referral": "r-3",
            "from_member": "cal-flowers",
            "to_member": "ann-law",
            "customer": "Ida",
        },
    )
    everything = [r["referral"] for r in api.get(base, "auditor").json()["items"]]
    assert everything == ["r-1", "r-2", "r-3"]
    assert [r["referral"] for r in api.get(base, "member").json()["items"]] == ["r-1", "r-3"]
    problem(api.get(f"{base}/r-2", "member"), 403)
    problem(api.get(base, "member", member="bob-tax"), 403)
    sent_to_cal = api.get(base, member="cal-flowers").json()["items"]
    assert [r["referral"] for r in sent_to_cal] == ["r-2", "r-3"]
    assert [
        r["referral"] for r in api.get(base, status="sent", member="ann-law").json()["items"]
    ] == ["r-1", "r-3"]
    # Pages of one, across the whole list.
    seen, cursor = [], None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = api.get(base, "auditor", **params).json()
        seen += [r["referral"] for r in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == ["r-1", "r-2", "r-3"]


# ---------------------------------------------------------------- agreements


def test_agreement_lifecycle(api: Api) -> None:
    base = "/networks/riverside/agreements"
    proposal = {
        "agreement": "a-ann-bob",
        "kind": "referral",
        "parties": ["ann-law", "bob-tax"],
        "terms": FEE_TERMS,
        "pilot": {"days": 60, "goals": ["three referrals"]},
        "occurred_at": "2025-01-10T09:00:00Z",
    }
    problem(api.post(base, {**proposal, "parties": ["bob-tax", "program"]}, "member"), 403)
    problem(api.post(base, proposal, "auditor"), 403)
    proposed = api.ok("POST", base, proposal, "member")
    assert proposed["command"]["terms"]["compensation"]["amount"] == "250"
    problem(api.post(f"{base}/a-ann-bob/accept", {"party": "bob-tax"}, "member"), 403)
    api.ok("POST", f"{base}/a-ann-bob/accept", {"occurred_at": "2025-01-11T09:00:00Z"}, "member")
    problem(api.post(f"{base}/a-ann-bob/accept", who="member"), 409, "party")
    api.ok("POST", f"{base}/a-ann-bob/accept", {"occurred_at": "2025-01-12T09:00:00Z"}, "other")
    pilot = api.get(f"{base}/a-ann-bob", "other").json()
    assert pilot["status"] == "pilot" and pilot["accepted_by"] == ["ann-law", "bob-tax"]
    assert pilot["pilot_ends_at"] == "2025-03-13T09:00:00Z"
    problem(api.post(f"{base}/a-ann-bob/activate", who="member"), 403)
    api.ok("POST", f"{base}/a-ann-bob/activate", {"occurred_at": "2025-03-13T09:00:00Z"})
    new_terms = {**FEE_TERMS, "compensation": {"kind": "referral_fee", "amount": "300"}}
    problem(
        api.post(f"{base}/a-ann-bob/amend", {"terms": new_terms, "accepted_by": ["ann-law"]}),
        422,
        "accepted_by",
    )
    problem(
        api.post(
            f"{base}/a-ann-bob/amend",
            {"terms": new_terms, "accepted_by": ["ann-law", "bob-tax"]},
            "member",
        ),
        403,
    )
    api.ok(
        "POST",
        f"{base}/a-ann-bob/amend",
        {"terms": new_terms, "accepted_by": ["ann-law", "bob-tax"]},
    )
    api.ok("POST", f"{base}/a-ann-bob/renew", {"duration_days": 180})
    detail = api.get(f"{base}/a-ann-bob", "member").json()
    assert detail["status"] == "renewed" and detail["terms_version"] == 2
    assert [v["terms"]["compensation"]["amount"] for v in detail["versions"]] == ["250", "300"]
    assert detail["terms"]["compensation"]["amount"] == "300"
    assert [e["type"] for e in detail["events"]][-2:] == ["agreement.amended", "agreement.renewed"]
    listed = api.get(base, "auditor", status="renewed").json()["items"]
    assert [a["agreement"] for a in listed] == ["a-ann-bob"]
    problem(api.post(f"{base}/a-ann-bob/terminate", {"reason": "x"}, "auditor"), 403)
    problem(api.post(f"{base}/a-ann-bob/terminate", {}, "member"), 422, "reason")
    ended = api.ok("POST", f"{base}/a-ann-bob/terminate", {"reason": "retiring"}, "member")
    assert ended["type"] == "agreement.terminated"
    assert api.get(f"{base}/a-ann-bob").json()["termination_reason"] == "retiring"


def test_agreements_bad_terms_and_visibility(api: Api) -> None:
    base = "/networks/riverside/agreements"
    before = api.log_size()
    bad = {"kind": "referral", "parties": ["ann-law", "bob-tax"]}
    problem(api.post(base, {**bad, "terms": {**FEE_TERMS, "colour": "red"}}), 422, "terms.colour")
    problem(
        api.post(base, {**bad, "terms": {"compensation": {"kind": "referral_fee"}}}),
        422,
        "terms.scope",
    )
    problem(
        api.post(
            base,
            {
                **bad,
                "terms": {"scope": "s", "compensation": {"kind": "revenue_share", "rate": "1.5"}},
            },
        ),
        422,
        "terms.compensation.rate",
    )
    problem(api.post(base, {**bad, "kind": "friendship", "terms": FEE_TERMS}), 422, "kind")
    problem(
        api.post(base, {**bad, "parties": ["ann-law", "ghost"], "terms": FEE_TERMS}),
        422,
        "parties[1]",
    )
    assert api.log_size() == before
    api.ok(
        "POST",
        "/networks/riverside/members",
        {"member": "cal-flowers", "name": "Cal", "category": "florist"},
    )
    api.ok("POST", "/networks/riverside/members/cal-flowers/join")
    api.ok(
        "POST",
        base,
        {
            "agreement": "a-1",
            "kind": "co-marketing",
            "terms": FEE_TERMS,
            "parties": ["bob-tax", "cal-flowers"],
        },
    )
    api.ok(
        "POST",
        base,
        {
            "agreement": "a-2",
            "kind": "referral",
            "terms": FEE_TERMS,
            "parties": ["ann-law", "program"],
        },
    )
    assert [a["agreement"] for a in api.get(base, "member").json()["items"]] == ["a-2"]
    assert [a["agreement"] for a in api.get(base).json()["items"]] == ["a-1", "a-2"]
    problem(api.get(f"{base}/a-1", "member"), 403)
    problem(api.post(f"{base}/a-1/terminate", {"reason": "no"}, "member"), 403)
    # Only a coordinator accepts for the program.
    problem(api.post(f"{base}/a-2/accept", {"party": "program"}, "member"), 403)
    api.ok("POST", f"{base}/a-2/accept", {"party": "program"})
    problem(api.get(f"{base}/a-9"), 404, "agreement")


# ------------------------------------------------- standings, scorecards, money


def _fees_and_a_conversion(api: Api, world: World) -> None:
    """The fees plugin on; a referral fee agreement; r-1 converted in 2025-Q1."""
    with Store(Database.parse(world.database_url)) as store:
        Ledger(store).execute(command("plugin.enabled", "riverside", plugin="fees"))
    api.ok(
        "POST",
        "/networks/riverside/agreements",
        {
            "agreement": "a-fee",
            "kind": "referral",
            "parties": ["ann-law", "bob-tax"],
            "terms": FEE_TERMS,
            "occurred_at": "2025-01-10T09:00:00Z",
        },
        "member",
    )
    for who in ("member", "other"):
        api.ok(
            "POST",
            "/networks/riverside/agreements/a-fee/accept",
            {"occurred_at": "2025-01-11T09:00:00Z"},
            who,
        )
    api.ok(
        "POST",
        "/networks/riverside/referrals/r-1/accept",
        {"occurred_at": "2025-02-01T09:00:00Z"},
        "other",
    )
    api.ok(
        "POST",
        "/networks/riverside/referrals/r-1/convert",
        {"deal_value": "10000", "occurred_at": "2025-02-10T09:00:00Z"},
        "other",
    )


def test_statements_show_money_with_two_decimals(api: Api, world: World) -> None:
    _fees_and_a_conversion(api, world)
    path = "/networks/riverside/members/ann-law/statements/2025-Q1"
    statement = api.get(path, "member").json()
    assert statement["currency"] == "USD" and statement["closed"] is False
    assert (statement["opening"], statement["closing"]) == ("0.00", "250.00")
    [entry] = statement["entries"]
    assert (entry["kind"], entry["amount"], entry["plugin"]) == ("referral_fee", "250.00", "fees")
    assert entry["source_type"] == "referral.converted"
    # A date inside the period names it too; the auditor reads anyone's.
    assert (
        api.get("/networks/riverside/members/ann-law/statements/2025-02-15", "auditor").json()[
            "closing"
        ]
        == "250.00"
    )
    problem(api.get("/networks/riverside/members/ann-law/statements/2025-Q1", "other"), 403)
    problem(api.get("/networks/riverside/members/ann-law/statements/2025-13"), 422, "period")
    problem(api.get("/networks/riverside/members/ghost/statements/2025-Q1"), 404, "member")
    problem(api.get(path, "outsider"), 404)


def test_standings_of_a_period(api: Api, world: World) -> None:
    _fees_and_a_conversion(api, world)
    page = api.get("/networks/riverside/standings", "auditor", period="2025-Q1").json()
    assert page["period"] == "2025-Q1" and page["window_start"] == "2025-01-01T00:00:00Z"
    by_member = {s["member"]: s for s in page["items"]}
    assert set(by_member) == {"ann-law", "bob-tax"}
    ann = by_member["ann-law"]
    assert isinstance(ann["score"], str) and ann["scoring_plugin"]["name"] == "points"
    assert ann["breakdown"] and all(isinstance(v, str) for v in ann["breakdown"].values())
    assert ann["tier"] in ("bronze", "silver") and ann["closed"] is False
    assert ann["activity"]["referrals_given"] == 1
    assert ann["activity"]["converted_value_given"] == "10000"
    mine = api.get("/networks/riverside/standings", "member", period="2025-Q1").json()["items"]
    assert [s["member"] for s in mine] == ["ann-law"]
    problem(api.get("/networks/riverside/standings", "member", member="bob-tax"), 403)
    problem(api.get("/networks/riverside/standings", period="2025-06"), 422, "period")
    first = api.get("/networks/riverside/standings", period="2025-Q1", limit=1).json()
    assert len(first["items"]) == 1 and first["next"] == "1"
    second = api.get(
        "/networks/riverside/standings", period="2025-Q1", limit=1, cursor=first["next"]
    ).json()
    assert len(second["items"]) == 1 and second["next"] is None
    assert first["items"][0]["member"] != second["items"][0]["member"]
    # Without a period: the current one.
    assert api.get("/networks/riverside/standings").json()["period"].count("-Q") == 1


def test_scorecards_of_pairs(api: Api, world: World) -> None:
    _fees_and_a_conversion(api, world)
    cards = api.get("/networks/riverside/scorecards", as_of="2025-03-01T00:00:00Z").json()
    [card] = cards["items"]
    assert (card["member"], card["partner"], card["currency"]) == ("ann-law", "bob-tax", "USD")
    assert card["given"]["sent"] == 1 and card["given"]["converted_value"] == "10000.00"
    assert card["received"]["sent"] == 0 and card["flags"]["one_sided"] is True
    assert card["agreement"]["agreement"] == "a-fee"
    bob_side = api.get(
        "/networks/riverside/scorecards", "other", as_of="2025-03-01T00:00:00Z"
    ).json()["items"]
    assert [(c["member"], c["partner"]) for c in bob_side] == [("bob-tax", "ann-law")]
    assert bob_side[0]["received"]["converted_value"] == "10000.00"
    dormant = api.get(
        "/networks/riverside/scorecards", as_of="2025-12-01T00:00:00Z", dormant_days=30
    ).json()["items"][0]
    assert dormant["flags"]["dormant"] is True
    problem(api.get("/networks/riverside/scorecards", "member", member="bob-tax"), 403)
    problem(api.get("/networks/riverside/scorecards", as_of="2025-03-01T00:00:00"), 422, "as_of")
    problem(api.get("/networks/riverside/scorecards", dormant_days=0), 422, "dormant_days")
    problem(api.get("/networks/riverside/scorecards", member="ghost"), 422, "member")


# -------------------------------------------------------------------- events


def test_the_event_log_pages_by_position(api: Api) -> None:
    base = "/networks/riverside/events"
    everything = api.get(base, "auditor", limit=200).json()
    assert everything["next"] is None
    types = [e["type"] for e in everything["items"]]
    assert types[:3] == ["network.created", "plugin.enabled", "plugin.enabled"]
    assert all(e["network"] == "riverside" for e in everything["items"])  # never harbor's
    seen, after = [], 0
    while True:
        page = api.get(base, "auditor", limit=2, after=after).json()
        assert len(page["items"]) <= 2
        seen += page["items"]
        if page["next"] is None:
            break
        after = page["next"]
    assert seen == everything["items"]
    sent = api.get(base, type="referral.sent").json()["items"]
    assert [e["command"]["referral"] for e in sent] == ["r-1"]
    both = api.get(base, type=["member.joined", "referral.sent"]).json()["items"]
    assert [e["type"] for e in both] == ["member.joined", "member.joined", "referral.sent"]
    api.ok(
        "POST",
        "/networks/riverside/referrals/r-1/accept",
        {"occurred_at": "2025-03-01T00:00:00Z"},
        "other",
    )
    # The member filter follows a referral's later events; times bound business time.
    bob = api.get(base, member="bob-tax").json()["items"]
    assert [e["type"] for e in bob] == ["member.joined", "referral.sent", "referral.accepted"]
    late = api.get(base, since="2025-02-01T00:00:00Z", until="2025-04-01T00:00:00+00:00").json()
    assert [e["type"] for e in late["items"]] == ["referral.accepted"]
    # A member reads the events of their own business.
    mine = api.get(base, "member").json()["items"]
    assert {e["type"] for e in mine} == {"member.joined", "referral.sent", "referral.accepted"}
    problem(api.get(base, "member", member="bob-tax"), 403)
    problem(api.get(base, type="referral.sent2"), 422, "type")
    problem(api.get(base, since="2025-01-01T00:00:00"), 422, "since")
    problem(api.get(base, after=-1), 422, "after")
    problem(api.get(base, "outsider"), 404)


# ------------------------------------------------------------- hostile input
# What a schema-based fuzzer found (tests/test_api_fuzz.py keeps looking): each
# was a 500, and some wrote an event first that no view could read afterwards.

SUSPEND = "/networks/riverside/members/bob-tax/suspend"


def test_numbers_in_the_query_are_bounded(api: Api) -> None:
    """Each integer (and the cursor) has a range, in the document and at the door."""
    huge = 10**30
    scorecards, events, members = (
        "/networks/riverside/scorecards",
        "/networks/riverside/events",
        "/networks/riverside/members",
    )
    # timedelta(days=153111168082834464) overflowed: OverflowError, 500.
    problem(api.get(scorecards, dormant_days=153111168082834464), 422, "dormant_days")
    problem(api.get(scorecards, dormant_days=36501), 422, "dormant_days")
    assert api.get(scorecards, dormant_days=36500).status_code == 200
    # Past SQLite's (and PostgreSQL's) 64-bit integers: OverflowError, 500.
    problem(api.get(events, after=huge), 422, "after")
    assert api.get(events, after=2**53 - 1).json() == {"items": [], "next": None}
    problem(api.get(members, limit=huge), 422, "limit")
    # int() refuses a text of more than 4300 digits: ValueError, 500.
    problem(api.get(members, cursor="9" * 5000), 422, "cursor")
    assert api.get(members, cursor="9" * 18).json() == {"items": [], "next": None}
    document = api.client.get("/schema/openapi.json").json()

    def parameter(path: str, name: str) -> dict[str, Any]:
        operation = document["paths"][f"/api/v1/networks/{{network}}{path}"]["get"]
        [found] = [p["schema"] for p in operation["parameters"] if p["name"] == name]
        return dict(found)

    assert parameter("/scorecards", "dormant_days")["maximum"] == 36500
    assert parameter("/events", "after")["maximum"] == 2**53 - 1
    assert parameter("/members", "limit")["maximum"] == 200
    assert parameter("/members", "cursor")["maxLength"] == 18
    assert "referral.sent" in str(parameter("/events", "type"))


@pytest.mark.parametrize(
    "moment",
    [
        "0185-03-08T22:08:28Z",  # stored as "185-...": no view could read the log again
        "0001-01-01T00:00:00+01:00",  # in UTC before year 1: OverflowError
        "9999-12-31T23:59:59-01:00",  # in UTC after year 9999: OverflowError
        "1899-12-31T23:59:59Z",
        "2200-01-01T00:00:00Z",
    ],
)
def test_a_time_outside_the_range_of_business_times_is_refused(api: Api, moment: str) -> None:
    before = api.log_size()
    body = problem(api.post(SUSPEND, {"occurred_at": moment}), 422, "occurred_at")
    assert "1900" in body["detail"] and "2200" in body["detail"]
    problem(api.post("/networks/riverside/referrals/r-1/accept", {"occurred_at": moment},
                     "other"), 422, "occurred_at")  # fmt: skip
    assert api.log_size() == before
    problem(api.get("/networks/riverside/scorecards", as_of=moment), 422, "as_of")


def test_a_time_recorded_before_the_range_was_checked_still_reads_back(
    api: Api, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New commands only are held to the range: the log stays readable whatever it holds.

    Year 185 went into SQLite's views as "185-03-08..." (``strftime("%Y")``),
    which no read could parse back: every later request answered 500.
    """
    monkeypatch.setattr("partnerledger.ledger.in_range", lambda moment: True)
    record(world, command("member.suspended", "riverside", member="bob-tax",
                          occurred_at=datetime(185, 3, 8, 22, 8, 28, tzinfo=UTC)))  # fmt: skip
    monkeypatch.undo()
    events = api.get("/networks/riverside/events", type="member.suspended").json()["items"]
    assert [e["occurred_at"] for e in events] == ["0185-03-08T22:08:28Z"]
    assert api.get("/networks/riverside/members/bob-tax").json()["status"] == "suspended"
    for path in ("/members", "/referrals", "/scorecards", "/standings?period=2025-Q1"):
        assert api.call("GET", f"/networks/riverside{path}").status_code == 200, path


def test_times_are_rfc_3339_text_in_bodies_and_queries(api: Api) -> None:
    """A number (or a numeric string) is no time: it was read as a Unix timestamp."""
    before = api.log_size()
    for moment in (0, 1700000000, "0", "", "2025-02-01", "2025-02-01T09:00:00"):
        problem(api.post(SUSPEND, {"occurred_at": moment}), 422, "occurred_at")
    problem(api.call("PATCH", "/networks/riverside/members/bob-tax",
                     json={"name": "Bob", "occurred_at": 0}), 422, "occurred_at")  # fmt: skip
    assert api.log_size() == before
    problem(api.get("/networks/riverside/events", until="0.5"), 422, "until")
    problem(api.get("/networks/riverside/events", since=""), 422, "since")
    problem(api.get("/networks/riverside/scorecards", as_of="1"), 422, "as_of")
    edge = api.ok("POST", SUSPEND, {"occurred_at": "2199-12-31T23:59:59+00:00"})
    assert edge["occurred_at"] == "2199-12-31T23:59:59Z"


@pytest.mark.parametrize("period", ["9999-Q4", "0000-Q1", "9999-12-31", "1899-12-31", "2025-13"])
def test_a_period_outside_the_calendar_is_refused(api: Api, period: str) -> None:
    # datetime(10000, 1, 1) for the end of 9999-Q4: ValueError, 500.
    problem(api.get("/networks/riverside/standings", period=period), 422, "period")
    problem(api.get(f"/networks/riverside/members/ann-law/statements/{period}"), 422, "period")


def test_text_that_is_no_unicode_is_refused_naming_the_field(api: Api, world: World) -> None:
    """A lone surrogate cannot be stored (UnicodeEncodeError, 500): refused as the field's."""
    before = api.log_size()
    # JSON holds one only as an escape: the body as a whole does not decode.
    lone = api.call("POST", "/networks/riverside/members/bob-tax/leave",
                    content=b'{"reason": "x \\udcdb y"}',
                    headers={"content-type": "application/json"})  # fmt: skip
    assert "surrogate" in problem(lone, 400, "body")["detail"]
    problem(api.call("POST", "/networks/riverside/members/bob-tax/leave", content=b"{not json",
                     headers={"content-type": "application/json"}), 400, "body")  # fmt: skip
    # Python (or a command line whose bytes are not UTF-8) can hold one: the
    # command names the field, nested ones too, through the same services.
    services = Services(Database.parse(world.database_url), inline=False)
    try:
        user = services.accounts.by_email(world.coordinator)
        assert user is not None
        for fields, field in (
            ({"type": "member.left", "member": "bob-tax", "reason": "x \udcdb y"}, "reason"),
            ({"type": "member.updated", "member": "bob-tax", "contact": {"person": "\ud800"}},
             "contact.person"),
        ):  # fmt: skip
            with pytest.raises(InvalidCommand) as refused:
                services.command({"network": "riverside", **fields}, user)
            assert refused.value.field == field and "surrogate" in refused.value.reason
        built = MemberLeft(network="riverside", actor="script", occurred_at=datetime.now(UTC),
                           member="bob-tax", reason="\udcdb")  # fmt: skip
        with pytest.raises(InvalidCommand) as refused:
            services.ledger.execute(built)
        assert refused.value.field == "reason"
    finally:
        services.close()
    assert api.log_size() == before


def test_the_same_write_twice_is_recorded_once_without_a_command_id(api: Api) -> None:
    """Its identity is its content: the repeat found nothing to answer with (AssertionError)."""
    body = {"occurred_at": "2025-02-01T09:00:00Z", "reason": "dues unpaid"}
    first = api.ok("POST", SUSPEND, body)
    size = api.log_size()
    again = api.post(SUSPEND, body)
    assert again.status_code == 200, again.text
    assert again.json() == {"recorded": False, "event": first}
    assert api.log_size() == size
    # Another time is another command, which the member's state refuses.
    problem(api.post(SUSPEND, {**body, "occurred_at": "2025-02-02T09:00:00Z"}), 409, "member")


def test_amounts_and_counts_the_views_cannot_hold_are_refused(api: Api) -> None:
    """Recorded first, then every read failed: InvalidOperation, OverflowError (500s)."""
    base = "/networks/riverside/referrals"
    api.ok("POST", f"{base}/r-1/accept", {"occurred_at": "2025-02-01T09:00:00Z"}, "other")
    before = api.log_size()
    for value in ("1E+40", "1000000000000", "-1E+40", "NaN", "Infinity"):
        problem(api.post(f"{base}/r-1/convert", {"deal_value": value}, "other"), 422,
                "deal_value")  # fmt: skip
    targets = {"scope": "Leads", "targets": {"referrals_per_month": 2**63}}
    problem(api.post("/networks/riverside/agreements", {"kind": "referral",
                     "parties": ["ann-law", "bob-tax"], "terms": targets}), 422,
            "terms.targets.referrals_per_month")  # fmt: skip
    assert api.log_size() == before
    api.ok("POST", f"{base}/r-1/convert", {"deal_value": "999999999999.99",
           "occurred_at": "2025-02-10T09:00:00Z"}, "other")  # fmt: skip
    assert api.get(f"{base}/r-1").json()["deal_value"] == "999999999999.99"
    for path in ("/referrals", "/scorecards", "/standings", "/members/bob-tax/statements/2025-Q1"):
        assert api.get(f"/networks/riverside{path}").status_code == 200, path


def test_renewals_stay_in_the_calendar(api: Api) -> None:
    """Renewals add up; some 70 of 100 years each ran past year 9999 (OverflowError)."""
    base = "/networks/riverside/agreements"
    terms = {"scope": "Legal and tax clients", "duration_days": 36500}
    api.ok("POST", base, {"agreement": "a-long", "kind": "referral",
           "parties": ["ann-law", "bob-tax"], "terms": terms,
           "occurred_at": "2025-01-10T09:00:00Z"})  # fmt: skip
    for party in ("ann-law", "bob-tax"):
        api.ok("POST", f"{base}/a-long/accept", {"party": party,
               "occurred_at": "2025-01-11T09:00:00Z"})  # fmt: skip
    api.ok("POST", f"{base}/a-long/renew", {"occurred_at": "2025-02-01T09:00:00Z"})
    assert api.get(f"{base}/a-long").json()["ends_at"].startswith("2224-")
    before = api.log_size()
    body = problem(api.post(f"{base}/a-long/renew", {"occurred_at": "2025-03-01T09:00:00Z"}),
                   422, "duration_days")  # fmt: skip
    assert "2299" in body["detail"]
    assert api.log_size() == before


def test_a_method_a_path_does_not_take_says_which_it_takes(api: Api) -> None:
    response = api.call("DELETE", "/networks/riverside/members")
    problem(response, 405)
    assert {"GET", "POST"} <= {m.strip() for m in response.headers["allow"].split(",")}


def test_the_document_says_bodies_refuse_unknown_fields_and_which_are_optional(
    api: Api,
) -> None:
    document = api.client.get("/schema/openapi.json").json()
    schemas = document["components"]["schemas"]
    for name in ("Reason", "InviteMember", "UpdateMember", "Proposal", "Terms", "Contact"):
        assert schemas[name]["additionalProperties"] is False, name
    problem(api.post(SUSPEND, {"colour": "red"}), 422, "colour")
    parties = schemas["Proposal"]["properties"]["parties"]
    assert parties["minItems"] == 2 and parties["items"]["pattern"].startswith("^[A-Za-z0-9]")
    paths = document["paths"]
    suspend = paths["/api/v1/networks/{network}/members/{member}/suspend"]["post"]
    convert = paths["/api/v1/networks/{network}/referrals/{referral}/convert"]["post"]
    assert suspend["requestBody"]["required"] is False
    assert convert["requestBody"]["required"] is True
    assert api.post(SUSPEND).status_code == 201  # no body at all


# ------------------------------------------------------- every route, every role

_SAMPLE = {
    "network": "riverside",
    "member": "ann-law",
    "referral": "r-1",
    "agreement": "a-1",
    "period": "2025-Q1",
}


def _operations(api: Api) -> list[tuple[str, str, dict[str, Any]]]:
    document = api.client.get("/schema/openapi.json").json()
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        if path.startswith("/api/v1/")
        for method, operation in item.items()
    ]


def _fill(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: _SAMPLE[m[1]], path).removeprefix("/api/v1")


def test_another_networks_people_get_404_and_auditors_never_write(api: Api) -> None:
    operations = _operations(api)
    assert len(operations) >= 30
    before = api.log_size()
    for method, path, _ in operations:
        if "{network}" not in path:
            continue
        outsider = api.call(method, _fill(path), "outsider", json={})
        problem(outsider, 404)
        if method != "GET":
            problem(api.call(method, _fill(path), "auditor", json={}), 403)
    assert api.log_size() == before


def test_coordinator_only_writes_refuse_members(api: Api) -> None:
    before = api.log_size()
    for path in (
        "/members",
        "/members/bob-tax/join",
        "/members/bob-tax/suspend",
        "/members/bob-tax/reinstate",
        "/referrals/r-1/reverse",
        "/agreements/a-1/activate",
        "/agreements/a-1/amend",
        "/agreements/a-1/renew",
    ):
        problem(api.post(f"/networks/riverside{path}", {}, "member"), 403)
    assert api.log_size() == before


# ------------------------------------------------------------------- OpenAPI


def test_the_openapi_document_describes_every_operation(api: Api) -> None:
    document = api.client.get("/schema/openapi.json").json()
    schemas = document["components"]["schemas"]
    operations = _operations(api)
    ids = [operation["operationId"] for _, _, operation in operations]
    assert len(ids) == len(set(ids)), "operation ids are unique"
    for method, path, operation in operations:
        assert operation.get("operationId"), (method, path)
        assert operation.get("description", "").strip(), (method, path)
        assert operation.get("tags"), (method, path)
        success = operation["responses"]["201" if method in ("POST", "PATCH") else "200"]
        reference = success["content"]["application/json"]["schema"]["$ref"]
        assert reference.removeprefix("#/components/schemas/") in schemas
        problem_schema = operation["responses"]["422"]["content"]["application/problem+json"]
        assert problem_schema["schema"]["$ref"] == "#/components/schemas/Problem"
        if method in ("POST", "PATCH"):
            body = operation["requestBody"]["content"]["application/json"]["schema"]
            names = re.findall(r"#/components/schemas/(\w+)", str(body))
            assert names and all(name in schemas for name in names), (method, path, body)
    assert {"deal_value", "currency"} <= set(schemas["Conversion"]["properties"])
    assert set(schemas["Problem"]["properties"]) >= {"type", "title", "status", "detail", "errors"}
    paths = document["paths"]
    assert "/api/v1/networks/{network}/members/{member}/statements/{period}" in paths
    assert not any(p.startswith("/n/") or p == "/login" for p in paths), "pages stay out"


def test_an_unexpected_error_is_a_problem_document_too(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(Services, "members", broken)
    body = problem(api.get("/networks/riverside/members"), 500)
    assert "secret internals" not in str(body)


def test_docs_describe_every_operation(api: Api) -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()
    documented = set(re.findall(r"^#### `(GET|POST|PATCH|PUT|DELETE) (/api/v1/\S+)`$", text, re.M))
    operations = {(method, path) for method, path, _ in _operations(api)}
    assert documented == operations
