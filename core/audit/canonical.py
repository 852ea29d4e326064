"""The canonical encoding of an event: the bytes a Merkle leaf hashes.

An event is the JSON document the store keeps (see :mod:`partnerledger.events`):
``{"command": {...}, "command_id": ..., "originator_id": ..., "originator_version":
..., "recorded_at": ...}``. Its canonical encoding is that document serialized
by the JSON Canonicalization Scheme, RFC 8785 (JCS):

* UTF-8, no whitespace, no byte order mark;
* object members sorted by their names compared as UTF-16 code units (every
  name the platform itself writes is ASCII, so this is byte order);
* strings with only ``"``, ``\\`` and U+0000 to U+001F escaped: ``\\b \\t \\n
  \\f \\r`` by their short forms, the others as ``\\u00xx`` (lowercase hex);
  everything else, including non-ASCII, written as UTF-8;
* numbers as ECMAScript writes them (integers without a fraction or exponent;
  ``1e-7``, ``1e+21``; ``-0`` as ``0``). Money and rates are decimal *strings*
  in the document, never numbers; numbers other than integers only occur in
  plugin settings.

Values inside are as the store writes them: times as RFC 3339 UTC text with a
``Z`` (``2025-03-03T09:00:00Z``, with a fraction only when it is non-zero),
UUIDs in lowercase hyphenated form, decimals as strings, fields equal to
their default left out.

:func:`canonical_event` is fast (msgspec) for every event without a
non-integral number and falls back to :func:`jcs` (plain Python) for those
with one; a test proves the two agree.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

import msgspec

from ..events import Event

_sorted = msgspec.json.Encoder(order="sorted", decimal_format="string")


def _free_form(info: msgspec.inspect.Type, seen: set[int]) -> bool:
    """Whether a type can hold a value of any type (and so a float)."""
    if isinstance(info, msgspec.inspect.AnyType | msgspec.inspect.FloatType):
        return True
    if id(info) in seen:
        return False
    seen.add(id(info))
    if isinstance(info, msgspec.inspect.StructType):
        return any(_free_form(f.type, seen) for f in info.fields)
    if isinstance(info, msgspec.inspect.UnionType):
        return any(_free_form(t, seen) for t in info.types)
    if isinstance(info, msgspec.inspect.DictType):
        return _free_form(info.value_type, seen)
    if isinstance(info, msgspec.inspect.ListType | msgspec.inspect.SetType):
        return _free_form(info.item_type, seen)
    if isinstance(info, msgspec.inspect.VarTupleType):
        return _free_form(info.item_type, seen)
    if isinstance(info, msgspec.inspect.TupleType):
        return any(_free_form(t, seen) for t in info.item_types)
    return False


@functools.cache
def _may_hold_float(command_type: type) -> bool:
    return _free_form(msgspec.inspect.type_info(command_type), set())


def canonical_event(event: Event) -> bytes:
    """The RFC 8785 bytes of one event's stored document."""
    data = _sorted.encode(event)
    if _may_hold_float(type(event.command)) and _has_float(event.command):
        return jcs(msgspec.json.decode(data))
    return data


def may_hold_float(command_type: type) -> bool:
    """Whether a command class has a field that can hold a float (free-form settings)."""
    return _may_hold_float(command_type)


def has_float(value: Any) -> bool:
    """Whether a command holds a float anywhere (only free-form settings can)."""
    return _has_float(value)


def _has_float(value: Any) -> bool:
    """Whether a command holds a float anywhere (only free-form settings can)."""
    if isinstance(value, float):
        return True
    if isinstance(value, msgspec.Struct):
        return any(_has_float(getattr(value, f)) for f in value.__struct_fields__)
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_float(v) for v in value)
    return False


# ------------------------------------------------------------------ RFC 8785

_SHORT = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}


#: What a JSON string must escape: ``"``, ``\\`` and U+0000 to U+001F.
_ESCAPED = re.compile('[\\x00-\\x1f"\\\\]')


def _string(text: str) -> str:
    if _ESCAPED.search(text) is None:  # (nearly always: nothing to escape)
        return '"' + text + '"'
    out = []
    for ch in text:
        if ch in _SHORT:
            out.append(_SHORT[ch])
        elif ch < " ":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def number(value: float | int) -> str:
    """A number as ECMAScript's ``Number.prototype.toString`` writes it (RFC 8785 §3.2.2.3)."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, int) and abs(value) <= 2**53:
        return str(value)
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{value!r} has no JSON form")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    # repr gives the shortest digits that round-trip, as ECMAScript requires.
    mantissa, _, exp = repr(abs(x)).partition("e")
    whole, _, frac = mantissa.partition(".")
    every = whole + frac
    significant = every.lstrip("0")
    # n: where the decimal point falls, counted from the first significant digit
    n = len(whole) + (int(exp) if exp else 0) - (len(every) - len(significant))
    digits = significant.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        text = (
            digits[0]
            + ("." + digits[1:] if k > 1 else "")
            + "e"
            + ("+" if e > 0 else "-")
            + str(abs(e))
        )
    return sign + text


def _jcs(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, int | float):
        return number(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_jcs(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(_string(k) + ":" + _jcs(value[k]) for k in keys) + "}"
    raise TypeError(f"{type(value).__name__} has no JSON form")


def jcs(value: Any) -> bytes:
    """RFC 8785 canonical JSON of a value made of dicts, lists, strings, numbers, booleans, null."""
    return _jcs(value).encode("utf-8")


__all__ = ["canonical_event", "has_float", "jcs", "may_hold_float", "number"]
