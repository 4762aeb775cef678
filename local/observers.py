"""Callbacks a stand-in tells of what it does (a metering run's hooks), safe to add and
remove while other threads call them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

Observer = TypeVar("Observer", bound=Callable[..., Any])


class Observers(Generic[Observer]):
    def __init__(self) -> None:
        # Replaced, never mutated: a thread iterating the old tuple is not disturbed.
        self._observers: tuple[Observer, ...] = ()
        self._lock = threading.Lock()

    def add(self, observer: Observer) -> None:
        with self._lock:
            self._observers = (*self._observers, observer)

    def remove(self, observer: Observer) -> None:
        with self._lock:
            # Equality, not identity: a bound method is a new object at every access.
            self._observers = tuple(o for o in self._observers if o != observer)

    def __iter__(self) -> Iterator[Observer]:
        return iter(self._observers)
