"""The domain model: aggregates and the rules that decide each command.

Importing this package registers every rule in :data:`ROUTES`.
"""

from .agreement import Agreement, agreement_id
from .base import ROUTES, Aggregate, Lookup, Route
from .chapter import Activity, Meeting, activity_id, meeting_id
from .introduction import Introduction, introduction_id
from .member import Member, member_id
from .network import Network, network_id
from .referral import Referral, referral_id

AGGREGATES: tuple[type[Aggregate], ...] = (
    Network,
    Member,
    Introduction,
    Referral,
    Agreement,
    Meeting,
    Activity,
)

__all__ = [
    "AGGREGATES",
    "ROUTES",
    "Activity",
    "Aggregate",
    "Agreement",
    "Introduction",
    "Lookup",
    "Meeting",
    "Member",
    "Network",
    "Referral",
    "Route",
    "activity_id",
    "agreement_id",
    "introduction_id",
    "meeting_id",
    "member_id",
    "network_id",
    "referral_id",
]
