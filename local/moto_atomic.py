"""DynamoDB evaluates a write's condition and applies the write as one atomic step; moto's
backend does not lock, so two threads' conditional writes on one item can both pass their
check and the second silently overwrites the first. Every compare-and-set in the store
relies on that atomicity (versions, branch locks, idempotency records), so the local stack
and the tests serialize moto's DynamoDB writes, as the service itself does per item."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend

WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")

_lock = threading.RLock()
_installed = False


def _serialized(write: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(write)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return write(*args, **kwargs)

    return locked


def install() -> None:
    """Idempotent: the first call wraps the backend's writes, later calls do nothing."""
    global _installed  # noqa: PLW0603 - one patch per process
    with _lock:
        if _installed:
            return
        for name in WRITES:
            if hasattr(DynamoDBBackend, name):
                setattr(DynamoDBBackend, name, _serialized(getattr(DynamoDBBackend, name)))
        _installed = True
