"""The domain model: aggregates and the rules that decide each command.

Importing this package registers every rule in :data:`ROUTES`.
"""

from .agreement import Agreement, agreement_id
from .base import ROUTES, Aggregate, Lookup, Route
from .chapter import Activity, Meeting, activity_id, meeting_id
from .closing import Closing, Payout, closing_id, payout_id
from .dispute import Dispute, dispute_id
from .introduction import Introduction, introduction_id
from .member import Member, member_id
from .network import Network, network_id
from .referral import Referral, referral_id
from .subject import Subject, subject_id

AGGREGATES: tuple[type[Aggregate], ...] = (
    Network,
    Member,
    Introduction,
    Referral,
    Agreement,
    Meeting,
    Activity,
    Closing,
    Payout,
    Dispute,
    Subject,
)

__all__ = [
    "AGGREGATES",
    "ROUTES",
    "Activity",
    "Aggregate",
    "Agreement",
    "Closing",
    "Dispute",
    "Introduction",
    "Lookup",
    "Meeting",
    "Member",
    "Network",
    "Payout",
    "Referral",
    "Route",
    "Subject",
    "activity_id",
    "agreement_id",
    "closing_id",
    "dispute_id",
    "introduction_id",
    "meeting_id",
    "member_id",
    "network_id",
    "payout_id",
    "referral_id",
    "subject_id",
]
