"""The train strategy's rules (DESIGN.md, "The merge queue"): which car a new batch may be
built on, and where each car is tested. Pure functions of the records."""

from __future__ import annotations

from collections.abc import Iterable

from merge_assist.platform.config import ProjectConfig, Strategy
from merge_assist.queue.models import Batch, BatchState


def cars_allowed(config: ProjectConfig) -> int:
    """How many batches may hold a branch at once: the train's depth, else one."""
    return config.train_depth if config.strategy is Strategy.TRAIN else 1


def extendable(car: Batch) -> bool:
    """A batch may be built on ``car``'s tested commit only while that whole commit may
    still land: it is built, and being tested whole (not bisected, not retried) or found
    green whole. Anything less and the car behind would test a tree that cannot land. Never
    a batch of another strategy (the project just switched to the train): that one neither
    cancels nor wakes a car behind it, so the train starts on the target once it ends."""
    if car.strategy is not Strategy.TRAIN or car.build is None or car.state.is_final:
        return False
    whole = len(car.build.included)
    if car.state is BatchState.TESTING:
        return car.bisection is None and not car.retrying and car.tested_length == whole
    if car.state is BatchState.LANDING:
        return car.land_length == whole
    return False


def tip(car: Batch) -> str:
    """The commit a car behind ``car`` is built on: ``car``'s whole tested commit."""
    assert car.build is not None
    return car.build.prefix_sha(len(car.build.included))


def car_branch(target_branch: str, slot: int) -> str:
    return f"merge-assist/train/{target_branch}/{slot}"


def free_slot(target_branch: str, taken: Iterable[str | None]) -> int:
    """The lowest car number whose branch no other car of the train uses: each car tests on
    a branch of its own, so a push for one never replaces (nor auto-cancels) another's
    pipeline."""
    used = set(taken)
    slot = 1
    while car_branch(target_branch, slot) in used:
        slot += 1
    return slot


def ahead_key(ahead_id: str) -> str:
    """The key under which a green car waits for ``ahead_id`` to end (a task token, as a
    pipeline wait's is keyed by its sha)."""
    return f"ahead:{ahead_id}"
