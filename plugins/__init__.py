"""Built-in rules, each a plugin exactly like a third party's.

Every built-in is registered from :data:`BUILTIN_PLUGINS`; a network uses one
only after enabling it (``plugin.enabled``).
"""

from __future__ import annotations

from . import attribution, fees, notifications, points, tiers, traffic_lights, validation

BUILTIN_PLUGINS: tuple[object, ...] = (
    traffic_lights,
    points,
    tiers,
    fees,
    attribution,
    notifications,
    validation,
)
