"""The network: a tenant with its currency, evaluation period and tier ladder."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from ..commands import (
    Command,
    NetworkCreated,
    NetworkTiersSet,
    Period,
    PluginConfigured,
    PluginDisabled,
    PluginEnabled,
    Tier,
)
from ..errors import AlreadyExists, InvalidCommand, InvalidTransition, NotFound
from ..identity import aggregate_id
from .base import Aggregate, Lookup, rule


def network_id(slug: str) -> UUID:
    """The aggregate id of a network."""
    return aggregate_id("network", slug)


class Network(Aggregate):
    """A partner network."""

    kind = "network"

    def __init__(self, id: UUID) -> None:
        super().__init__(id)
        self.name = ""
        self.currency = ""
        self.period: Period = "month"
        self.rolling_days: int | None = None
        self.tiers: tuple[Tier, ...] = ()
        #: Enabled plugins and their settings as recorded (validated when recorded).
        self.plugins: dict[str, dict[str, Any]] = {}

    def when(self, command: Command) -> None:
        if isinstance(command, NetworkCreated):
            self.name = command.name
            self.currency = command.currency
            self.period = command.period
            self.rolling_days = command.rolling_days
            self.tiers = command.tiers
        elif isinstance(command, NetworkTiersSet):
            self.tiers = command.tiers
        elif isinstance(command, PluginEnabled | PluginConfigured):
            self.plugins[command.plugin] = command.settings
        elif isinstance(command, PluginDisabled):
            del self.plugins[command.plugin]
        else:
            super().when(command)


def _check_ladder(tiers: tuple[Tier, ...]) -> None:
    seen: set[str] = set()
    previous = None
    for index, tier in enumerate(tiers):
        if not tier.threshold.is_finite() or tier.threshold < 0:
            raise InvalidCommand(f"tiers[{index}].threshold", "must be zero or more")
        if tier.name in seen:
            raise InvalidCommand(f"tiers[{index}].name", f"tier {tier.name!r} appears twice")
        if previous is not None and tier.threshold <= previous:
            raise InvalidCommand(
                f"tiers[{index}].threshold",
                "thresholds must rise from the lowest tier to the highest",
            )
        seen.add(tier.name)
        previous = tier.threshold


@rule(NetworkCreated, Network, lambda c, _: network_id(c.network))
def create_network(_: Lookup, network: Network | None, command: NetworkCreated) -> None:
    if network is not None:
        raise AlreadyExists("network", f"network {command.network!r} already exists")
    if command.period == "rolling" and command.rolling_days is None:
        raise InvalidCommand("rolling_days", "required when period is 'rolling'")
    if command.period != "rolling" and command.rolling_days is not None:
        raise InvalidCommand("rolling_days", "only allowed when period is 'rolling'")
    _check_ladder(command.tiers)


@rule(NetworkTiersSet, Network, lambda c, _: network_id(c.network))
def set_tiers(_: Lookup, network: Network | None, command: NetworkTiersSet) -> None:
    _existing(network, command.network)
    _check_ladder(command.tiers)


def _existing(network: Network | None, slug: str) -> Network:
    if network is None:
        raise NotFound("network", f"no network {slug!r}")
    return network


@rule(PluginEnabled, Network, lambda c, _: network_id(c.network))
def enable_plugin(lookup: Lookup, network: Network | None, command: PluginEnabled) -> None:
    found = _existing(network, command.network)
    if command.plugin in found.plugins:
        raise InvalidTransition("plugin", f"plugin {command.plugin!r} is already enabled")
    lookup.check_plugin(command.plugin, command.settings)


def _enabled(network: Network | None, command: PluginConfigured | PluginDisabled) -> None:
    if command.plugin not in _existing(network, command.network).plugins:
        raise InvalidTransition("plugin", f"plugin {command.plugin!r} is not enabled")


@rule(PluginConfigured, Network, lambda c, _: network_id(c.network))
def configure_plugin(lookup: Lookup, network: Network | None, command: PluginConfigured) -> None:
    _enabled(network, command)
    lookup.check_plugin(command.plugin, command.settings)


@rule(PluginDisabled, Network, lambda c, _: network_id(c.network))
def disable_plugin(_: Lookup, network: Network | None, command: PluginDisabled) -> None:
    _enabled(network, command)
