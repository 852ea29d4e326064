"""Agreements pages: propose, accept, activate, amend with a terms diff, renew, terminate."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from partnerledger.commands import convert_command
from webkit import START, World, browser, build_world, events, record

LIST = "/n/riverside/agreements"


@pytest.fixture
def world(database_url: str) -> World:
    return build_world(database_url)


def command(type_: str, network: str, **fields: Any) -> Any:
    fields.setdefault("occurred_at", START)
    return convert_command({"type": type_, "network": network, "actor": "setup", **fields})


def proposal(**extra: Any) -> dict[str, Any]:
    """A complete proposal form, as the page submits it."""
    return {
        "agreement": "a-1",
        "kind": "referral",
        "parties": ["ann-law", "bob-tax"],
        "terms.scope": "Estate clients who need tax advice",
        "terms.responsibilities": "ann-law: refers estates\nbob-tax: answers within 2 days",
        "terms.targets.referrals_per_month": "4",
        "terms.targets.conversion_rate": "0.40",
        "terms.compensation.kind": "referral_fee",
        "terms.compensation.amount": "250",
        "terms.compensation.currency": "USD",
        "terms.payment_terms": "net 30",
        "terms.confidentiality": "on",
        "terms.duration_days": "365",
        "terms.renewal": "manual",
        "terms.termination_notice_days": "30",
        "pilot.days": "90",
        "pilot.goals": "3 referrals\n1 conversion",
        **extra,
    }


def agreed(world: World, pilot_days: int | None = 90, **terms: Any) -> None:
    """a-1 between ann-law and bob-tax, accepted by both (a pilot, or active without one)."""
    record(
        world,
        command("agreement.proposed", "riverside", agreement="a-1", kind="referral",
                parties=["ann-law", "bob-tax"],
                terms={"scope": "Estate clients", "compensation": {"kind": "referral_fee",
                       "amount": "250"}, **terms},
                **({"pilot": {"days": pilot_days}} if pilot_days else {})),
        command("agreement.accepted", "riverside", agreement="a-1", party="ann-law"),
        command("agreement.accepted", "riverside", agreement="a-1", party="bob-tax"),
    )  # fmt: skip


def error_of(html: str, field: str) -> str:
    match = re.search(rf'<p class="error" id="e-{re.escape(field)}" role="alert">(.*?)</p>', html)
    assert match, f"no error next to {field}"
    return match.group(1)


def test_a_coordinator_proposes_an_agreement_with_all_its_terms(
    world: World, tmp_path: Path
) -> None:
    with browser(world, tmp_path, world.coordinator) as web:
        html = web.get(LIST).text
        assert "Propose an agreement" in html and "No agreements yet." in html
        assert '<fieldset class="field checks" id="f-parties"' in html
        response = web.post(LIST, proposal(), follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == f"{LIST}/a-1"
        (event,) = events(world, "agreement.proposed")
        proposed = event.command
        assert (proposed.agreement, proposed.kind, proposed.parties) == (
            "a-1", "referral", ("ann-law", "bob-tax"),
        )  # fmt: skip
        terms = proposed.terms
        assert terms.scope == "Estate clients who need tax advice"
        assert terms.responsibilities == {
            "ann-law": "refers estates", "bob-tax": "answers within 2 days",
        }  # fmt: skip
        assert terms.targets is not None and terms.targets.referrals_per_month == 4
        assert terms.targets.conversion_rate == Decimal("0.40")
        assert terms.compensation is not None
        assert (terms.compensation.kind, terms.compensation.amount) == ("referral_fee", 250)
        assert (terms.confidentiality, terms.exclusivity, terms.duration_days) == (True, False, 365)
        assert proposed.pilot is not None and proposed.pilot.days == 90
        assert proposed.pilot.goals == ("3 referrals", "1 conversion")
        html = web.get(f"{LIST}/a-1").text
        assert '<span class="badge grey">proposed</span>' in html
        assert "Ann Law (ann-law): not accepted yet" in html
        assert "250.00 USD" in html and "0.40 (40 %)" in html
        assert 'href="/n/riverside/trail?entity=agreement:a-1"' in html
        listed = web.get(LIST).text
        assert f'<a href="{LIST}/a-1">a-1</a>' in listed


def test_proposal_errors_show_next_to_the_field_and_write_nothing(
    world: World, tmp_path: Path
) -> None:
    with browser(world, tmp_path, world.coordinator) as web:
        cases = [
            (proposal(**{"terms.scope": ""}), "terms.scope"),
            (proposal(parties="ann-law"), "parties"),
            (proposal(**{"terms.compensation.kind": "revenue_share",
                         "terms.compensation.amount": "", "terms.compensation.rate": "1.5"}),
             "terms.compensation.rate"),
            (proposal(**{"terms.compensation.currency": "EUR"}), "terms.compensation.currency"),
            (proposal(**{"terms.targets.conversion_rate": "40"}), "terms.targets.conversion_rate"),
            (proposal(**{"terms.duration_days": "soon"}), "terms.duration_days"),
            (proposal(**{"terms.responsibilities": "ann-law refers"}), "terms.responsibilities"),
            (proposal(**{"terms.responsibilities": "cy: flowers"}), "terms.responsibilities"),
            (proposal(**{"pilot.days": "0"}), "pilot.days"),
        ]  # fmt: skip
        for form, field in cases:
            response = web.post(LIST, form)
            assert response.status_code == 422, field
            assert error_of(response.text, field), field
            assert "Nothing was saved. Please correct:" in response.text
        # What was typed stays in the form.
        response = web.post(LIST, proposal(**{"terms.scope": "", "terms.payment_terms": "net 45"}))
        assert 'value="net 45"' in response.text
        assert '<input type="checkbox" name="parties" value="bob-tax" checked>' in response.text
    assert events(world, "agreement.proposed") == []


def test_a_member_proposes_only_with_their_business_among_the_parties(
    world: World, tmp_path: Path
) -> None:
    record(
        world,
        command("member.joined", "riverside", member="cy-flor", name="Cy Florist",
                category="florist"),
    )  # fmt: skip
    with browser(world, tmp_path, world.member) as web:
        html = web.get(LIST).text
        assert '<input type="checkbox" name="parties" value="ann-law" checked>' in html
        response = web.post(LIST, proposal(parties=["bob-tax", "cy-flor"]))
        assert response.status_code == 422
        assert "include your business among the parties" in error_of(response.text, "parties")
        assert events(world, "agreement.proposed") == []
        response = web.post(LIST, proposal(), follow_redirects=False)
        assert response.status_code == 303
        assert events(world, "agreement.proposed")[0].actor == world.member


def test_parties_accept_and_the_pilot_starts(world: World, tmp_path: Path) -> None:
    with browser(world, tmp_path, world.coordinator) as web:
        web.post(LIST, proposal(**{"pilot.days": "10"}))
    with browser(world, tmp_path, world.member) as web:
        html = web.get(f"{LIST}/a-1").text
        assert '<input type="hidden" name="party" value="ann-law">' in html
        # Accepting for the other party is refused, and writes nothing.
        assert web.post(f"{LIST}/a-1/accept", {"party": "bob-tax"}).status_code == 403
        response = web.post(f"{LIST}/a-1/accept", {"party": "ann-law"}, follow_redirects=False)
        assert response.status_code == 303
        html = web.get(f"{LIST}/a-1").text
        assert "Ann Law (ann-law): accepted" in html
        assert 'action="/n/riverside/agreements/a-1/accept"' not in html
        # Activating, renewing and terminating are the coordinator's.
        for action in ("activate", "renew", "terminate"):
            assert web.post(f"{LIST}/a-1/{action}", {"reason": "x"}).status_code == 403
    with browser(world, tmp_path, world.other_member) as web:
        web.post(f"{LIST}/a-1/accept", {"party": "bob-tax"})
        html = web.get(LIST).text
        soon = html.split('id="soon-heading"')[1].split("</section>")[0]
        assert f'<a href="{LIST}/a-1">a-1</a>' in soon
        assert "in 9 days" in soon or "in 10 days" in soon
        assert '<span class="badge amber">pilot</span>' in html
    accepted = [(e.command.party, e.actor) for e in events(world, "agreement.accepted")]
    assert accepted == [("ann-law", world.member), ("bob-tax", world.other_member)]


def test_a_pilot_ending_later_is_not_listed_as_ending_soon(world: World, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    record(
        world,
        command("agreement.proposed", "riverside", agreement="a-long", kind="channel",
                parties=["ann-law", "bob-tax"], terms={"scope": "long"}, pilot={"days": 60},
                occurred_at=now - timedelta(days=1)),
        command("agreement.accepted", "riverside", agreement="a-long", party="ann-law",
                occurred_at=now - timedelta(days=1)),
        command("agreement.accepted", "riverside", agreement="a-long", party="bob-tax",
                occurred_at=now - timedelta(days=1)),
        command("agreement.proposed", "riverside", agreement="a-late", kind="channel",
                parties=["ann-law", "bob-tax"], terms={"scope": "late"}, pilot={"days": 30},
                occurred_at=now - timedelta(days=40)),
        command("agreement.accepted", "riverside", agreement="a-late", party="ann-law",
                occurred_at=now - timedelta(days=40)),
        command("agreement.accepted", "riverside", agreement="a-late", party="bob-tax",
                occurred_at=now - timedelta(days=40)),
    )  # fmt: skip
    with browser(world, tmp_path, world.auditor) as web:
        html = web.get(LIST).text
        soon = html.split('id="soon-heading"')[1].split("</section>")[0]
        assert "a-long" not in soon
        assert "a-late" in soon and "ended</span> 10 days ago, not yet activated" in soon
        assert "Propose an agreement" not in html


def test_amend_shows_the_versions_side_by_side(world: World, tmp_path: Path) -> None:
    agreed(world)
    with browser(world, tmp_path, world.member) as web:
        html = web.get(f"{LIST}/a-1").text
        assert "Amend: new terms (version 2)" in html
        # The amend form starts from the terms in force.
        assert '<textarea id="f-terms.scope" name="terms.scope" rows="3"' in html
        assert "Estate clients</textarea>" in html
        amount = 'id="f-terms.compensation.amount" name="terms.compensation.amount"'
        assert f'{amount} type="text" value="250"' in html
        form = {
            "terms.scope": "Estate and probate clients",
            "terms.compensation.kind": "referral_fee",
            "terms.compensation.amount": "300",
            "terms.exclusivity": "on",
            "terms.renewal": "manual",
            "terms.termination_notice_days": "30",
            "accepted_by": ["ann-law", "bob-tax"],
        }
        response = web.post(f"{LIST}/a-1/amend", form, follow_redirects=False)
        assert response.status_code == 303
        (amended,) = events(world, "agreement.amended")
        assert amended.command.terms.compensation.amount == Decimal(300)
        assert amended.command.accepted_by == ("ann-law", "bob-tax")
        html = web.get(f"{LIST}/a-1").text
    assert "Version 1 and version 2 side by side" in html
    assert "3 of 15 fields changed: Scope, Fee per converted referral, Exclusivity." in html
    diff = html.split('<div class="diff">')[1].split("</section>")[0]
    tables = diff.split("<table>")[1:]
    assert len(tables) == 2
    left, right = tables
    assert "<caption>Version 1 " in left and "<caption>Version 2 " in right
    for table, scope, fee, exclusive in (
        (left, "Estate clients", "250.00 USD", "no"),
        (right, "Estate and probate clients", "300.00 USD", "yes"),
    ):
        changed = re.findall(
            r'<tr class="changed">\s*<th scope="row">(.*?) <span class="mark">changed</span></th>'
            r"\s*<td>(.*?)</td>", table,
        )  # fmt: skip
        assert changed == [
            ("Scope", scope), ("Fee per converted referral", fee), ("Exclusivity", exclusive),
        ]  # fmt: skip
        # Unchanged fields are shown, without the mark.
        assert re.search(r'<tr>\s*<th scope="row">Renewal</th>\s*<td>manual</td>', table)
        assert table.count('class="changed"') == 3
    # Any two versions: the same version twice differs nowhere.
    with browser(world, tmp_path, world.auditor) as web:
        html = web.get(f"{LIST}/a-1?left=2&right=2").text
        assert "0 of 15 fields changed." in html and 'class="changed"' not in html
        assert "Act on this agreement" not in html
        assert web.post(f"{LIST}/a-1/amend", form).status_code == 403


def test_amend_errors_show_next_to_the_field_and_write_nothing(
    world: World, tmp_path: Path
) -> None:
    agreed(world)
    base = {
        "terms.scope": "Estate clients", "terms.compensation.kind": "referral_fee",
        "terms.compensation.amount": "250", "terms.renewal": "manual",
        "terms.termination_notice_days": "30", "accepted_by": ["ann-law", "bob-tax"],
    }  # fmt: skip
    with browser(world, tmp_path, world.coordinator) as web:
        response = web.post(f"{LIST}/a-1/amend", {**base, "accepted_by": "ann-law"})
        assert response.status_code == 422
        assert "not accepted by bob-tax" in error_of(response.text, "accepted_by")
        # The amend form keeps what was typed; the unchecked party stays unchecked.
        assert '<input type="checkbox" name="accepted_by" value="bob-tax">' in response.text
        response = web.post(f"{LIST}/a-1/amend", base)
        assert response.status_code == 422
        assert "the same as the terms in force" in response.text
        response = web.post(f"{LIST}/a-1/amend", {**base, "terms.compensation.amount": "-1"})
        assert response.status_code == 422
        assert "greater than zero" in error_of(response.text, "terms.compensation.amount")
    assert events(world, "agreement.amended") == []


def test_a_coordinator_activates_renews_and_terminates(world: World, tmp_path: Path) -> None:
    agreed(world)
    with browser(world, tmp_path, world.coordinator) as web:
        html = web.get(f"{LIST}/a-1").text
        assert f'action="{LIST}/a-1/activate"' in html
        assert f'action="{LIST}/a-1/renew"' not in html
        assert web.post(f"{LIST}/a-1/activate", follow_redirects=False).status_code == 303
        html = web.get(f"{LIST}/a-1").text
        assert '<span class="badge green">active</span>' in html
        # Renewing needs a duration when the terms set none.
        response = web.post(f"{LIST}/a-1/renew", {"duration_days": ""})
        assert response.status_code == 422
        assert "the terms set no duration" in error_of(response.text, "duration_days")
        assert web.post(f"{LIST}/a-1/renew", {"duration_days": "180"}).status_code == 200
        (renewed,) = events(world, "agreement.renewed")
        assert renewed.command.duration_days == 180
        response = web.post(f"{LIST}/a-1/terminate", {"reason": ""})
        assert response.status_code == 422
        assert error_of(response.text, "reason")
        assert events(world, "agreement.terminated") == []
        web.post(f"{LIST}/a-1/terminate", {"reason": "no leads in six months"})
        html = web.get(f"{LIST}/a-1").text
        assert '<span class="badge red">terminated</span>' in html
        assert "no leads in six months" in html
        assert "Act on this agreement" not in html
        assert web.post(f"{LIST}/a-1/frobnicate").status_code == 404
        assert web.get(f"{LIST}/a-404").status_code == 404


def test_members_see_only_their_agreements_and_outsiders_nothing(
    world: World, tmp_path: Path
) -> None:
    record(
        world,
        command("member.joined", "riverside", member="cy-flor", name="Cy Florist",
                category="florist"),
        command("agreement.proposed", "riverside", agreement="a-private", kind="co-marketing",
                parties=["bob-tax", "cy-flor"], terms={"scope": "Flowers for tax season"}),
    )  # fmt: skip
    agreed(world)
    with browser(world, tmp_path, world.member) as web:
        html = web.get(LIST).text
        assert "a-1" in html and "a-private" not in html
        assert web.get(f"{LIST}/a-private").status_code == 403
        assert web.post(f"{LIST}/a-private/accept", {"party": "ann-law"}).status_code == 403
    with browser(world, tmp_path, world.other_member) as web:
        assert "a-private" in web.get(LIST).text
        assert web.get(f"{LIST}/a-private").status_code == 200
    with browser(world, tmp_path, world.auditor) as web:
        html = web.get(LIST).text
        assert "a-1" in html and "a-private" in html
        assert web.post(LIST, proposal(agreement="a-2")).status_code == 403
        for action in ("accept", "amend", "activate", "renew", "terminate"):
            assert web.post(f"{LIST}/a-1/{action}", {"party": "ann-law"}).status_code == 403
    with browser(world, tmp_path, world.outsider) as web:
        assert web.get(LIST).status_code == 404
        assert web.get(f"{LIST}/a-1").status_code == 404
        assert web.post(LIST, proposal(agreement="a-3")).status_code == 404
        assert web.post(f"{LIST}/a-1/terminate", {"reason": "x"}).status_code == 404
    assert [e.command.agreement for e in events(world, "agreement.proposed")] == [
        "a-private", "a-1",
    ]  # fmt: skip
    assert len(events(world, "agreement.terminated")) == 0


def test_the_list_comes_from_the_views_in_proposal_order_without_reading_the_log(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for slug in ("z-late", "a-1", "m-mid"):  # proposed in this order, not by slug
        record(
            world,
            command("agreement.proposed", "riverside", agreement=slug, kind="referral",
                    parties=["ann-law", "bob-tax"], terms={"scope": f"scope of {slug}"}),
        )  # fmt: skip
    record(
        world,
        command("agreement.proposed", "harbor", agreement="h-1", kind="referral",
                parties=["secret-co", "quay-ltd"], terms={"scope": "another network"}),
    )  # fmt: skip
    from partnerledger.store import Store

    reads: list[Any] = []
    real = Store.read

    def counted(self: Store, *args: Any, **kwargs: Any) -> Any:
        reads.append(kwargs.get("topics"))
        return real(self, *args, **kwargs)

    with browser(world, tmp_path, world.coordinator) as web:
        web.get(LIST)  # the views caught up (that reads the log's new events)
        monkeypatch.setattr(Store, "read", counted)
        html = web.get(LIST).text
    assert reads == []  # the page read no notification of the log
    listed = re.findall(rf'<a href="{LIST}/([^"]+)">', html)
    assert listed == ["m-mid", "a-1", "z-late"]  # the latest proposal first
