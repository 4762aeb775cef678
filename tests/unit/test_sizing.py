"""``batch_size: auto``: the failure rate read from recent batches and the size chosen for it."""

from __future__ import annotations

import random

import pytest

from merge_assist.platform.config import ProjectConfig
from merge_assist.queue.models import Batch, BatchState, BatchStep, BatchStepKind
from merge_assist.queue.sizing import (
    HISTORY_BATCHES,
    PRIOR_RATE,
    choose_size,
    failure_rate,
    first_tests,
    optimal_size,
    pipelines_per_merge_request,
)

AUTO = ProjectConfig(project_id=1, batch_size="auto", batch_size_max=8)


def batch(n: int, first: str | None, *, target: str = "main", later: tuple[str, ...] = ()) -> Batch:
    """A finished batch of ``n`` MRs whose first pipeline ended ``first`` (None: no verdict),
    then bisection pipelines ending ``later`` (each on a smaller prefix)."""
    iids = list(range(1, n + 1))
    steps = [BatchStep(kind=BatchStepKind.SELECTED, merge_requests=iids)]
    if first is not None:
        steps.append(BatchStep(kind=BatchStepKind.TESTED, merge_requests=iids, status=first))
    for size, status in zip(range(n - 1, 0, -1), later, strict=False):
        steps.append(
            BatchStep(kind=BatchStepKind.TESTED, merge_requests=iids[:size], status=status)
        )
    return Batch(
        id=f"b-{random.random()}",
        project_id=1,
        target_branch=target,
        strategy="batch",
        merge_requests=iids,
        state=BatchState.LANDED,
        steps=steps,
    )


@pytest.mark.parametrize(
    ("rate", "size"), [(0.01, 8), (0.02, 8), (0.05, 5), (0.10, 4), (0.20, 3), (0.35, 1)]
)
def test_the_size_is_dorfmans_optimum_for_the_rate_within_the_maximum(
    rate: float, size: int
) -> None:
    chosen = optimal_size(rate, 8)
    assert chosen == size
    costs = {k: pipelines_per_merge_request(k, rate) for k in range(1, 9)}
    assert costs[chosen] == min(costs.values())


def test_a_new_project_is_sized_for_the_prior_rate() -> None:
    sizing = choose_size(AUTO, [], "main")
    assert (sizing.size, sizing.failure_rate, sizing.batches) == (4, PRIOR_RATE, 0)


def test_green_batches_grow_the_size_and_red_ones_shrink_it() -> None:
    green = [batch(5, "success") for _ in range(HISTORY_BATCHES)]
    red = [batch(5, "failed" if n % 2 else "success") for n in range(HISTORY_BATCHES)]

    calm, stormy = choose_size(AUTO, green, "main"), choose_size(AUTO, red, "main")

    assert calm.failure_rate < PRIOR_RATE < stormy.failure_rate
    assert calm.size == 8  # bounded by batch_size_max
    assert stormy.size < 4
    # Half of five-MR batches red: p with 1 - (1 - p)^5 = 0.5 is 0.129; the prior pulls
    # the estimate towards 0.10.
    assert 0.10 < stormy.failure_rate < 0.129


def test_only_each_batchs_first_pipeline_on_its_branch_counts_and_only_the_newest() -> None:
    bisected = batch(4, "failed", later=("success", "failed"))
    elsewhere = batch(6, "failed", target="release")
    waiting = batch(3, None)
    cancelled = batch(3, "canceled")
    older = [batch(2, "failed") for _ in range(5)]
    recent = [bisected, elsewhere, waiting, cancelled] + [batch(5, "success")] * 19 + older

    tests = first_tests(recent, "main")

    assert tests[0] == (4, True)
    assert len(tests) == HISTORY_BATCHES
    assert tests[1:] == [(5, False)] * 19  # the five older red batches are past the window


def test_the_estimate_is_the_likeliest_rate() -> None:
    # Many batches of one MR: the estimate tends to the observed share of red ones.
    tests = [(1, n % 4 == 0) for n in range(400)]
    assert failure_rate(tests) == pytest.approx(0.25, abs=0.01)
