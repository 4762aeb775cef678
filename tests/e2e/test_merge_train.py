"""The train strategy end to end: batches as cars, each built and tested on the tested
commit of the car ahead while that one's pipeline runs; the real state machine and
handlers on the local stack, GitLab played by the simulator. Every scenario ends with the
three invariants (``Scenario.assert_invariants``)."""

from __future__ import annotations

import pytest

from local.gitlab_sim import gitops
from local.stack import LocalStack
from merge_assist.queue.models import BatchState, BatchStepKind, ReasonCode, StatusCategory
from tests.e2e.train import (
    cars,
    ci_as_usual,
    finish_now,
    first,
    hold_ci,
    open_train,
    pipeline_statuses,
    queue_in_groups,
    slow_ci,
    steps,
    train_pipelines,
    wait_car_two_testing,
)

pytestmark = pytest.mark.e2e

STACK_SETTINGS = {"web_dir": None, "pipeline_poll_seconds": 5}


def test_a_green_train_of_three_cars_tests_them_at_once_and_lands_each_on_the_one_ahead(
    stack: LocalStack, scenario_name: str
) -> None:
    scenario = open_train(stack, scenario_name, depth=3)
    try:
        [iids] = queue_in_groups(scenario, [[0, 1, 2, 3, 4, 5]])
        slow_ci(scenario)
        scenario.start()
        scenario.settle(timeout=120)

        assert all(scenario.status(iid) is StatusCategory.MERGED for iid in iids)
        one, two, three = cars(scenario)
        assert [car.state for car in (one, two, three)] == [BatchState.LANDED] * 3
        assert [len(car.landed) for car in (one, two, three)] == [2, 2, 2]
        # Each car was built on the whole tested commit of the one ahead ...
        assert (two.ahead_id, two.target_sha) == (one.id, one.sha)
        assert (three.ahead_id, three.target_sha) == (two.id, two.sha)
        # ... and tested while that one's pipeline ran: all three before the first landed.
        landed = first(one, BatchStepKind.LANDED).at
        assert first(three, BatchStepKind.BUILT).at < landed
        assert len({one.batch_branch, two.batch_branch, three.batch_branch}) == 3
        # Three pipelines for six MRs, and the target ends at the last car's tested commit.
        assert train_pipelines(scenario) == 3
        assert stack.gitlab is not None
        assert stack.gitlab.branch_sha(scenario.project, "main") == three.sha
        scenario.assert_invariants()
    finally:
        scenario.close()


def test_a_red_head_car_cancels_the_car_behind_which_goes_back_in_line_and_lands_later(
    stack: LocalStack, scenario_name: str
) -> None:
    # Each passes alone; together MRs 0 and 1 fail (a semantic conflict).
    scenario = open_train(
        stack, scenario_name, depth=2, conflict_pairs=[("src/f0.py", "src/f1.py")]
    )
    try:
        [head, behind] = queue_in_groups(scenario, [[0, 1], [2, 3]])
        slow_ci(scenario)
        scenario.start()
        scenario.settle(timeout=150)

        one, two, *rest = cars(scenario)
        assert one.merge_requests == head
        assert two.merge_requests == behind
        assert two.ahead_id == one.id
        culprit = one.order[1]
        state = scenario.state(culprit)
        assert state is not None
        assert state.status is StatusCategory.REJECTED
        assert [r.code for r in state.reasons] == [ReasonCode.CI_FAILED]
        # The car behind was cancelled with its pipeline, nothing of it landed ...
        assert two.state is BatchState.CANCELLED
        assert not two.landed
        assert two.sha is not None
        assert "success" not in pipeline_statuses(scenario, two.sha)
        # ... and its MRs kept their place: they land in a later car, built on the target.
        for iid in [one.order[0], *behind]:
            assert scenario.status(iid) is StatusCategory.MERGED, scenario.describe()
        later = [car for car in rest if car.landed]
        assert sorted(iid for car in later for iid in car.landed) == sorted(behind)
        assert rest[0].ahead_id is None
        scenario.assert_invariants()
    finally:
        scenario.close()


def test_a_red_middle_car_lets_the_head_land_and_cancels_the_car_behind_it(
    stack: LocalStack, scenario_name: str
) -> None:
    # MR 2 (car two) fails on top of MR 1 (car one): car two is red on car one's commit.
    scenario = open_train(
        stack, scenario_name, depth=3, conflict_pairs=[("src/f1.py", "src/f2.py")]
    )
    try:
        [head, middle, tail] = queue_in_groups(scenario, [[0, 1], [2, 3], [4, 5]])
        scenario.start()
        scenario.settle(timeout=150)

        one, two, three, *_ = cars(scenario)
        assert (one.merge_requests, two.merge_requests, three.merge_requests) == (
            head,
            middle,
            tail,
        )
        assert one.state is BatchState.LANDED
        assert not steps(one, BatchStepKind.REBUILT)
        assert three.state is BatchState.CANCELLED
        assert not three.landed
        culprit = middle[0]
        state = scenario.state(culprit)
        assert state is not None
        assert state.status is StatusCategory.REJECTED
        assert steps(two, BatchStepKind.BISECTED)
        for iid in [*head, middle[1], *tail]:
            assert scenario.status(iid) is StatusCategory.MERGED, scenario.describe()
        scenario.assert_invariants()
    finally:
        scenario.close()


def test_a_push_to_an_mr_of_car_two_rebuilds_car_two_only(
    stack: LocalStack, scenario_name: str
) -> None:
    scenario = open_train(stack, scenario_name, depth=2)
    try:
        [head, behind] = queue_in_groups(scenario, [[0, 1], [2, 3]])
        hold_ci(scenario)  # car one tests until car two has been rebuilt
        scenario.start()
        wait_car_two_testing(scenario)
        one_before = cars(scenario)[0]
        assert one_before.state is BatchState.TESTING
        ci_as_usual(scenario)
        scenario.push("feature/2", {"src/f2.py": "N = 'two'\n"})
        scenario.wait_for(
            lambda: bool(steps(cars(scenario)[1], BatchStepKind.REBUILT)), "car two to rebuild"
        )
        assert one_before.sha is not None
        finish_now(scenario, one_before.sha)
        scenario.settle(timeout=150)

        one, two, *_ = cars(scenario)
        assert one.state is BatchState.LANDED
        assert not steps(one, BatchStepKind.REBUILT)
        assert one.sha == one_before.sha  # car one never moved
        assert steps(two, BatchStepKind.REBUILT)
        for iid in [*head, *behind]:
            assert scenario.status(iid) is StatusCategory.MERGED, scenario.describe()
        pushed = scenario.gitlab_mr(behind[0])["sha"]
        assert scenario.state(behind[0]) is not None
        assert scenario.state(behind[0]).sha == pushed  # type: ignore[union-attr]
        finish_now(scenario)  # car two's first pipeline, rebuilt away, is still held
        scenario.assert_invariants()
    finally:
        scenario.close()


def test_a_human_moving_the_target_mid_train_rebuilds_from_the_target(
    stack: LocalStack, scenario_name: str
) -> None:
    scenario = open_train(stack, scenario_name, depth=2)
    try:
        [head, behind] = queue_in_groups(scenario, [[0, 1], [2, 3]])
        hold_ci(scenario)  # car one tests until the human has pushed
        scenario.start()
        wait_car_two_testing(scenario)
        one_before = cars(scenario)[0]
        assert one_before.state is BatchState.TESTING
        ci_as_usual(scenario)
        human = scenario.push("main", {"docs/notes.md": "by hand\n"})
        assert one_before.sha is not None
        finish_now(scenario, one_before.sha)
        scenario.settle(timeout=150)

        one, two, *_ = cars(scenario)
        # Car one's landing found the target moved: rebuilt on it, the car behind cancelled.
        rebuilt = steps(one, BatchStepKind.REBUILT)
        assert rebuilt
        assert "target branch moved" in rebuilt[0].note
        assert one.state is BatchState.LANDED
        assert one.target_sha == human
        assert two.state is BatchState.CANCELLED
        for iid in [*head, *behind]:
            assert scenario.status(iid) is StatusCategory.MERGED, scenario.describe()
        gitlab = scenario.stack.gitlab
        assert gitlab is not None
        head_sha = gitlab.branch_sha(scenario.project, "main")
        assert head_sha is not None
        with gitlab.store.lock:
            repo = gitlab.store.repo(scenario.project.id)
            assert gitops.is_ancestor(repo, human, head_sha)  # the human's commit stays
        finish_now(scenario)  # anything still held ends before the replay
        scenario.assert_invariants()
    finally:
        scenario.close()
