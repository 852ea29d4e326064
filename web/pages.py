"""Rendering pages and reading forms: what every area of the web app shares.

:func:`page` renders a template with what the layout needs (the user, the
network and the navigation the user's role allows). :func:`read_form`
returns a form's fields without the CSRF token. A refused command becomes
:class:`FormErrors`: the field named by the domain error and its reason,
shown next to that field when the form is rendered again (status 422),
with nothing written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.enums import MediaType
from litestar.response import Template

from partnerledger import DomainError
from partnerledger.accounts import User

from .security import current_user


@dataclass(frozen=True)
class NavItem:
    """A link of the network navigation, shown to the roles named."""

    label: str
    path: str  # relative to /n/{network}
    roles: tuple[str, ...] = ("coordinator", "member", "auditor")
    order: int = 50


#: The navigation of a network's pages, collected from the areas of the app.
NAV: list[NavItem] = []


def nav_for(user: User, network: str | None) -> list[dict[str, str]]:
    """The links a user's role in a network shows."""
    if network is None:
        return []
    role = user.role_in(network)
    return [
        {"label": item.label, "href": f"/n/{network}{item.path}"}
        for item in sorted(NAV, key=lambda i: (i.order, i.label))
        if role in item.roles
    ]


def page(
    request: Request[Any, Any, Any],
    template: str,
    *,
    network: str | None = None,
    status_code: int = 200,
    **context: Any,
) -> Template:
    """A page in the layout; a partial (the template alone) for an htmx request.

    Templates extend ``layout.html``, or ``bare.html`` when ``partial`` is set
    (an htmx request that swaps part of a page).
    """
    user = current_user(request)
    headers = request.headers
    full = {
        "partial": headers.get("hx-request") == "true" and headers.get("hx-boosted") != "true",
        "user": user,
        "network": network,
        "role": user.role_in(network) if network else None,
        "nav": nav_for(user, network),
        "path": request.url.path,
        **context,
    }
    return Template(
        template_name=template, context=full, status_code=status_code, media_type=MediaType.HTML
    )


async def read_form(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The submitted form's fields (lists for repeated names), without the CSRF token."""
    data = await request.form()
    fields: dict[str, Any] = {}
    for key in data:
        if key == "_csrf_token":
            continue
        values = data.getall(key)
        fields[key] = values if len(values) > 1 else values[0]
    return fields


@dataclass
class FormErrors:
    """Errors of a submitted form, by field, and a message for the whole form."""

    fields: dict[str, str]
    message: str = ""

    @classmethod
    def of(cls, error: DomainError) -> FormErrors:
        """The errors a refused command gives (its field and its reason)."""
        return cls({error.field: error.reason}, f"{error.field}: {error.reason}")


__all__ = ["NAV", "FormErrors", "NavItem", "nav_for", "page", "read_form"]
