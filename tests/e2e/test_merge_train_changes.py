"""The train strategy under change: every step retried after it acted (a function crashing
once GitLab took its call), flaky retries of a red car's culprit, and the project switched
from train to batch mid-run. Each ends with the three invariants."""

from __future__ import annotations

import pytest

from local.stack import LocalStack
from merge_assist.platform.config import Strategy
from merge_assist.queue.models import BatchState, BatchStepKind, StatusCategory
from tests.e2e.train import cars, open_train, queue_in_groups, steps, wait_car_two_testing

pytestmark = pytest.mark.e2e

STACK_SETTINGS = {"web_dir": None, "pipeline_poll_seconds": 5, "schedule_scale": 0.04}

WORKFLOW_STEPS = ("select", "build", "verdict", "land", "release", "wait-car-ahead")


def test_every_step_of_the_train_retried_after_acting_changes_nothing(
    stack: LocalStack, scenario_name: str
) -> None:
    # Car two is red on car one's commit, so the train cancels, bisects, rejects and lands.
    scenario = open_train(
        stack, scenario_name, depth=2, conflict_pairs=[("src/f1.py", "src/f2.py")]
    )
    gitlab = scenario.stack.gitlab
    assert gitlab is not None
    functions = frozenset(f"{stack.names.prefix}-workflow-{step}" for step in WORKFLOW_STEPS)
    try:
        [head, middle, tail] = queue_in_groups(scenario, [[0, 1], [2, 3], [4, 5]])
        with stack.runtime.crashing_after_side_effects(
            gitlab.url, 0.3, seed=7, functions=functions
        ) as crashes:
            scenario.start()
            scenario.settle(timeout=240)
        assert crashes.crashes, "no step crashed"
        crashed = {crash.function.rsplit("-", 1)[-1] for crash in crashes.crashes}
        assert {"build", "land"} <= crashed, crashes.crashes
        culprit = middle[0]
        assert scenario.status(culprit) is StatusCategory.REJECTED, scenario.describe()
        for iid in [*head, middle[1], *tail]:
            assert scenario.status(iid) is StatusCategory.MERGED, scenario.describe()
        # One comment per transition: a retried step told nobody twice.
        for iid in [*head, middle[1], *tail]:
            merged = [n for n in scenario.notes(iid) if "merged this merge request" in n]
            assert len(merged) == 1, scenario.notes(iid)
        scenario.assert_invariants()
    finally:
        scenario.close()


def test_a_red_cars_culprit_is_retried_before_it_is_rejected(
    stack: LocalStack, scenario_name: str
) -> None:
    scenario = open_train(
        stack,
        scenario_name,
        depth=2,
        conflict_pairs=[("src/f0.py", "src/f1.py")],
        flaky_retries=1,
    )
    try:
        [head, behind] = queue_in_groups(scenario, [[0, 1], [2, 3]])
        scenario.start()
        scenario.settle(timeout=150)

        one, two, *_ = cars(scenario)
        assert one.merge_requests == head
        assert steps(one, BatchStepKind.RETRIED)
        culprit = one.order[1]
        assert scenario.status(culprit) is StatusCategory.REJECTED, scenario.describe()
        assert two.merge_requests == behind
        assert two.state is BatchState.CANCELLED
        for iid in [one.order[0], *behind]:
            assert scenario.status(iid) is StatusCategory.MERGED, scenario.describe()
        scenario.assert_invariants()
    finally:
        scenario.close()


def test_switching_from_train_to_batch_mid_run_lets_the_cars_finish_then_batches(
    stack: LocalStack, scenario_name: str
) -> None:
    scenario = open_train(stack, scenario_name, depth=2)
    try:
        groups = queue_in_groups(scenario, [[0, 1], [2, 3], [4, 5], [6, 7]])
        scenario.start()
        wait_car_two_testing(scenario)
        store = scenario.store
        config = store.get_project(scenario.project.id)
        store.save_project(config.model_copy(update={"strategy": Strategy.BATCH}))
        scenario.settle(timeout=150)

        for iid in [iid for group in groups for iid in group]:
            assert scenario.status(iid) is StatusCategory.MERGED, scenario.describe()
        batches = scenario.batches()
        train_cars = [b for b in batches if b.strategy is Strategy.TRAIN]
        after = [b for b in batches if b.strategy is Strategy.BATCH]
        # The two cars on the train when it switched finished as cars; what came after ran
        # as batches, one at a time, each built on the target.
        assert len(train_cars) == 2
        assert [car.state for car in train_cars] == [BatchState.LANDED] * 2
        assert after
        assert all(b.ahead_id is None for b in after)
        assert all(b.batch_branch == "merge-assist/batch/main" for b in after)
        landed_at = max(s.at for car in train_cars for s in steps(car, BatchStepKind.LANDED))
        assert all(b.created_at >= landed_at for b in after)
        scenario.assert_invariants()
    finally:
        scenario.close()
