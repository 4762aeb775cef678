"""Trying again, with jittered exponential back-off ("full jitter"): writers that lost a
race, or calls GitLab did not answer, spread out instead of colliding again in step."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

Sleep = Callable[[float], None]


def delay(
    attempt: int, *, base: float, cap: float, rng: Callable[[], float] = random.random
) -> float:
    """How long to wait before try ``attempt + 1`` (``attempt`` counts from 0): uniformly
    up to ``base * 2**attempt``, never more than ``cap``."""
    return float(rng()) * min(cap, base * 2.0**attempt)


def retry(
    call: Callable[[], T],
    *,
    should_retry: Callable[[Exception], bool],
    attempts: int,
    base: float,
    cap: float,
    sleep: Sleep | None = None,
) -> T:
    """``call()``, tried up to ``attempts`` times while it raises what ``should_retry``
    accepts; the last error is raised as it is."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as error:
            if attempt == attempts - 1 or not should_retry(error):
                raise
        (sleep or time.sleep)(delay(attempt, base=base, cap=cap))
    raise AssertionError("unreachable: the last attempt returns or raises")
