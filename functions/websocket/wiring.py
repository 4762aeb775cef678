"""The WebSocket function's adapters, built from settings once per warm container (the
composition root); ``clear_caches`` forgets them when the settings or endpoints change."""

from __future__ import annotations

from functools import cache

from merge_assist.adapters.aws import register_cache, store_from_settings
from merge_assist.adapters.dynamodb_store import DynamoDBStore
from merge_assist.adapters.live import DynamoDBConnections, connections_from_settings
from merge_assist.adapters.tokens import CognitoTokenVerifier, verifier_from_settings
from merge_assist.platform.clock import SystemClock

clock = SystemClock()


@cache
def store() -> DynamoDBStore:
    return store_from_settings()


@cache
def connections() -> DynamoDBConnections:
    return connections_from_settings()


def verifier() -> CognitoTokenVerifier:
    """``Unavailable`` while no user pool is configured."""
    return verifier_from_settings()


_BUILT = (store, connections)


def clear() -> None:
    """Forget everything built here."""
    for built in _BUILT:
        built.cache_clear()


register_cache(clear)
