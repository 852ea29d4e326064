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

import typing
from functools import cache
from typing import Any

import msgspec
from litestar import Request, Router
from litestar.openapi.plugins import JsonRenderPlugin

from . import api_agreements, api_members, api_referrals, api_reports
from .api_common import EXCEPTION_HANDLERS

PATH = "/api/v1"

HANDLERS = [
    *api_members.HANDLERS,
    *api_referrals.HANDLERS,
    *api_agreements.HANDLERS,
    *api_reports.HANDLERS,
]

router = Router(path=PATH, route_handlers=HANDLERS, exception_handlers=EXCEPTION_HANDLERS)

ROUTES = [router]


# ---------------------------------------------------------- the document


def _structs(info: msgspec.inspect.Type, found: dict[str, msgspec.inspect.StructType]) -> None:
    """Every Struct a (msgspec) type holds, by class name."""
    if isinstance(info, msgspec.inspect.StructType):
        if info.cls.__name__ in found:
            return
        found[info.cls.__name__] = info
        for field in info.fields:
            _structs(field.type, found)
        return
    for name in ("type", "item_type", "key_type", "value_type"):
        inner = getattr(info, name, None)
        if isinstance(inner, msgspec.inspect.Type):
            _structs(inner, found)
    for inner in getattr(info, "types", ()) or getattr(info, "item_types", ()):
        _structs(inner, found)


@cache
def _bodies() -> dict[str, msgspec.inspect.StructType]:
    """The request bodies' Structs, nested ones too, by name."""
    found: dict[str, msgspec.inspect.StructType] = {}
    for handler in HANDLERS:
        data = typing.get_type_hints(handler.fn, include_extras=True).get("data")
        if data is not None:
            _structs(msgspec.inspect.type_info(data), found)
    return found


def strict_bodies() -> frozenset[str]:
    """The request bodies' Structs (nested ones too) that refuse unknown fields, by name."""
    return frozenset(name for name, info in _bodies().items() if info.forbid_unknown_fields)


def _item_rules(info: msgspec.inspect.Type) -> dict[str, Any]:
    """The constraints of a list field's text items (``list[Slug]``), as JSON Schema."""
    if isinstance(info, msgspec.inspect.UnionType):  # X | None
        arms = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        info = arms[0] if len(arms) == 1 else info
    item = getattr(info, "item_type", None)
    if isinstance(item, msgspec.inspect.Metadata):
        item = item.type
    if not isinstance(item, msgspec.inspect.StrType):
        return {}
    rules = {"pattern": item.pattern, "minLength": item.min_length, "maxLength": item.max_length}
    return {key: value for key, value in rules.items() if value is not None}


def refine(document: dict[str, Any]) -> dict[str, Any]:
    """Say in the OpenAPI document what litestar leaves out of it (in place).

    * A body refuses unknown fields (422 naming the field), so its schema
      says ``additionalProperties: false``.
    * The ids in a list (``parties``, ``accepted_by``) are slugs: their
      items carry the pattern.
    * An optional body (``Reason | None``) may be left out, so its
      ``requestBody`` is not ``required``.
    """
    schemas = document.get("components", {}).get("schemas", {})
    for name, info in _bodies().items():
        schema = schemas.get(name)
        if schema is None:
            continue
        if info.forbid_unknown_fields:
            schema["additionalProperties"] = False
        for field in info.fields:
            items = schema.get("properties", {}).get(field.encode_name, {}).get("items")
            if isinstance(items, dict) and items.get("type") == "string":
                items.update(_item_rules(field.type))
    for path, operations in document.get("paths", {}).items():
        if not path.startswith(PATH):
            continue
        for operation in operations.values():
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            if not body:
                continue
            shapes = [
                content.get("schema", {}).get("oneOf", []) for content in body["content"].values()
            ]
            if all({"type": "null"} in shape for shape in shapes):
                body["required"] = False
    return document


class ApiDocument(JsonRenderPlugin):
    """The OpenAPI document as JSON, as :func:`refine` completes it."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, refine(openapi_schema))


__all__ = ["HANDLERS", "PATH", "ROUTES", "ApiDocument", "refine", "router", "strict_bodies"]
