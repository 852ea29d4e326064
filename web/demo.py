"""The demo's sign-ins: one account per kind of user, over the demo networks.

``partnerledger serve --demo`` loads the demo history (two networks:
riverside and harbor-bni) into an empty store and makes sure these accounts
exist. Their password is the same for all of them and printed on start: a
demo store is for trying the product, never for real data.
"""

from __future__ import annotations

from dataclasses import dataclass

from .services import Services

DEMO_PASSWORD = "partnerledger-demo"  # noqa: S105  # printed on purpose: demo data only
DEMO_NETWORK = "riverside"
OTHER_NETWORK = "harbor-bni"


@dataclass(frozen=True)
class DemoLogin:
    """One demo account."""

    role: str
    email: str
    network: str | None
    member: str | None = None


def demo_logins(services: Services) -> list[DemoLogin]:
    """Create the demo accounts that do not exist yet; returns them all."""
    active = [m.slug for m in services.members(DEMO_NETWORK) if m.status == "active"]
    member = active[0] if active else None
    logins = [
        DemoLogin("site administrator", "admin@partnerledger.example", None),
        DemoLogin("coordinator", "coordinator@riverside.example", DEMO_NETWORK),
        DemoLogin("member", "member@riverside.example", DEMO_NETWORK, member),
        DemoLogin("auditor", "auditor@riverside.example", DEMO_NETWORK),
        DemoLogin("coordinator", "coordinator@harbor.example", OTHER_NETWORK),
    ]
    accounts = services.accounts
    for login in logins:
        user = accounts.by_email(login.email)
        if user is None:
            name = login.email.split("@")[0].replace(".", " ").title()
            user = accounts.create_user(
                login.email, name, DEMO_PASSWORD, site_admin=login.network is None
            )
        if login.network is not None and user.role_in(login.network) is None:
            role = "member" if login.role == "member" else login.role
            accounts.grant(user.id, login.network, role, login.member)
    return logins


__all__ = ["DEMO_PASSWORD", "DemoLogin", "demo_logins"]
