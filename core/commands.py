"""Commands: the contract of the JSON Lines import, the CLI and the API.

Each command is a msgspec Struct tagged by its ``type`` (``"referral.sent"``).
A command that the domain accepts is recorded, unchanged, inside the event it
produces (see :mod:`partnerledger.events`), so exporting the log gives back
the commands that built it, byte for byte.

Every command says which network it belongs to, who issued it (``actor``)
and when it happened in the business (``occurred_at``, a timezone-aware
time, stored in UTC). ``command_id`` is optional: without it the command's
identity is a digest of its content, which is what makes re-importing a
file a no-op.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from .privacy import Sealed
from .rules import Activity, Decision
from .types import (
    OUT_OF_RANGE,
    AwareDatetime,
    BusinessTime,
    CommandId,
    Currency,
    Days,
    Name,
    Slug,
    Text,
    lone_surrogate,
)

Period = Literal["month", "quarter", "rolling"]
MemberStatus = Literal["invited", "active", "suspended", "left"]
AgreementKind = Literal["referral", "co-marketing", "channel", "joint-venture", "supply-chain"]
Attendance = Literal["present", "late", "absent", "substitute", "medical"]
Renewal = Literal["automatic", "manual", "none"]

#: The party name that stands for the network's program itself in an agreement.
PROGRAM = "program"


class Command(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    tag_field="type",
    forbid_unknown_fields=True,
    omit_defaults=True,
):
    """Fields every command has."""

    network: Slug
    actor: Name
    occurred_at: BusinessTime
    command_id: CommandId | None = None
    #: The fields that hold personal data (sealed in the stored event; see privacy.py).
    personal: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        if self.occurred_at.tzinfo is UTC:  # (as every stored time is: nothing to do)
            return
        # Refusals here read "field: reason" (see errors.from_validation_error).
        # A naive time would silently be read as the machine's local time.
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at: give a time with an offset, e.g. Z or +02:00")
        # Times are stored in UTC whatever offset they arrived with.
        if self.occurred_at.utcoffset() or self.occurred_at.tzinfo is not UTC:
            try:
                moment = self.occurred_at.astimezone(UTC)
            except OverflowError:  # in UTC before year 1 or after 9999: never recorded
                raise ValueError(f"occurred_at: {OUT_OF_RANGE}") from None
            msgspec.structs.force_setattr(self, "occurred_at", moment)

    @property
    def type(self) -> str:
        """The command's type tag, e.g. ``"referral.sent"``."""
        cls = type(self)
        tag = _TAGS.get(cls)
        return tag if tag is not None else command_type(cls)

    def members(self) -> tuple[str, ...]:
        """Every member this command concerns (for filtering the log)."""
        return ()


def command_type(cls: type[Command]) -> str:
    """The type tag of a command class."""
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str)
    _TAGS[cls] = tag
    return tag


#: Each command class's tag, as :func:`command_type` read it (``type`` is read for every event).
_TAGS: dict[type[Command], str] = {}


# --------------------------------------------------------------------- network


class Tier(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """One rung of a network's tier ladder: the minimum score that earns it."""

    name: Name
    threshold: Decimal
    benefits: tuple[Name, ...] = ()


class NetworkCreated(Command, frozen=True, tag="network.created"):
    """A coordinator creates a network (a chamber, a chapter, a partner program)."""

    name: Name
    currency: Currency
    period: Period = "month"
    rolling_days: Days | None = None
    tiers: tuple[Tier, ...] = ()


class NetworkTiersSet(Command, frozen=True, tag="network.tiers_set"):
    """The network's tier ladder is replaced."""

    tiers: tuple[Tier, ...]


# --------------------------------------------------------------------- members


class Contact(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """How to reach a member business."""

    email: Annotated[str, msgspec.Meta(pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    phone: Name | None = None
    person: Name | None = None


class MemberCommand(Command, frozen=True):
    member: Slug

    def members(self) -> tuple[str, ...]:
        return (self.member,)


class MemberInvited(MemberCommand, frozen=True, tag="member.invited"):
    """A business is invited to the network (status ``invited``)."""

    name: Name
    category: Name
    service_area: Name | None = None
    contact: Contact | None = None


class MemberJoined(MemberCommand, frozen=True, tag="member.joined"):
    """A business joins the network, or an invited one accepts (status ``active``).

    ``name`` and ``category`` are required for a new member; for an invited
    one they default to what the invitation said.
    """

    name: Name | None = None
    category: Name | None = None
    service_area: Name | None = None
    contact: Contact | None = None


class MemberUpdated(MemberCommand, frozen=True, tag="member.updated"):
    """A member's profile changes; absent fields keep their value."""

    name: Name | None = None
    category: Name | None = None
    service_area: Name | None = None
    contact: Contact | None = None


class MemberSuspended(MemberCommand, frozen=True, tag="member.suspended"):
    """An active member is suspended."""

    reason: Text | None = None


class MemberReinstated(MemberCommand, frozen=True, tag="member.reinstated"):
    """A suspended member becomes active again."""

    reason: Text | None = None


class MemberLeft(MemberCommand, frozen=True, tag="member.left"):
    """A member leaves the network (final)."""

    reason: Text | None = None


# ---------------------------------------------------------------- introductions


class IntroductionMade(Command, frozen=True, tag="introduction.made"):
    """``introducer`` introduces ``introduced`` to ``to_member`` or to an outside business."""

    introduction: Slug
    introducer: Slug
    introduced: Slug
    to_member: Slug | None = None
    to_business: Name | None = None
    note: Text | None = None

    def members(self) -> tuple[str, ...]:
        extra = (self.to_member,) if self.to_member else ()
        return (self.introducer, self.introduced, *extra)


# -------------------------------------------------------------------- referrals


class ReferralCommand(Command, frozen=True):
    referral: Slug


class ReferralSent(ReferralCommand, frozen=True, tag="referral.sent"):
    """``from_member`` sends a lead (``customer``) to ``to_member``.

    ``customer`` and ``customer_contact`` are personal data: the stored event
    holds them sealed under the key of the data subject ``subject``
    (derived from the customer's name when not given; see privacy.py).
    """

    personal: ClassVar[tuple[str, ...]] = ("customer", "customer_contact")

    from_member: Slug
    to_member: Slug
    customer: Name | Sealed
    note: Text | None = None
    customer_contact: Name | Sealed | None = None  # an email address or a phone number
    subject: Slug | None = None

    def members(self) -> tuple[str, ...]:
        return (self.from_member, self.to_member)


class ReferralAccepted(ReferralCommand, frozen=True, tag="referral.accepted"):
    """The receiving member takes the lead on."""


class ReferralDeclined(ReferralCommand, frozen=True, tag="referral.declined"):
    """The receiving member turns the lead down."""

    reason: Text | None = None


class ReferralLost(ReferralCommand, frozen=True, tag="referral.lost"):
    """An accepted lead did not become business."""

    reason: Text | None = None


class ReferralConverted(ReferralCommand, frozen=True, tag="referral.converted"):
    """An accepted lead became business worth ``deal_value`` (the date is ``occurred_at``)."""

    deal_value: Decimal
    currency: Currency


class ReferralReversed(ReferralCommand, frozen=True, tag="referral.reversed"):
    """Part or all of a conversion's value is reversed (refund, clawback)."""

    amount: Decimal
    reason: Text
    currency: Currency | None = None


# ------------------------------------------------------------------- agreements


class Targets(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """Lead-flow targets of an agreement."""

    referrals_per_month: Annotated[int, msgspec.Meta(ge=0)] | None = None
    conversion_rate: Decimal | None = None  # a fraction: 0.40 is 40 %


class Compensation(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """What a converted referral earns: a fixed fee or a share of the deal value."""

    kind: Literal["referral_fee", "revenue_share"]
    amount: Decimal | None = None  # referral_fee: per converted referral
    currency: Currency | None = None
    rate: Decimal | None = None  # revenue_share: a fraction of the deal value


class Terms(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """One version of an agreement's terms."""

    scope: Text
    responsibilities: dict[Slug, Text] = msgspec.field(default_factory=dict)
    targets: Targets | None = None
    compensation: Compensation | None = None
    payment_terms: Text | None = None
    exclusivity: bool = False
    confidentiality: bool = False
    non_solicitation: bool = False
    duration_days: Days | None = None
    renewal: Renewal = "manual"
    termination_notice_days: Annotated[int, msgspec.Meta(ge=0, le=3650)] = 30


class Pilot(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """A trial period before an agreement becomes active."""

    days: Days = 90
    goals: tuple[Text, ...] = ()


class AgreementCommand(Command, frozen=True):
    agreement: Slug


class AgreementProposed(AgreementCommand, frozen=True, tag="agreement.proposed"):
    """An agreement between two or more parties is proposed, with its first terms."""

    kind: AgreementKind
    parties: tuple[Slug, ...]
    terms: Terms
    pilot: Pilot | None = None

    def members(self) -> tuple[str, ...]:
        return tuple(p for p in self.parties if p != PROGRAM)


class AgreementAccepted(AgreementCommand, frozen=True, tag="agreement.accepted"):
    """One party accepts the proposal; when all have, the pilot (or the agreement) starts."""

    party: Slug

    def members(self) -> tuple[str, ...]:
        return (self.party,) if self.party != PROGRAM else ()


class AgreementActivated(AgreementCommand, frozen=True, tag="agreement.activated"):
    """The pilot ends well and the agreement becomes active."""


class AgreementAmended(AgreementCommand, frozen=True, tag="agreement.amended"):
    """A new terms version, which every party accepts (``accepted_by`` lists them all)."""

    terms: Terms
    accepted_by: tuple[Slug, ...]

    def members(self) -> tuple[str, ...]:
        return tuple(p for p in self.accepted_by if p != PROGRAM)


class AgreementRenewed(AgreementCommand, frozen=True, tag="agreement.renewed"):
    """The agreement runs for another term (``duration_days``, or the terms' own)."""

    duration_days: Days | None = None


class AgreementTerminated(AgreementCommand, frozen=True, tag="agreement.terminated"):
    """The agreement ends early, for a reason."""

    reason: Text


class AgreementExpired(AgreementCommand, frozen=True, tag="agreement.expired"):
    """The agreement reached its end without renewal."""


# ---------------------------------------------------------------------- plugins


class PluginEnabled(Command, frozen=True, tag="plugin.enabled"):
    """The network starts using a plugin's rules, with these settings (defaults fill the rest)."""

    plugin: Slug
    settings: dict[str, Any] = msgspec.field(default_factory=dict)


class PluginConfigured(Command, frozen=True, tag="plugin.configured"):
    """The settings of an enabled plugin change (the whole settings, defaults fill the rest)."""

    plugin: Slug
    settings: dict[str, Any] = msgspec.field(default_factory=dict)


class PluginDisabled(Command, frozen=True, tag="plugin.disabled"):
    """The network stops using a plugin."""

    plugin: Slug


# ------------------------------------------------------------- chapter activity


class MeetingAttended(MemberCommand, frozen=True, tag="meeting.attended"):
    """A member's attendance at a chapter meeting; a later line for the same meeting corrects it."""

    meeting: Slug
    status: Attendance
    substitute: Name | None = None


class OneToOneHeld(MemberCommand, frozen=True, tag="one_to_one.held"):
    """Two members met one to one."""

    with_member: Slug
    note: Text | None = None

    def members(self) -> tuple[str, ...]:
        return (self.member, self.with_member)


class VisitorBrought(MemberCommand, frozen=True, tag="visitor.brought"):
    """A member brought a visitor to a meeting."""

    visitor: Name
    visitor_business: Name | None = None
    meeting: Slug | None = None


class TestimonialGiven(MemberCommand, frozen=True, tag="testimonial.given"):
    """A member gave a testimonial about another member."""

    __test__: ClassVar[bool] = False  # not a pytest test class, despite its name

    about_member: Slug
    text: Text | None = None

    def members(self) -> tuple[str, ...]:
        return (self.member, self.about_member)


class TrainingCompleted(MemberCommand, frozen=True, tag="training.completed"):
    """A member completed a training."""

    training: Name


class TyfcbReported(MemberCommand, frozen=True, tag="tyfcb.reported"):
    """``member`` thanks ``thanked_member`` for closed business worth ``amount``."""

    thanked_member: Slug
    amount: Decimal
    currency: Currency
    referral: Slug | None = None
    note: Text | None = None

    def members(self) -> tuple[str, ...]:
        return (self.member, self.thanked_member)


# ------------------------------------------------------- period close and payouts

PeriodName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^\d{4}-(\d{2}|Q[1-4]|\d{2}-\d{2}\+\d{1,5}d)$",
        description="An evaluation period: 2025-06 (month), 2025-Q2 (quarter) or "
        "2025-01-15+90d (a rolling block: first day and length).",
    ),
]


class RuleInForce(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """A plugin as it was when a decision was made: name, version and settings."""

    plugin: Slug
    version: Name
    settings: dict[str, Any] = msgspec.field(default_factory=dict)


class PeriodCommand(Command, frozen=True):
    """A command about one evaluation period of a network."""

    period: PeriodName


class PeriodClosed(PeriodCommand, frozen=True, tag="period.closed"):
    """A coordinator closes a period: its tiers and statements are decided for good.

    The tier decisions and closed statements follow as ``tier.decided`` and
    ``statement.closed`` events, recorded in the same transaction.
    """

    rules: tuple[RuleInForce, ...] = ()


class TierDecided(PeriodCommand, frozen=True, tag="tier.decided"):
    """The tier a member earned in a closed period, as the network's rules decided it."""

    member: Slug
    inputs: Activity
    inputs_digest: Annotated[str, msgspec.Meta(pattern=r"^sha256:[0-9a-f]{64}$")]
    score: Decision | None = None
    tier: Decision | None = None
    previous: Name | None = None
    periods_below: Annotated[int, msgspec.Meta(ge=0)] = 0
    rules: tuple[RuleInForce, ...] = ()

    def members(self) -> tuple[str, ...]:
        return (self.member,)


class TierOverridden(PeriodCommand, frozen=True, tag="tier.overridden"):
    """A coordinator overrides the tier decided for a member in a closed period."""

    member: Slug
    reason: Text
    tier: Name | None = None  # None: no tier

    def members(self) -> tuple[str, ...]:
        return (self.member,)


class StatementLine(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """One entry of a member's incentive statement."""

    source: CommandId  # the command id of the event that caused it
    source_type: Name
    occurred_at: AwareDatetime  # the business time of the source event
    plugin: Name
    version: Name
    kind: Literal["referral_fee", "revenue_share", "bonus", "clawback", "payout", "adjustment"]
    amount: Decimal
    note: str = ""


class StatementClosed(PeriodCommand, frozen=True, tag="statement.closed"):
    """A member's incentive statement for a closed period, as it stands for good."""

    member: Slug
    currency: Currency
    opening: Decimal
    closing: Decimal
    entries: tuple[StatementLine, ...] = ()

    def members(self) -> tuple[str, ...]:
        return (self.member,)


class PayoutRecorded(MemberCommand, frozen=True, tag="payout.recorded"):
    """Money paid to a member against their incentive balance."""

    payout: Slug
    amount: Decimal
    currency: Currency
    reference: Text | None = None


# -------------------------------------------------------------------- disputes
# (docs/disputes.md: raised → commented → resolved with compensating events, or withdrawn)

DisputeSubjectKind = Literal["referral", "conversion", "attribution", "ledger_entry"]
DisputeOutcome = Literal["upheld", "rejected", "partly_upheld"]
#: The most bytes one evidence file may have: 10 MiB.
MAX_EVIDENCE_BYTES = 10 * 1024 * 1024
Sha256 = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^sha256:[0-9a-f]{64}$", description="sha256: and 64 lowercase hex digits."
    ),
]
MediaType = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$",
        description="A media type without parameters, e.g. application/pdf.",
    ),
]
#: A ledger entry's identity: ``MEMBER/SOURCE``, the member and the command id
#: of the event that caused the entry (a member slug never holds ``/``).
EntryRef = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,99}/[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$",
        description="A ledger entry: MEMBER/SOURCE (the member, then the command id of the "
        "event that caused the entry).",
    ),
]
DisputeSubject = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,99}(/[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127})?$",
        description="A referral id, or a ledger entry as MEMBER/SOURCE.",
    ),
]


class Evidence(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """One piece of evidence: a text, or a file stored by its content hash (never in the event)."""

    text: Text | None = None
    sha256: Sha256 | None = None
    name: Name | None = None
    media_type: MediaType | None = None
    size: Annotated[int, msgspec.Meta(ge=0, le=MAX_EVIDENCE_BYTES)] | None = None

    def __post_init__(self) -> None:
        if (self.text is None) == (self.sha256 is None):
            raise ValueError("text: give either a text or a file (sha256), not both nor neither")
        described = (self.name, self.media_type, self.size)
        if self.sha256 is not None and None in described:
            raise ValueError("sha256: a file needs its name, media_type and size")
        if self.text is not None and described != (None, None, None):
            raise ValueError("name: only a file has a name, media_type and size")


EvidenceList = Annotated[tuple[Evidence, ...], msgspec.Meta(max_length=20)]


class DisputeCommand(Command, frozen=True):
    """A command about one dispute of a network."""

    dispute: Slug


class DisputeRaised(DisputeCommand, frozen=True, tag="dispute.raised"):
    """A member (``raised_by``) or a coordinator (no ``raised_by``) disputes something."""

    subject_kind: DisputeSubjectKind
    subject: DisputeSubject
    statement: Text
    raised_by: Slug | None = None
    evidence: EvidenceList = ()

    def members(self) -> tuple[str, ...]:
        found = [self.raised_by] if self.raised_by else []
        if self.subject_kind == "ledger_entry":
            found.append(self.subject.partition("/")[0])
        return tuple(dict.fromkeys(found))


class DisputeCommented(DisputeCommand, frozen=True, tag="dispute.commented"):
    """A party (``author``) or a coordinator (no ``author``) comments, with evidence."""

    text: Text
    author: Slug | None = None
    evidence: EvidenceList = ()

    def members(self) -> tuple[str, ...]:
        return (self.author,) if self.author else ()


class DisputeResolved(DisputeCommand, frozen=True, tag="dispute.resolved"):
    """A coordinator resolves a dispute, naming the compensating events recorded with it."""

    outcome: DisputeOutcome
    reason: Text
    compensations: Annotated[tuple[CommandId, ...], msgspec.Meta(max_length=100)] = ()


class DisputeWithdrawn(DisputeCommand, frozen=True, tag="dispute.withdrawn"):
    """Whoever raised a dispute withdraws it (``by``: the member, none for a coordinator)."""

    by: Slug | None = None
    reason: Text | None = None

    def members(self) -> tuple[str, ...]:
        return (self.by,) if self.by else ()


class LedgerAdjusted(DisputeCommand, frozen=True, tag="ledger.adjusted"):
    """A compensating entry in a member's ledger (signed), issued by a dispute's resolution."""

    member: Slug
    amount: Decimal
    currency: Currency
    reason: Text
    entry: EntryRef | None = None  # the entry it adjusts (or reverses), if any

    def members(self) -> tuple[str, ...]:
        return (self.member,)


class CreditReassigned(ReferralCommand, frozen=True, tag="credit.reassigned"):
    """A dispute's resolution moves a referral's credit from one member to another."""

    from_member: Slug
    to_member: Slug
    dispute: Slug
    reason: Text

    def members(self) -> tuple[str, ...]:
        return (self.from_member, self.to_member)


# ---------------------------------------------------------------- data subjects
# (docs/privacy.md: a customer's personal data is sealed per data subject)


class SubjectErased(Command, frozen=True, tag="subject.erased"):
    """A data subject's personal data is erased: its key is destroyed once this is recorded."""

    subject: Slug
    reason: Text


AnyCommand = (
    NetworkCreated
    | NetworkTiersSet
    | PluginEnabled
    | PluginConfigured
    | PluginDisabled
    | MemberInvited
    | MemberJoined
    | MemberUpdated
    | MemberSuspended
    | MemberReinstated
    | MemberLeft
    | IntroductionMade
    | ReferralSent
    | ReferralAccepted
    | ReferralDeclined
    | ReferralLost
    | ReferralConverted
    | ReferralReversed
    | AgreementProposed
    | AgreementAccepted
    | AgreementActivated
    | AgreementAmended
    | AgreementRenewed
    | AgreementTerminated
    | AgreementExpired
    | MeetingAttended
    | OneToOneHeld
    | VisitorBrought
    | TestimonialGiven
    | TrainingCompleted
    | TyfcbReported
    | PeriodClosed
    | TierDecided
    | TierOverridden
    | StatementClosed
    | PayoutRecorded
    | DisputeRaised
    | DisputeCommented
    | DisputeResolved
    | DisputeWithdrawn
    | LedgerAdjusted
    | CreditReassigned
    | SubjectErased
)

COMMAND_TYPES: dict[str, type[Command]] = {command_type(cls): cls for cls in AnyCommand.__args__}

_decoder = msgspec.json.Decoder(AnyCommand)
_encoder = msgspec.json.Encoder(decimal_format="string")


def decode_command(line: bytes | str) -> Command:
    """Parse one JSON Lines record into a command (raises msgspec errors)."""
    if isinstance(line, str) and (reason := lone_surrogate(line)):
        # msgspec would raise UnicodeEncodeError encoding it; bytes never hold one.
        raise msgspec.DecodeError(f"the line {reason}")
    command: Command = _decoder.decode(line)
    return command


def unencodable(value: Any, path: str = "") -> tuple[str, str] | None:
    """The first text in ``value`` that cannot be stored, as (field, reason), or ``None``.

    Walks a command (or its plain data): strings, dict keys, lists and the
    fields of Structs. JSON never decodes to such text; plain data from a
    command line or from Python may hold it.
    """
    if isinstance(value, str):
        reason = lone_surrogate(value)
        return (path or "-", reason) if reason else None
    if isinstance(value, msgspec.Struct):
        value = {name: getattr(value, name) for name in value.__struct_fields__}
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and (reason := lone_surrogate(key)):
                return (path or "-", f"has a key that {reason}")
            found = unencodable(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = unencodable(item, f"{path}[{index}]")
            if found:
                return found
    return None


def convert_command(data: dict[str, Any]) -> Command:
    """Build a command from plain data (CLI options, API bodies); raises msgspec errors.

    Text that cannot be stored (a lone surrogate, e.g. from a command line
    that is not UTF-8) is refused here, naming its field, like any other
    invalid value.
    """
    when = data.get("occurred_at")
    if isinstance(when, str | int | float):
        # Lax conversion would read "0" or 1700000000 as a Unix timestamp;
        # a time is RFC 3339 text here as in an import line.
        try:
            msgspec.convert(when, datetime)
        except msgspec.ValidationError as error:
            raise msgspec.ValidationError(f"{error} - at `$.occurred_at`") from None
    command: Command = msgspec.convert(data, AnyCommand, strict=False)
    found = unencodable(command)
    if found is not None:
        field, reason = found
        raise msgspec.ValidationError(f"{reason} - at `$.{field}`")
    return command


def encode_command(command: Command) -> bytes:
    """The command as one line of JSON (no newline), as ``export`` writes it."""
    return _encoder.encode(command)


#: What stands for a personal field's value in a command's identity.
PERSONAL_PLACEHOLDER = "[personal]"


def identity_form(command: Command) -> Command:
    """The command as its identity covers it: personal fields replaced by a placeholder.

    The identity covers the data subject (``subject``), never the personal
    data itself, in the clear or sealed: the same command has the same
    identity before and after sealing, and no digest of a name is stored.
    """
    if not command.personal:
        return command
    changes = {
        name: PERSONAL_PLACEHOLDER
        for name in command.personal
        if getattr(command, name) is not None
    }
    return msgspec.structs.replace(command, **changes) if changes else command


#: Encodes as ``msgspec.json.encode(..., order="sorted")`` does, without making an encoder a call.
_sorted_encoder = msgspec.json.Encoder(order="sorted")


def derived_command_id(command: Command) -> str:
    """The command's identity: its explicit ``command_id``, or a digest of its content."""
    if command.command_id is not None:
        return command.command_id
    canonical = _sorted_encoder.encode(identity_form(command))
    return "sha256:" + hashlib.sha256(canonical).hexdigest()[:32]


def content_digest(command: Command) -> str | None:
    """For a command with an explicit ``command_id``: the digest of the rest of it.

    Two commands with the same ``command_id`` but different content are not
    the same command. ``None`` when the identity already is the content digest.
    """
    if command.command_id is None:
        return None
    return derived_command_id(msgspec.structs.replace(command, command_id=None))


def command_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of one import line, generated from the command types."""
    schema = msgspec.json.schema(AnyCommand)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "partnerledger command (one line of a JSON Lines import)"
    return schema
