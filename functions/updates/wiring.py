"""The live feed's adapters, built from settings once per warm container (the composition
root); ``clear_caches`` forgets them when the settings or endpoints change."""

from __future__ import annotations

from functools import cache

from merge_assist.adapters.aws import register_cache, store_from_settings
from merge_assist.adapters.dynamodb_store import DynamoDBStore
from merge_assist.adapters.live import (
    ApiGatewayBroadcaster,
    DynamoDBConnections,
    broadcaster_from_settings,
    connections_from_settings,
)
from merge_assist.live.feed import LiveFeed
from merge_assist.platform.clock import SystemClock


@cache
def store() -> DynamoDBStore:
    return store_from_settings()


@cache
def connections() -> DynamoDBConnections:
    return connections_from_settings()


@cache
def broadcaster() -> ApiGatewayBroadcaster:
    """``RuntimeError`` while no WebSocket callback URL is configured."""
    return broadcaster_from_settings()


def feed() -> LiveFeed:
    """A feed for one invocation: it reads the open connections once, for all its records."""
    return LiveFeed(
        audit=store(),
        connections=connections(),
        broadcaster=broadcaster(),
        clock=SystemClock(),
    )


_BUILT = (store, connections, broadcaster)


def clear() -> None:
    """Forget everything built here."""
    for built in _BUILT:
        built.cache_clear()


register_cache(clear)
