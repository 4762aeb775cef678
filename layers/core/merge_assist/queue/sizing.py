"""``batch_size: auto``: each batch's size from the failure rate of the branch's recent
batches, by the group-testing optimum for that rate.

The rate estimated is ``p``, the chance that one MR turns a pipeline red. Each recent batch
says one thing about it without bias: whether its first pipeline, testing ``n`` MRs, was
red (chance ``1 - (1 - p)^n``). Later pipelines of a bisection are left out: they are only
run on red batches and on chosen halves, so they would overstate ``p``. The estimate is
the most likely ``p`` given those answers and a prior worth ``PRIOR_MERGE_REQUESTS`` MRs at
``PRIOR_RATE``, so a new project starts at the rate most teams see and a few batches move
it only a little.

The size is Dorfman's optimum for ``p``: the ``k`` that minimises pipelines per MR of
two-stage group testing, ``1/k + 1 - (1 - p)^k`` (and 1 for ``k = 1``), bounded by
``batch_size_max``. At p = 0.10 that is 4 (0.59 pipelines per MR); at p = 0.02, 8; from
p ≈ 0.31 on, testing MRs one at a time is cheapest. Bisection spends fewer pipelines on a
red batch than Dorfman's second stage, so the optimum is, if anything, conservative."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from merge_assist.platform.config import ProjectConfig
from merge_assist.queue.models import Batch, BatchSizing, BatchStepKind

HISTORY_BATCHES = 20
PRIOR_RATE = 0.10
PRIOR_MERGE_REQUESTS = 10
RED = "failed"
# Rates the estimate is sought among: 0.1 % steps up to one MR in two.
_RATES = tuple(step / 1000 for step in range(1, 501))


def first_tests(batches: Iterable[Batch], target_branch: str) -> list[tuple[int, bool]]:
    """(MRs tested, red) of the first pipeline of each of the branch's most recent batches,
    newest first, at most ``HISTORY_BATCHES``. Batches that never got a verdict (cancelled,
    or still waiting) say nothing."""
    seen: list[tuple[int, bool]] = []
    for batch in batches:
        if batch.target_branch != target_branch:
            continue
        first = next((s for s in batch.steps if s.kind is BatchStepKind.TESTED), None)
        if first is None or not first.merge_requests or first.status not in (RED, "success"):
            continue
        seen.append((len(first.merge_requests), first.status == RED))
        if len(seen) == HISTORY_BATCHES:
            break
    return seen


def failure_rate(tests: Sequence[tuple[int, bool]]) -> float:
    """The most likely per-MR failure chance given ``tests`` and the prior."""

    def log_likelihood(p: float) -> float:
        total = PRIOR_MERGE_REQUESTS * (
            PRIOR_RATE * math.log(p) + (1 - PRIOR_RATE) * math.log(1 - p)
        )
        for size, red in tests:
            passing = size * math.log(1 - p)
            total += math.log(-math.expm1(passing)) if red else passing
        return total

    return max(_RATES, key=log_likelihood)


def pipelines_per_merge_request(size: int, rate: float) -> float:
    """Dorfman's expected pipelines per MR for groups of ``size``."""
    if size == 1:
        return 1.0
    return 1 / size + 1 - (1 - rate) ** size


def optimal_size(rate: float, largest: int) -> int:
    """The size with the fewest pipelines per MR; of equal ones the larger (less waiting)."""
    return min(
        range(1, largest + 1),
        key=lambda size: (round(pipelines_per_merge_request(size, rate), 9), -size),
    )


def choose_size(config: ProjectConfig, recent: Iterable[Batch], target_branch: str) -> BatchSizing:
    """The size of the next batch for ``target_branch`` under ``batch_size: auto``."""
    tests = first_tests(recent, target_branch)
    rate = failure_rate(tests)
    return BatchSizing(
        size=optimal_size(rate, config.batch_size_max),
        failure_rate=rate,
        batches=len(tests),
    )
