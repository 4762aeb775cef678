"""The batch strategy end to end: the real state machine in moto's interpreter, the real
handlers, GitLab played by the simulator with real git and simulated CI."""

from __future__ import annotations

import json
from typing import Any

import gitlab as python_gitlab
import pytest

from local.stack import LocalStack
from merge_assist.queue.models import BatchState, ReasonCode, StatusCategory
from tests.e2e.merge_queue import Scenario

pytestmark = pytest.mark.e2e


STACK_SETTINGS = {"web_dir": None, "pipeline_poll_seconds": 5}


def _batch_pipelines(scenario: Scenario) -> list[dict[str, Any]]:
    gitlab = scenario.stack.gitlab
    assert gitlab is not None
    with gitlab.store.lock:
        return [
            {"id": p.id, "sha": p.sha, "status": p.status}
            for p in gitlab.store.pipelines.values()
            if p.project_id == scenario.project.id and p.ref.startswith("merge-assist/batch/")
        ]


def test_a_green_batch_of_five_lands_as_one_tested_commit(
    stack: LocalStack, scenario_name: str
) -> None:
    scenario = Scenario.open(stack, scenario_name, settings={"batch_size": 5})
    try:
        iids = [scenario.open_mr(f"feature/{n}", {f"src/f{n}.py": f"N = {n}\n"}) for n in range(5)]
        scenario.wait_status(iids, StatusCategory.QUEUED)
        scenario.start()
        scenario.settle()

        assert all(scenario.status(iid) is StatusCategory.MERGED for iid in iids)
        [batch] = scenario.batches()
        assert batch.state is BatchState.LANDED
        assert sorted(batch.landed) == iids
        assert batch.landed == batch.merge_requests  # in queue order
        assert len(_batch_pipelines(scenario)) == 1  # one pipeline for five MRs
        assert stack.gitlab is not None
        assert stack.gitlab.branch_sha(scenario.project, "main") == batch.sha
        for iid in iids:
            assert scenario.gitlab_mr(iid)["state"] == "merged"
            assert any("merged this merge request into `main`" in n for n in scenario.notes(iid))
        scenario.assert_invariants()
    finally:
        scenario.close()


def test_with_skip_target_pipeline_the_landing_push_starts_no_second_pipeline(
    stack: LocalStack, scenario_name: str
) -> None:
    scenario = Scenario.open(
        stack, scenario_name, settings={"batch_size": 3, "skip_target_pipeline": True}
    )
    try:
        iids = [scenario.open_mr(f"feature/{n}", {f"src/f{n}.py": f"N = {n}\n"}) for n in range(3)]
        scenario.wait_status(iids, StatusCategory.QUEUED)
        scenario.start()
        scenario.settle()

        assert all(scenario.status(iid) is StatusCategory.MERGED for iid in iids)
        [batch] = scenario.batches()
        assert batch.skip_target_pipeline
        assert [p["status"] for p in _batch_pipelines(scenario)] == ["success"]
        gitlab = scenario.stack.gitlab
        assert gitlab is not None
        assert gitlab.branch_sha(scenario.project, "main") == batch.sha
        with gitlab.store.lock:
            on_target = [
                p.status
                for p in gitlab.store.pipelines.values()
                if p.project_id == scenario.project.id and p.ref == "main" and p.sha == batch.sha
            ]
        assert on_target == ["skipped"]
        scenario.assert_invariants()
    finally:
        scenario.close()


def test_an_automatic_batch_size_is_chosen_from_the_failure_rate_and_recorded(
    stack: LocalStack, scenario_name: str
) -> None:
    scenario = Scenario.open(
        stack, scenario_name, settings={"batch_size": "auto", "batch_size_max": 8}
    )
    try:
        iids = [scenario.open_mr(f"feature/{n}", {f"src/f{n}.py": f"N = {n}\n"}) for n in range(6)]
        scenario.wait_status(iids, StatusCategory.QUEUED)
        scenario.start()
        scenario.settle()

        assert all(scenario.status(iid) is StatusCategory.MERGED for iid in iids)
        first, second = sorted(scenario.batches(), key=lambda b: b.created_at)
        # No history: sized for the prior rate of 10 %, Dorfman's 4.
        assert first.sizing is not None
        assert (first.sizing.size, first.sizing.batches) == (4, 0)
        assert len(first.merge_requests) == 4
        # One green batch of four seen: the rate estimate falls and the size may grow.
        assert second.sizing is not None
        assert second.sizing.batches == 1
        assert second.sizing.failure_rate < first.sizing.failure_rate
        assert sorted(first.merge_requests + second.merge_requests) == iids
        scenario.assert_invariants()
    finally:
        scenario.close()


def test_a_conflicting_mr_is_rejected_and_the_rest_land(
    stack: LocalStack, scenario_name: str
) -> None:
    scenario = Scenario.open(stack, scenario_name, settings={"batch_size": 5})
    try:
        first = scenario.open_mr("feature/a", {"src/app.py": "VERSION = 2\n"})
        clash = scenario.open_mr("feature/b", {"src/app.py": "VERSION = 3\n"})
        last = scenario.open_mr("feature/c", {"docs/c.md": "c\n"})
        scenario.wait_status([first, clash, last], StatusCategory.QUEUED)
        scenario.start()
        scenario.settle()

        # The queue is in the order the MRs became ready: whichever of the two edits of
        # src/app.py comes second in the batch is the one that conflicts.
        order = scenario.batches()[0].merge_requests
        if order.index(clash) < order.index(first):
            first, clash = clash, first
        assert scenario.status(first) is StatusCategory.MERGED
        assert scenario.status(last) is StatusCategory.MERGED
        rejected = scenario.state(clash)
        assert rejected is not None
        assert rejected.status is StatusCategory.REJECTED
        assert [r.code for r in rejected.reasons] == [ReasonCode.CONFLICTS]
        assert "`src/app.py`" in rejected.reasons[0].message
        assert scenario.gitlab_mr(clash)["state"] == "opened"
        assert "Merge Assist: Rejected" in scenario.gitlab_mr(clash)["labels"]
        assert any("took this merge request out of the queue" in n for n in scenario.notes(clash))
        scenario.assert_invariants()
    finally:
        scenario.close()


def test_a_red_batch_of_six_tests_two_prefixes_at_once_each_round(
    stack: LocalStack, scenario_name: str
) -> None:
    scenario = Scenario.open(
        stack,
        scenario_name,
        settings={"batch_size": 6, "bisect_ways": 3},
        conflict_pairs=[("src/f0.py", "src/f4.py")],
    )
    try:
        iids = [scenario.open_mr(f"feature/{n}", {f"src/f{n}.py": f"N = {n}\n"}) for n in range(6)]
        scenario.wait_status(iids, StatusCategory.QUEUED)
        scenario.start()
        scenario.settle(timeout=150)

        first = min(scenario.batches(), key=lambda b: b.created_at)
        assert first.build is not None
        order = first.order
        culprit = max(iids[0], iids[4], key=order.index)
        assert scenario.status(culprit) is StatusCategory.REJECTED, scenario.describe()
        for iid in iids:
            if iid != culprit:
                assert scenario.status(iid) is StatusCategory.MERGED, scenario.describe()
        rounds = [s.note for s in first.steps if s.kind.value == "bisected"]
        assert rounds[0] == "testing the first 2 and the first 4 of 6, at once", rounds
        assert len(rounds) <= 2  # binary search may need three rounds for six
        # The first round's two pipelines ran side by side, each on its own branch.
        gitlab = scenario.stack.gitlab
        assert gitlab is not None
        with gitlab.store.lock:
            ran = {
                (p.sha, p.ref): p
                for p in gitlab.store.pipelines.values()
                if p.project_id == scenario.project.id
            }
        two = ran[(first.build.prefix_sha(2), "merge-assist/batch/main")]
        four = ran[(first.build.prefix_sha(4), "merge-assist/batch/main-bisect-1")]
        assert two.finished_at is not None
        assert four.created_at <= two.finished_at
        scenario.assert_invariants()
    finally:
        scenario.close()


def test_a_red_batch_is_bisected_to_its_culprit(stack: LocalStack, scenario_name: str) -> None:
    # Each passes alone; together the pair fails (a semantic conflict).
    scenario = Scenario.open(
        stack,
        scenario_name,
        settings={"batch_size": 5},
        conflict_pairs=[("src/cache.py", "src/eviction.py")],
    )
    try:
        iids = [
            scenario.open_mr("feature/cache", {"src/cache.py": "SIZE = 10\n"}),
            scenario.open_mr("feature/b", {"src/b.py": "B = 1\n"}),
            scenario.open_mr("feature/eviction", {"src/eviction.py": "LRU = True\n"}),
            scenario.open_mr("feature/d", {"src/d.py": "D = 1\n"}),
            scenario.open_mr("feature/e", {"src/e.py": "E = 1\n"}),
        ]
        scenario.wait_status(iids, StatusCategory.QUEUED)
        scenario.start()
        scenario.settle(timeout=120)

        # Bisection blames whichever half of the pair comes second in the batch.
        order = scenario.batches()[0].merge_requests
        culprit = max(iids[0], iids[2], key=order.index)
        position = order.index(culprit)

        rejected = scenario.state(culprit)
        assert rejected is not None
        assert rejected.status is StatusCategory.REJECTED, [
            (s.kind.value, s.merge_requests, s.status, s.sha and s.sha[:8], s.note)
            for b in scenario.batches()
            for s in b.steps
        ]
        assert [r.code for r in rejected.reasons] == [ReasonCode.CI_FAILED]
        # The link is to the pipeline that failed with the culprit, not a later green one.
        red = [
            step.pipeline_url
            for step in scenario.batches()[0].steps
            if step.kind.value == "tested" and step.status == "failed"
        ]
        assert red
        assert red[-1] is not None
        assert red[-1] in rejected.reasons[0].message
        for iid in iids:
            if iid != culprit:
                assert scenario.status(iid) is StatusCategory.MERGED, scenario.describe()
        first = scenario.batches()[0]
        kinds = [step.kind.value for step in first.steps]
        assert "bisected" in kinds
        assert first.landed == order[:position]
        assert first.requeued == order[position + 1 :]
        green = [
            step.pipeline_url
            for step in first.steps
            if step.kind.value == "tested" and step.status == "success"
        ]
        assert green
        assert green[-1] is not None
        for iid in first.landed:
            [merged_note] = [n for n in scenario.notes(iid) if "merged this merge request" in n]
            assert green[-1] in merged_note
        # ceil(log2(5)) + 1 pipelines find it; the two put back need one more.
        assert len(_batch_pipelines(scenario)) <= 5
        scenario.assert_invariants()
    finally:
        scenario.close()


def test_retried_steps_of_a_landed_batch_change_nothing(
    stack: LocalStack, scenario_name: str
) -> None:
    """Step Functions retries a task whose Lambda failed after acting: each step must see
    what it already did and do nothing twice (invariant 3 for the workflow itself)."""
    scenario = Scenario.open(stack, scenario_name, settings={"batch_size": 2})
    try:
        iids = [scenario.open_mr(f"feature/{n}", {f"src/r{n}.py": f"R = {n}\n"}) for n in range(2)]
        scenario.wait_status(iids, StatusCategory.QUEUED)
        scenario.start()
        scenario.settle()
        [batch] = scenario.batches()
        assert stack.gitlab is not None
        head = stack.gitlab.branch_sha(scenario.project, "main")
        notes = {iid: len(scenario.notes(iid)) for iid in iids}
        ref = {"project_id": scenario.project.id, "batch_id": batch.id}
        run = {
            **ref,
            "target_branch": "main",
            "pipeline_poll_seconds": 5,
            "rebase_poll_seconds": 1,
            "failed": False,
        }
        outcome = {"pipeline_id": batch.pipeline_id, "sha": batch.sha, "status": "success"}
        again = [
            ("workflow-select", run),
            ("workflow-build", ref),
            ("workflow-verdict", {**ref, "pipeline": outcome}),
            ("workflow-land", ref),
            ("workflow-release", run),
        ]
        answers = {}
        for function, payload in again:
            response = stack.client("lambda").invoke(
                FunctionName=stack.names.function(function), Payload=json.dumps(payload)
            )
            assert "FunctionError" not in response, function
            answers[function] = json.loads(response["Payload"].read())

        assert answers["workflow-select"]["empty"] is True
        assert answers["workflow-build"]["next"] == "release"
        assert answers["workflow-verdict"]["next"] == "release"
        assert answers["workflow-land"]["next"] == "release"
        assert answers["workflow-release"]["next_batch"] is None
        assert stack.gitlab.branch_sha(scenario.project, "main") == head
        assert scenario.batches() == [batch]
        assert {iid: len(scenario.notes(iid)) for iid in iids} == notes
        assert all(scenario.status(iid) is StatusCategory.MERGED for iid in iids)
        scenario.assert_invariants(replay=False)
    finally:
        scenario.close()


def test_a_canceled_batch_pipeline_puts_its_mrs_back_in_line(
    stack: LocalStack, scenario_name: str
) -> None:
    scenario = Scenario.open(stack, scenario_name, settings={"batch_size": 2})
    gitlab = stack.gitlab
    assert gitlab is not None
    try:
        iids = [scenario.open_mr(f"feature/{n}", {f"src/k{n}.py": f"K = {n}\n"}) for n in range(2)]
        scenario.wait_status(iids, StatusCategory.QUEUED)
        # Long enough to cancel it while it runs.
        gitlab.set_pipeline_rules(scenario.project, duration_s=400)
        scenario.start()
        scenario.wait_status(iids, StatusCategory.TESTING)
        first = scenario.batches()[0]

        def batch_pipeline_running() -> bool:
            return any(p["status"] == "running" for p in _batch_pipelines(scenario))

        scenario.wait_for(batch_pipeline_running, "the batch pipeline to run")
        project = python_gitlab.Gitlab(gitlab.url, private_token=gitlab.admin_token).projects.get(
            scenario.project.id
        )
        [running] = [p for p in _batch_pipelines(scenario) if p["status"] == "running"]
        gitlab.set_pipeline_rules(scenario.project, duration_s=20)
        project.pipelines.get(running["id"]).cancel()
        scenario.settle()

        assert scenario.store.get_batch(first.id).state is BatchState.CANCELLED
        assert all(scenario.status(iid) is StatusCategory.MERGED for iid in iids)
        for iid in iids:
            assert any("pipeline was canceled" in note for note in scenario.notes(iid))
            assert not any("out of the queue" in note for note in scenario.notes(iid))
        assert len(scenario.batches()) == 2
        scenario.assert_invariants()
    finally:
        scenario.close()


def test_a_flaky_retry_of_a_culprit_found_last_reruns_its_own_commit(
    stack: LocalStack, scenario_name: str
) -> None:
    """Bisection finds the culprit at the end of the batch after its shorter prefix passed:
    the batch branch holds that prefix, so the retry must test the culprit's own commit
    again, not the prefix at the branch's head."""
    scenario = Scenario.open(
        stack,
        scenario_name,
        settings={"batch_size": 2, "flaky_retries": 1},
        conflict_pairs=[("src/cache.py", "src/eviction.py")],
    )
    try:
        iids = [
            scenario.open_mr("feature/cache", {"src/cache.py": "SIZE = 10\n"}),
            scenario.open_mr("feature/eviction", {"src/eviction.py": "LRU = True\n"}),
        ]
        scenario.wait_status(iids, StatusCategory.QUEUED)
        scenario.start()
        scenario.settle(timeout=120)

        [batch] = scenario.batches()
        culprit = batch.order[1]
        retried = [s for s in batch.steps if s.kind.value == "retried"]
        assert len(retried) == 1
        assert retried[0].sha == batch.sha  # the whole batch, the culprit's commit
        tested = [(s.sha, s.status) for s in batch.steps if s.kind.value == "tested"]
        assert tested[-2:] == [(batch.build.prefix_sha(1), "success"), (batch.sha, "failed")]  # type: ignore[union-attr]
        assert scenario.status(culprit) is StatusCategory.REJECTED
        assert scenario.status(batch.order[0]) is StatusCategory.MERGED
        scenario.assert_invariants()
    finally:
        scenario.close()
