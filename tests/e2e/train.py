"""What the train scenarios share: a project on the train strategy, its MRs queued in groups
(each group after the one before, so the cars they fill are known), and its cars."""

from __future__ import annotations

from typing import Any

from local.stack import LocalStack
from merge_assist.queue.models import (
    Batch,
    BatchState,
    BatchStep,
    BatchStepKind,
    StatusCategory,
)
from tests.e2e.merge_queue import Scenario

# Simulated CI seconds (x0.05 on the wall clock): long enough that the car behind is built
# and tested while the one ahead still runs.
TRAIN_CI_S = 80
# Once the MRs are queued (``slow_ci``): every car behind is built and testing before the
# head car's pipeline ends, on a loaded machine too (~15 s).
LONG_TRAIN_CI_S = 300
# A pipeline that runs until the scenario finishes it (``finish_now``): ~1000 s.
HELD_CI_S = 20_000


def open_train(
    stack: LocalStack,
    name: str,
    *,
    depth: int,
    batch_size: int = 2,
    duration_s: float = TRAIN_CI_S,
    conflict_pairs: list[tuple[str, str]] | None = None,
    **settings: Any,
) -> Scenario:
    return Scenario.open(
        stack,
        name,
        settings={
            "strategy": "train",
            "train_depth": depth,
            "batch_size": batch_size,
            **settings,
        },
        duration_s=duration_s,
        conflict_pairs=conflict_pairs,
    )


def queue_in_groups(scenario: Scenario, groups: list[list[int]]) -> list[list[int]]:
    """Opens MR ``n`` (adding ``src/f<n>.py``) for every n, a group at a time, each group
    queued before the next opens: the queue's order, and so each car's MRs, follow the
    groups. The iids, grouped the same way."""
    opened = []
    for group in groups:
        iids = [scenario.open_mr(f"feature/{n}", {f"src/f{n}.py": f"N = {n}\n"}) for n in group]
        scenario.wait_status(iids, StatusCategory.QUEUED)
        opened.append(iids)
    return opened


def slow_ci(scenario: Scenario) -> None:
    """From now on each pipeline takes ``LONG_TRAIN_CI_S``: the MRs' own pipelines have
    passed quickly, and every car behind is built and testing before the head car's
    pipeline ends, however loaded the machine."""
    _set_duration(scenario, LONG_TRAIN_CI_S)


def hold_ci(scenario: Scenario) -> None:
    """Pipelines created from now on run until ``finish_now`` ends them."""
    _set_duration(scenario, HELD_CI_S)


def ci_as_usual(scenario: Scenario) -> None:
    _set_duration(scenario, TRAIN_CI_S)


def finish_now(scenario: Scenario, sha: str | None = None) -> None:
    """The pipelines of ``sha`` (of every sha: None) end at the simulator's next tick, with
    their outcome. Every held pipeline must end before the invariants are checked: the
    webhook replay waits for the simulator to be idle."""
    gitlab = scenario.stack.gitlab
    assert gitlab is not None
    with gitlab.store.lock:
        now = gitlab.store.monotonic()
        for pipeline in gitlab.store.pipelines.values():
            if pipeline.project_id == scenario.project.id and sha in (None, pipeline.sha):
                pipeline.pending_at = min(pipeline.pending_at, now)
                pipeline.running_at = min(pipeline.running_at, now)
                pipeline.finish_at = min(pipeline.finish_at, now)


def _set_duration(scenario: Scenario, duration_s: float) -> None:
    gitlab = scenario.stack.gitlab
    assert gitlab is not None
    gitlab.set_pipeline_rules(scenario.project, duration_s=duration_s)


def cars(scenario: Scenario) -> list[Batch]:
    """The train's cars, oldest first."""
    return [batch for batch in scenario.batches() if batch.strategy.value == "train"]


def wait_car_two_testing(scenario: Scenario) -> None:
    """Until the second car's pipeline runs (on the first car's commit)."""
    scenario.wait_for(
        lambda: len(cars(scenario)) == 2 and cars(scenario)[1].state is BatchState.TESTING,
        "car two to be testing",
    )


def steps(batch: Batch, kind: BatchStepKind) -> list[BatchStep]:
    return [step for step in batch.steps if step.kind is kind]


def first(batch: Batch, kind: BatchStepKind) -> BatchStep:
    found = steps(batch, kind)
    assert found, f"{batch.id} has no {kind.value} step: {[s.kind.value for s in batch.steps]}"
    return found[0]


def pipeline_statuses(scenario: Scenario, sha: str) -> list[str]:
    gitlab = scenario.stack.gitlab
    assert gitlab is not None
    with gitlab.store.lock:
        return [
            p.status
            for p in gitlab.store.pipelines.values()
            if p.project_id == scenario.project.id and p.sha == sha
        ]


def train_pipelines(scenario: Scenario) -> int:
    gitlab = scenario.stack.gitlab
    assert gitlab is not None
    with gitlab.store.lock:
        return sum(
            1
            for p in gitlab.store.pipelines.values()
            if p.project_id == scenario.project.id and p.ref.startswith("merge-assist/train/")
        )
