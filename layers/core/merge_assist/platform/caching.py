"""``built_once``: ``functools.cache`` for factories of SDK clients, safe under threads.

``functools.cache`` lets every caller that misses build its own value: callers that arrive
together while the first build runs each build one too. A Lambda container runs one
invocation at a time, so it never sees this; the local stack runs concurrent invocations
of one function in one process, and a burst's first webhooks each built a boto3 session,
loading the same service models from disk ten times over. Here the first caller builds
under the factory's lock and the others wait for its value."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from functools import update_wrapper
from typing import Generic, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class BuiltOnce(Generic[P, T]):
    def __init__(self, factory: Callable[P, T]) -> None:
        self._factory = factory
        self._built: dict[Hashable, T] = {}
        # Reentrant: a factory may call another argument of itself.
        self._lock = threading.RLock()
        update_wrapper(self, factory)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        key = (args, tuple(sorted(kwargs.items())))
        try:
            return self._built[key]
        except KeyError:
            pass
        with self._lock:
            if key not in self._built:
                self._built[key] = self._factory(*args, **kwargs)
            return self._built[key]

    def cache_clear(self) -> None:
        with self._lock:
            self._built.clear()


def built_once(factory: Callable[P, T]) -> BuiltOnce[P, T]:
    return BuiltOnce(factory)
