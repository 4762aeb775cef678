"""Cached boto3 factories. Nothing is built at import time, so handlers stay cheap to import
and tests can point them at moto (``AWS_ENDPOINT_URL`` is honoured by boto3 itself)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import boto3
from boto3.dynamodb.conditions import ConditionExpressionBuilder

from merge_assist.platform.caching import built_once
from merge_assist.platform.settings import Settings, get_settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

    from merge_assist.adapters.dynamodb_store import DynamoDBStore


class _BuilderPerThread(threading.local):
    """boto3's condition-expression builder, one per thread. A DynamoDB resource keeps one
    builder for its client and resets its placeholder counter at every call: threads
    sharing the resource (the local stack's concurrent invocations) reset it under each
    other's feet, and a query reached DynamoDB naming ``#n1`` where its names said ``#n0``.
    The builder holds nothing else, so each thread's own serves every call alike."""

    def __init__(self) -> None:
        self.builder = ConditionExpressionBuilder()

    def reset(self) -> None:
        self.builder.reset()

    def build_expression(self, condition: Any, is_key_condition: bool = False) -> Any:
        return self.builder.build_expression(condition, is_key_condition=is_key_condition)


@built_once
def dynamodb_table(name: str) -> Table:
    resource = boto3.resource("dynamodb")
    table = resource.Table(name)
    # The resource's injector is the one registered on the client they share (the table's
    # registration is a duplicate boto3 drops); both get the per-thread builder.
    builder = _BuilderPerThread()
    resource._injector._condition_builder = builder  # type: ignore[attr-defined]
    table._injector._condition_builder = builder  # type: ignore[attr-defined]
    return table


def store_from_settings(settings: Settings | None = None) -> DynamoDBStore:
    # Imported here: the webhook receiver imports this module for its caches and reads
    # only project configs (``project_configs``); the whole store would cost its cold
    # start every context's models.
    from merge_assist.adapters.dynamodb_store import DynamoDBStore  # noqa: PLC0415

    settings = settings or get_settings()
    return DynamoDBStore(
        dynamodb_table(settings.resolved_table_name),
        history=timedelta(days=settings.history_days),
    )


_cache_clearers: list[Callable[[], None]] = []


def register_cache(clear: Callable[[], None]) -> None:
    """Have ``clear_caches`` also run ``clear``: a module's own cache of clients would
    otherwise outlive a switch of endpoints in one process. Modules register themselves
    when imported, so importing this one does not import them all (the webhook's cold
    start would pay for python-gitlab, pyjwt and dulwich)."""
    _cache_clearers.append(clear)


def clear_caches() -> None:
    """Forget cached clients and settings (tests and the local stack switch endpoints)."""
    for clear in _cache_clearers:
        clear()
    dynamodb_table.cache_clear()
    get_settings.cache_clear()
