"""The traffic-lights plugin: BNI chapter scoring, every band edge, worked members."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from partnerledger import Ledger, Store
from partnerledger.activity import last_months, member_activities, member_activity
from partnerledger.commands import Command, convert_command
from partnerledger.errors import InvalidCommand
from partnerledger.pluginmanager import Rules, load_rules
from partnerledger.plugins import traffic_lights
from partnerledger.plugins.traffic_lights import Settings, partnerledger_score
from partnerledger.rules import Activity, Score, Window

WINDOW = Window(start=datetime(2025, 1, 1, tzinfo=UTC), end=datetime(2025, 7, 1, tzinfo=UTC))
SECTIONS = ("absences", "referrals", "tyfcb", "visitors", "testimonials", "on_time", "trainings")


def activity(**fields: Any) -> Activity:
    fields.setdefault("meetings_held", 26)
    return Activity(network="chap", member="ann", window=WINDOW, currency="GBP", **fields)


def score(settings: Settings | None = None, **fields: Any) -> Score:
    return partnerledger_score(activity(**fields), settings or Settings())


def points(section: str, settings: Settings | None = None, **fields: Any) -> Decimal:
    return score(settings, **fields).breakdown[section]


@pytest.fixture
def rules() -> Rules:
    return load_rules(builtins=[traffic_lights], env={"PARTNERLEDGER_PLUGINS": ""})


# ------------------------------------------------------------- band edges


@pytest.mark.parametrize(
    ("absent", "expected"), [(0, 15), (1, 10), (2, 5), (3, 0), (7, 0)]
)  # fmt: skip
def test_absences(absent: int, expected: int) -> None:
    assert points("absences", absent=absent) == expected


def test_substitutes_and_medical_are_not_absences() -> None:
    assert points("absences", substitute=5, medical=4) == 15
    assert points("absences", substitute=3, medical=3, absent=1) == 10


# Rates over 1000 meetings are exact: count / 1000 hits each threshold on the dot.
@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (0, 0), (499, 0), (500, 5), (749, 5), (750, 10), (999, 10),
        (1000, 15), (1199, 15), (1200, 20), (5000, 20),
    ],
)  # fmt: skip
def test_referral_bands(count: int, expected: int) -> None:
    assert points("referrals", meetings_held=1000, referrals_given=count) == expected


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (0, 0), (82, 0), (83, 5), (166, 5), (167, 10), (249, 10),
        (250, 15), (499, 15), (500, 20), (3000, 20),
    ],
)  # fmt: skip
def test_visitor_bands(count: int, expected: int) -> None:
    assert points("visitors", meetings_held=1000, visitors=count) == expected


@pytest.mark.parametrize(
    ("count", "expected"), [(0, 0), (1, 5), (74, 5), (75, 10), (500, 10)]
)  # fmt: skip
def test_testimonial_bands(count: int, expected: int) -> None:
    assert points("testimonials", meetings_held=1000, testimonials_given=count) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0), ("999.99", 0), ("1000", 5), ("1000.00", 5), ("2499.99", 5),
        ("2500", 10), ("4999.99", 10), ("5000", 15), ("100000", 15),
    ],
)  # fmt: skip
def test_tyfcb_bands(value: str, expected: int) -> None:
    assert points("tyfcb", tyfcb_received=Decimal(value)) == expected


def test_tyfcb_thresholds_are_settings() -> None:
    custom = Settings(tyfcb_5=Decimal(100), tyfcb_10=Decimal(200), tyfcb_15=Decimal(300))
    cases = {"99": 0, "100": 5, "199.99": 5, "200": 10, "299": 10, "300": 15}
    for value, expected in cases.items():
        assert points("tyfcb", custom, tyfcb_received=Decimal(value)) == expected


@pytest.mark.parametrize(("late", "expected"), [(0, 5), (1, 0), (9, 0)])
def test_on_time(late: int, expected: int) -> None:
    assert points("on_time", late=late) == expected


@pytest.mark.parametrize(
    ("trainings", "expected"), [(0, 0), (1, 5), (2, 10), (3, 15), (8, 15)]
)  # fmt: skip
def test_trainings(trainings: int, expected: int) -> None:
    assert points("trainings", trainings=trainings) == expected


def test_no_meetings_held_means_rates_of_zero() -> None:
    result = score(meetings_held=0, referrals_given=10, visitors=10, testimonials_given=10)
    assert result.breakdown["referrals"] == 0
    assert result.breakdown["visitors"] == 0
    assert result.breakdown["testimonials"] == 0


@pytest.mark.parametrize(
    ("total", "colour"),
    [
        (100, "green"), (70, "green"), (69, "amber"), (50, "amber"),
        (49, "red"), (30, "red"), (29, "grey"), (0, "grey"),
    ],
)  # fmt: skip
def test_colour_edges(total: int, colour: str) -> None:
    assert traffic_lights.colour(Decimal(total)) == colour


# --------------------------------------------------------- worked members


WORKED = [
    # 26 meetings; 20 referrals = 0.769/wk; 5 visitors = 0.192/wk; 2 testimonials = 0.0769/wk.
    (
        {"referrals_given": 20, "tyfcb_received": Decimal(3000), "visitors": 5,
         "testimonials_given": 2, "trainings": 2},
        {"absences": 15, "referrals": 10, "tyfcb": 10, "visitors": 10, "testimonials": 10,
         "on_time": 5, "trainings": 10},
        70, "green",
    ),
    # The perfect member: 32 referrals (1.23/wk), 13 visitors (0.5/wk), 3 testimonials.
    (
        {"referrals_given": 32, "tyfcb_received": Decimal(8000), "visitors": 13,
         "testimonials_given": 3, "trainings": 3, "present": 26},
        {"absences": 15, "referrals": 20, "tyfcb": 15, "visitors": 20, "testimonials": 10,
         "on_time": 5, "trainings": 15},
        100, "green",
    ),
    # Amber: 1 absence (substitutes do not count), 13 referrals (0.5/wk on the dot),
    # 1,000 TYFCB, 7 visitors (0.269/wk), 1 testimonial (0.038/wk), late twice,
    # 3 trainings: 10+5+5+15+5+0+15 = 55.
    (
        {"absent": 1, "substitute": 2, "referrals_given": 13, "tyfcb_received": Decimal(1000),
         "visitors": 7, "testimonials_given": 1, "late": 2, "trainings": 3},
        {"absences": 10, "referrals": 5, "tyfcb": 5, "visitors": 15, "testimonials": 5,
         "on_time": 0, "trainings": 15},
        55, "amber",
    ),
    # Red: 2 absences, 12 referrals (0.46/wk → 0), 2,500 TYFCB, 2 visitors (0.077/wk → 0),
    # 2 testimonials, never late, 1 training: 5+0+10+0+10+5+5 = 35.
    (
        {"absent": 2, "medical": 3, "referrals_given": 12, "tyfcb_received": Decimal(2500),
         "visitors": 2, "testimonials_given": 2, "trainings": 1},
        {"absences": 5, "referrals": 0, "tyfcb": 10, "visitors": 0, "testimonials": 10,
         "on_time": 5, "trainings": 5},
        35, "red",
    ),
    # Grey: 4 absences, 5 referrals, 999 TYFCB, no visitors or testimonials, late, no training.
    (
        {"absent": 4, "referrals_given": 5, "tyfcb_received": Decimal(999), "late": 1},
        {"absences": 0, "referrals": 0, "tyfcb": 0, "visitors": 0, "testimonials": 0,
         "on_time": 0, "trainings": 0},
        0, "grey",
    ),
    # Grey: 1 absence, 13 referrals (0.5/wk), 500 TYFCB, 3 visitors (0.115/wk), late,
    # 1 training: 10+5+0+5+0+0+5 = 25.
    (
        {"absent": 1, "referrals_given": 13, "tyfcb_received": Decimal(500), "late": 1,
         "visitors": 3, "testimonials_given": 0, "trainings": 1},
        {"absences": 10, "referrals": 5, "tyfcb": 0, "visitors": 5, "testimonials": 0,
         "on_time": 0, "trainings": 5},
        25, "grey",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "breakdown", "total", "colour"), WORKED)
def test_worked_members(
    fields: dict[str, Any], breakdown: dict[str, int], total: int, colour: str
) -> None:
    result = score(**fields)
    assert result == Score(
        total=Decimal(total),
        breakdown={name: Decimal(value) for name, value in breakdown.items()},
        label=colour,
    )
    assert tuple(result.breakdown) == SECTIONS
    assert all(isinstance(value, Decimal) for value in result.breakdown.values())
    assert sum(result.breakdown.values()) == result.total


@pytest.mark.parametrize(("fields", "breakdown", "total", "colour"), WORKED)
def test_worked_members_through_the_manager(
    rules: Rules, fields: dict[str, Any], breakdown: dict[str, int], total: int, colour: str
) -> None:
    decision = rules.score(
        activity(**fields), {"traffic-lights": rules.settings("traffic-lights", {})}
    )
    assert decision is not None
    assert (decision.plugin, decision.version) == ("traffic-lights", "1.0.0")
    assert isinstance(decision.value, Score)
    assert (decision.value.total, decision.value.label) == (Decimal(total), colour)


def test_a_plugin_not_enabled_decides_nothing(rules: Rules) -> None:
    assert rules.score(activity(), {}) is None


def test_custom_settings_through_the_manager(rules: Rules) -> None:
    settings = rules.settings("traffic-lights", {"tyfcb_5": "10", "tyfcb_10": 20, "tyfcb_15": 30})
    assert settings == Settings(tyfcb_5=Decimal(10), tyfcb_10=Decimal(20), tyfcb_15=Decimal(30))
    decision = rules.score(activity(tyfcb_received=Decimal(25)), {"traffic-lights": settings})
    assert decision is not None
    assert isinstance(decision.value, Score)
    assert decision.value.breakdown["tyfcb"] == 10
    # A score is plain data: it survives a JSON round trip unchanged.
    encoded = msgspec.json.encode(decision.value)
    assert msgspec.json.decode(encoded, type=Score) == decision.value


# ------------------------------------------------------------- settings


def test_default_settings(rules: Rules) -> None:
    assert rules.settings("traffic-lights", {}) == Settings()
    assert Settings().window_months == 6
    assert (Settings().tyfcb_5, Settings().tyfcb_10, Settings().tyfcb_15) == (1000, 2500, 5000)


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        ({"tyfcb_10": "1000"}, "settings.tyfcb_10", "must be above tyfcb_5"),
        ({"tyfcb_10": "500"}, "settings.tyfcb_10", "thresholds must rise"),
        ({"tyfcb_15": "2500"}, "settings.tyfcb_15", "must be above tyfcb_10"),
        ({"tyfcb_5": "6000"}, "settings.tyfcb_10", "must rise"),
        ({"tyfcb_5": "-1"}, "settings.tyfcb_5", "zero or more"),
        ({"window_months": 0}, "settings.window_months", "between 1 and 120"),
        ({"window_months": "x"}, "settings.window_months", "Expected `int`"),
        ({"colour": "blue"}, "settings.colour", "unknown field"),
    ],
)
def test_bad_settings_are_refused(
    rules: Rules, raw: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(InvalidCommand) as caught:
        rules.settings("traffic-lights", raw)
    assert caught.value.field == field
    assert reason in caught.value.reason


# ------------------------------------------------------------ end to end


NET = "chap"
FIRST_MEETING = datetime(2025, 1, 2, 7, 0, tzinfo=UTC)  # a Thursday


def line(kind: str, when: datetime, **fields: Any) -> Command:
    return convert_command(
        {"type": kind, "network": NET, "actor": "coordinator", "occurred_at": when, **fields}
    )


def chapter_history() -> list[Command]:
    """Six months of a chapter: 26 weekly meetings, ann is the worked green member."""
    start = datetime(2024, 12, 1, tzinfo=UTC)
    commands = [
        line("network.created", start, name="Chapter", currency="GBP"),
        *(
            line("member.joined", start, member=m, name=m.title(), category=m)
            for m in ("ann", "bob", "cat")
        ),
    ]
    meetings = [FIRST_MEETING + timedelta(weeks=week) for week in range(26)]
    assert meetings[-1] < datetime(2025, 7, 1, tzinfo=UTC)
    for week, when in enumerate(meetings):
        slug = f"w{week:02d}"
        commands.append(
            line("meeting.attended", when, member="ann", meeting=slug, status="present")
        )
        bob = "absent" if week < 3 else ("late" if week == 5 else "present")
        commands.append(line("meeting.attended", when, member="bob", meeting=slug, status=bob))
    # ann: 20 referrals, alternating to bob and cat; one converted.
    for n in range(20):
        commands.append(
            line(
                "referral.sent", meetings[n], referral=f"r{n}", from_member="ann",
                to_member=("bob", "cat")[n % 2], customer=f"c{n}",
            )
        )  # fmt: skip
    # ann is thanked for 3,000 in two reports (one before the window: not counted).
    for when, amount in ((meetings[3], "1000"), (meetings[9], "2000"), (start, "9000")):
        commands.append(
            line(
                "tyfcb.reported", when, member="bob", thanked_member="ann", amount=amount,
                currency="GBP",
            )
        )  # fmt: skip
    for n in range(5):
        commands.append(line("visitor.brought", meetings[n * 2], member="ann", visitor=f"v{n}"))
    for n in range(2):
        commands.append(line("testimonial.given", meetings[n], member="ann", about_member="cat"))
    for n in range(2):
        commands.append(line("training.completed", meetings[n], member="ann", training=f"t{n}"))
    # bob: a substitute week corrected from absent, and one medical week.
    commands.append(
        line(
            "meeting.attended", meetings[2], member="bob", meeting="w02", status="substitute",
            substitute="Zoe", actor="bob",
        )
    )  # fmt: skip
    commands.append(
        line("meeting.attended", meetings[1], member="bob", meeting="w01", status="medical",
             actor="bob")
    )  # fmt: skip
    return commands


def test_end_to_end_from_the_log(ledger: Ledger, store: Store, rules: Rules) -> None:
    ledger.execute(*chapter_history())
    window = last_months(datetime(2025, 7, 1, tzinfo=UTC), Settings().window_months)
    assert window == WINDOW
    ann = member_activity(store, NET, "ann", window)
    assert (ann.meetings_held, ann.present, ann.absent, ann.late) == (26, 26, 0, 0)
    assert (ann.referrals_given, ann.tyfcb_received, ann.visitors) == (20, Decimal(3000), 5)
    assert (ann.testimonials_given, ann.trainings) == (2, 2)

    enabled = {"traffic-lights": rules.settings("traffic-lights", {})}
    decision = rules.score(ann, enabled)
    assert decision is not None
    assert (decision.plugin, decision.version) == ("traffic-lights", "1.0.0")
    assert decision.value == Score(
        total=Decimal(70),
        breakdown={
            "absences": Decimal(15), "referrals": Decimal(10), "tyfcb": Decimal(10),
            "visitors": Decimal(10), "testimonials": Decimal(10), "on_time": Decimal(5),
            "trainings": Decimal(10),
        },
        label="green",
    )  # fmt: skip

    everyone = member_activities(store, NET, window)
    assert everyone["ann"] == ann
    bob = everyone["bob"]
    # Weeks 0-2 absent, then week 1 medical and week 2 substitute: one absence.
    assert (bob.absent, bob.medical, bob.substitute, bob.late, bob.present) == (1, 1, 1, 1, 22)
    assert (bob.referrals_received, bob.tyfcb_received) == (10, 0)
    bob_score = partnerledger_score(bob, Settings())
    # absences 10; no referrals given, TYFCB, visitors, testimonials or trainings; late once.
    assert bob_score.total == 10
    assert bob_score.label == "grey"
    cat = everyone["cat"]
    assert (cat.meetings_held, cat.referrals_received) == (26, 10)
    # cat attended nothing: no absences recorded, never late, so 15 + 5.
    assert partnerledger_score(cat, Settings()) == Score(
        total=Decimal(20),
        breakdown={
            "absences": Decimal(15), "referrals": Decimal(0), "tyfcb": Decimal(0),
            "visitors": Decimal(0), "testimonials": Decimal(0), "on_time": Decimal(5),
            "trainings": Decimal(0),
        },
        label="grey",
    )  # fmt: skip
