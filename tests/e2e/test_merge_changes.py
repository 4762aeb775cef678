"""The batch strategy when the world changes under a running batch: the target moves, an MR
gets new commits, is made draft or closed, GitLab's webhooks come twice, out of order or
not at all. The real state machine in moto's interpreter, the real handlers, GitLab played
by the simulator with real git and simulated CI."""

from __future__ import annotations

import contextlib
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import gitlab
import pytest

from local.gitlab_sim import GitLabSimulator
from local.stack import LocalStack
from merge_assist.queue.models import Batch, BatchState, BatchStep, ReasonCode, StatusCategory
from tests.e2e.merge_queue import Scenario

pytestmark = pytest.mark.e2e

POLL_SECONDS = 5
# Simulated CI seconds (x0.05 on the wall clock): a short pipeline, and one long enough
# for something to happen while the batch waits for it.
SHORT_CI = 20
LONG_CI = 100  # ~5 s
# Held until the test lets it finish (finish_pipelines_within): however slow the machine,
# the pipeline still runs when what the test does mid-batch has been done.
HELD_CI = 20_000  # ~1000 s
# A change made mid-batch once the dispatcher caught up (~2 s) and the workflow registered
# a fresh wait or handed over between two (up to one poll interval, plus a slow poll): it
# must beat the batch's pipeline by a wide margin for "the wait was interrupted" to be told
# from "the pipeline ended".
MID_BATCH_CI = 400  # ~20 s, canceled once the scenario is done with it
QUEUED_NOTE = "has queued this merge request"
MERGED_NOTE = "merged this merge request into `main`"
NOT_READY_LABEL = "Merge Assist: Not Ready"
READY_LABEL = "Merge Assist: Ready to Merge"


STACK_SETTINGS = {"web_dir": None, "pipeline_poll_seconds": POLL_SECONDS}


# -- helpers ----------------------------------------------------------------------------


def _sim(stack: LocalStack) -> GitLabSimulator:
    assert stack.gitlab is not None
    return stack.gitlab


def _steps(scenario: Scenario) -> list[tuple[str, str, list[int], str | None, str | None, str]]:
    """Every batch's steps, for failure messages and reports."""
    return [
        (b.id[-6:], s.kind.value, s.merge_requests, s.status, s.sha and s.sha[:8], s.note)
        for b in scenario.batches()
        for s in b.steps
    ]


def _kinds(batch: Batch) -> list[str]:
    return [step.kind.value for step in batch.steps]


def _of_kind(batch: Batch, kind: str) -> list[BatchStep]:
    return [step for step in batch.steps if step.kind.value == kind]


BATCH_REF_PREFIX = "merge-assist/batch/"


def _pipelines(scenario: Scenario, sha: str, *, batch_only: bool = False) -> list[dict[str, Any]]:
    """The simulator's pipelines for ``sha``; ``batch_only``: those on a batch branch (not
    the target's own pipeline for the same commit once it landed)."""
    gitlab_sim = _sim(scenario.stack)
    with gitlab_sim.store.lock:
        return [
            {
                "id": p.id,
                "ref": p.ref,
                "status": p.status,
                "finished_at": p.finished_at,
            }
            for p in gitlab_sim.store.pipelines.values()
            if p.project_id == scenario.project.id
            and p.sha == sha
            and (not batch_only or p.ref.startswith(BATCH_REF_PREFIX))
        ]


def _batch_pipelines(scenario: Scenario) -> list[dict[str, Any]]:
    gitlab_sim = _sim(scenario.stack)
    with gitlab_sim.store.lock:
        return [
            {"id": p.id, "sha": p.sha, "status": p.status}
            for p in gitlab_sim.store.pipelines.values()
            if p.project_id == scenario.project.id and p.ref.startswith(BATCH_REF_PREFIX)
        ]


def _simulator_time(stamp: str) -> datetime:
    """The simulator's timestamps (``2026-01-01T00:00:00.000Z``) as aware datetimes."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _wait_testing(scenario: Scenario, timeout: float = 60) -> Batch:
    """The running batch once it waits for its pipeline and that pipeline runs."""
    found: list[Batch] = []

    def testing() -> bool:
        for batch in scenario.batches():
            if batch.state is BatchState.TESTING and batch.testing_sha is not None:
                statuses = [p["status"] for p in _pipelines(scenario, batch.testing_sha)]
                if "running" in statuses:
                    found[:] = [batch]
                    return True
        return False

    scenario.wait_for(testing, "a batch testing with its pipeline running", timeout)
    return found[0]


def _queue_empty(scenario: Scenario) -> bool:
    sqs = scenario.stack.client("sqs")
    url = sqs.get_queue_url(QueueName=scenario.stack.names.project_queue(scenario.project.id))[
        "QueueUrl"
    ]
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return all(int(value) == 0 for value in attributes.values())


def _wait_caught_up(scenario: Scenario, timeout: float = 30) -> None:
    """Until GitLab has delivered every webhook and the dispatcher has handled them all (the
    dispatcher's own comments make more, so until both stay quiet a moment): what a
    developer acting a few seconds after the batch started meets."""
    quiet: list[int] = [0]

    def delivered() -> bool:
        return all(
            delivery.sent or delivery.dropped or delivery.error
            for delivery in scenario.deliveries()
        )

    def caught_up() -> bool:
        quiet[0] = quiet[0] + 1 if delivered() and _queue_empty(scenario) else 0
        return quiet[0] >= 3

    scenario.wait_for(caught_up, "the dispatcher to catch up with GitLab's webhooks", timeout)


def _wait_fresh_pipeline_wait(scenario: Scenario, sha: str, timeout: float = 20) -> None:
    """Until the workflow has just registered a new wait for the pipeline of ``sha`` (it does
    so again after every poll interval). A change made now reaches the dispatcher while that
    wait's task token is stored, so the dispatcher itself interrupts the wait (a change made
    between two waits is left to the next wait: the draft scenario makes one)."""
    store = scenario.store
    project_id = scenario.project.id
    current = store.get_task_token(project_id, sha)

    def fresh() -> bool:
        token = store.get_task_token(project_id, sha)
        return token is not None and token != current

    scenario.wait_for(fresh, f"a fresh wait for the pipeline of {sha[:8]}", timeout)


def _cancel(scenario: Scenario, pipelines: list[dict[str, Any]]) -> None:
    """Cancel pipelines no one waits for any more, as GitLab's auto-cancel of redundant
    pipelines would, so they do not hold up the scenarios that follow."""
    project = _admin_client(scenario.stack).projects.get(scenario.project.id)
    for pipeline in pipelines:
        project.pipelines.get(pipeline["id"]).cancel()


def _file_on_main(scenario: Scenario, path: str) -> bytes | None:
    return _sim(scenario.stack).read_file(scenario.project, "main", path)


def _admin_client(stack: LocalStack) -> gitlab.Gitlab:
    return gitlab.Gitlab(stack.gitlab_url, private_token=_sim(stack).admin_token)


def _count(notes: list[str], text: str) -> int:
    return sum(1 for note in notes if text in note)


def _queue_all(scenario: Scenario, names: str = "abc") -> list[int]:
    iids = [scenario.open_mr(f"feature/{n}", {f"src/{n}.py": f"{n.upper()} = 1\n"}) for n in names]
    scenario.wait_status(iids, StatusCategory.QUEUED)
    return iids


# -- scenarios --------------------------------------------------------------------------


def test_a_batch_whose_target_moved_is_rebuilt_on_the_new_target_and_tested_again(
    stack: LocalStack, scenario_name: str
) -> None:
    scenario = Scenario.open(stack, scenario_name, settings={"batch_size": 5})
    gitlab_sim = _sim(stack)
    try:
        iids = _queue_all(scenario)
        gitlab_sim.set_pipeline_rules(scenario.project, duration_s=LONG_CI)
        scenario.start()
        first = _wait_testing(scenario)
        assert first.build is not None
        assert first.build.target_sha == gitlab_sim.branch_sha(scenario.project, "main")

        # A maintainer pushes straight to main while the batch's pipeline runs.
        hotfix = gitlab_sim.commit_files(
            scenario.project,
            "main",
            {"docs/hotfix.md": "hotfix\n"},
            message="Hotfix straight to main",
            author="root",
        )
        gitlab_sim.set_pipeline_rules(scenario.project, duration_s=SHORT_CI)
        scenario.settle()
        steps = _steps(scenario)

        for iid in iids:
            assert scenario.status(iid) is StatusCategory.MERGED, steps
            assert scenario.gitlab_mr(iid)["state"] == "merged"
            assert _count(scenario.notes(iid), MERGED_NOTE) == 1
        [batch] = scenario.batches()
        assert batch.state is BatchState.LANDED, steps
        assert sorted(batch.landed) == sorted(iids)
        # The compare-and-swap push failed: rebuilt on the hotfix, tested again, landed.
        [rebuilt] = _of_kind(batch, "rebuilt")
        assert "target branch moved" in rebuilt.note, steps
        built = _of_kind(batch, "built")
        assert [step.sha for step in built] == [first.sha, batch.sha], steps
        assert batch.build is not None
        assert batch.build.target_sha == hotfix
        tested = _of_kind(batch, "tested")
        assert [(step.sha, step.status) for step in tested] == [
            (first.sha, "success"),
            (batch.sha, "success"),
        ], steps
        assert _kinds(batch).index("rebuilt") > _kinds(batch).index("tested")
        # main holds the hotfix and the three MRs, as the second tested commit exactly.
        assert gitlab_sim.branch_sha(scenario.project, "main") == batch.sha
        assert _file_on_main(scenario, "docs/hotfix.md") == b"hotfix\n"
        for name in "abc":
            assert _file_on_main(scenario, f"src/{name}.py") == f"{name.upper()} = 1\n".encode()
        [landing] = scenario.log.by(scenario.bot_id)
        assert (landing.before, landing.after) == (hotfix, batch.sha)
        scenario.assert_invariants()
    finally:
        scenario.close()


def test_an_mr_pushed_to_mid_batch_leaves_it_and_lands_later_with_its_new_commit(
    stack: LocalStack, scenario_name: str
) -> None:
    scenario = Scenario.open(stack, scenario_name, settings={"batch_size": 5})
    gitlab_sim = _sim(stack)
    try:
        a, b, c = _queue_all(scenario)
        gitlab_sim.set_pipeline_rules(scenario.project, duration_s=MID_BATCH_CI)
        scenario.start()
        first = _wait_testing(scenario)
        assert first.testing_sha is not None
        assert scenario.status(b) is StatusCategory.TESTING
        _wait_caught_up(scenario)
        _wait_fresh_pipeline_wait(scenario, first.testing_sha)
        gitlab_sim.set_pipeline_rules(scenario.project, duration_s=LONG_CI)  # its new pipeline

        pushed = scenario.push("feature/b", {"src/b.py": "B = 2\n"})
        scenario.wait_for(
            lambda: any("rebuilt" in _kinds(batch) for batch in scenario.batches()),
            "the batch to be rebuilt without the pushed MR",
        )
        # Out of the batch at once, not ready while its new pipeline runs.
        left = scenario.state(b)
        assert left is not None
        assert left.status is StatusCategory.NOT_READY, _steps(scenario)
        assert left.batch_id is None
        assert [r.code for r in left.reasons] == [ReasonCode.PIPELINE]
        assert left.sha == pushed
        original = _pipelines(scenario, first.testing_sha)
        assert original, "the batch's first pipeline"
        assert all(p["status"] == "running" for p in original), original
        _cancel(scenario, original)
        gitlab_sim.set_pipeline_rules(scenario.project, duration_s=SHORT_CI)

        # Queued again once its new pipeline passes, and merged by the next batch.
        scenario.wait_status([a, b, c], StatusCategory.MERGED, timeout=60)
        scenario.settle()
        steps = _steps(scenario)
        for iid in (a, b, c):
            assert scenario.status(iid) is StatusCategory.MERGED, steps
            assert scenario.gitlab_mr(iid)["state"] == "merged"
        notes = scenario.notes(b)
        assert _count(notes, "out of batch") == 1, notes
        dropped = next(note for note in notes if "out of batch" in note)
        assert "new commits were pushed" in dropped
        assert _count(notes, MERGED_NOTE) == 1
        assert scenario.gitlab_mr(b)["sha"] == pushed
        assert _file_on_main(scenario, "src/b.py") == b"B = 2\n"

        first_batch, second_batch = scenario.batches()
        assert first_batch.id == first.id
        assert sorted(first_batch.landed) == [a, c], steps
        assert first_batch.dropped == [b], steps
        assert second_batch.landed == [b], steps
        [rebuilt] = _of_kind(first_batch, "rebuilt")
        assert rebuilt.merge_requests == [b]
        # The wait was interrupted (that pipeline still ran when the batch was rebuilt, see
        # above): the first build's pipeline was never judged.
        assert all(step.sha != first.testing_sha for step in _of_kind(first_batch, "tested"))
        built = _of_kind(first_batch, "built")
        staying = [iid for iid in first.members if iid != b]  # in the order they queued
        assert [step.merge_requests for step in built] == [first.members, staying], steps
        scenario.assert_invariants()
    finally:
        # Whatever happened, the next scenario starts on a quiet stack.
        with contextlib.suppress(AssertionError):
            scenario.settle(timeout=30)
        scenario.close()


def test_mrs_made_draft_or_closed_mid_batch_leave_it_and_the_rest_land(
    stack: LocalStack, scenario_name: str
) -> None:
    scenario = Scenario.open(stack, scenario_name, settings={"batch_size": 5})
    gitlab_sim = _sim(stack)
    try:
        a, drafted, closed, d = _queue_all(scenario, "abcd")
        gitlab_sim.set_pipeline_rules(scenario.project, duration_s=MID_BATCH_CI)
        scenario.start()
        first = _wait_testing(scenario)
        assert first.testing_sha is not None
        assert sorted(first.members) == [a, drafted, closed, d]
        _wait_caught_up(scenario)
        # The draft is made while no wait is registered: between one wait's timeout and the
        # next one (GitLab answers the poll in between slowly, so that lasts seconds). No
        # task token to resume then; the next wait must notice the MR left.
        gitlab_sim.inject_fault(
            rf"^/projects/{scenario.project.id}/pipelines$", method="GET", latency_s=3, times=1
        )
        store = scenario.store
        scenario.wait_for(
            lambda: store.get_task_token(scenario.project.id, first.testing_sha) is None,
            "the wait to time out and hand over to CheckPipeline",
            timeout=2 * POLL_SECONDS,
        )
        gitlab_sim.set_pipeline_rules(scenario.project, duration_s=LONG_CI)  # the rebuilds'

        # Their authors, through the API as any GitLab client would.
        project = _admin_client(stack).projects.get(scenario.project.id)
        draft = project.mergerequests.get(drafted)
        draft.title = f"Draft: {draft.title}"
        draft.save()
        scenario.wait_for(
            lambda: "rebuilt" in _kinds(scenario.batches()[0]),
            "the batch to be rebuilt without the draft",
            timeout=30,
        )
        # It did not wait for the pipeline of a commit no one will land.
        original = _pipelines(scenario, first.testing_sha)
        assert all(p["status"] == "running" for p in original), (original, _steps(scenario))
        _cancel(scenario, original)
        # The other one is closed while the batch is rebuilt or tests again.
        close = project.mergerequests.get(closed)
        close.state_event = "close"
        close.save()
        scenario.wait_status([closed], StatusCategory.NOT_READY, timeout=30)
        gitlab_sim.set_pipeline_rules(scenario.project, duration_s=SHORT_CI)

        scenario.settle()
        steps = _steps(scenario)
        for iid in (a, d):
            assert scenario.status(iid) is StatusCategory.MERGED, steps
            assert scenario.gitlab_mr(iid)["state"] == "merged"
        [batch] = scenario.batches()
        assert sorted(batch.landed) == [a, d], steps
        assert sorted(batch.dropped) == [drafted, closed], steps
        assert all(step.sha != first.testing_sha for step in _of_kind(batch, "tested"))
        assert gitlab_sim.branch_sha(scenario.project, "main") == batch.sha
        for iid, code, told, gitlab_state, is_draft in (
            (drafted, ReasonCode.DRAFT, "it was marked as draft", "opened", True),
            (closed, ReasonCode.CLOSED, "it was closed", "closed", False),
        ):
            out = scenario.state(iid)
            assert out is not None
            assert out.status is StatusCategory.NOT_READY, steps
            assert out.batch_id is None
            assert code in [r.code for r in out.reasons], out.reasons
            gitlab_mr = scenario.gitlab_mr(iid)
            assert (gitlab_mr["state"], gitlab_mr["draft"]) == (gitlab_state, is_draft)
            assert NOT_READY_LABEL in gitlab_mr["labels"]
            assert READY_LABEL not in gitlab_mr["labels"]
            notes = scenario.notes(iid)
            assert _count(notes, "out of batch") == 1, notes
            assert told in next(note for note in notes if "out of batch" in note)
            assert _count(notes, MERGED_NOTE) == 0
        assert _file_on_main(scenario, "src/b.py") is None
        assert _file_on_main(scenario, "src/c.py") is None
        scenario.assert_invariants()
    finally:
        gitlab_sim.clear_faults()
        with contextlib.suppress(AssertionError):
            scenario.settle(timeout=30)
        scenario.close()


def _executions(scenario: Scenario) -> list[dict[str, Any]]:
    """The state machine executions of the scenario's batches (named after them)."""
    sfn = scenario.stack.client("stepfunctions")
    prefix = f"{scenario.project.id}-main-"
    found: list[dict[str, Any]] = []
    for arn in scenario.stack.endpoints()["state_machines"].values():
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn):
            found += [e for e in page["executions"] if e["name"].startswith(prefix)]
    return sorted(found, key=lambda e: e["startDate"])


def test_webhooks_replayed_and_reordered_mid_batch_change_nothing(
    stack: LocalStack, scenario_name: str
) -> None:
    scenario = Scenario.open(stack, scenario_name, settings={"batch_size": 2})
    gitlab_sim = _sim(stack)
    try:
        iids = _queue_all(scenario)
        # Held so that the replay is posted while the first batch still tests.
        gitlab_sim.set_pipeline_rules(scenario.project, duration_s=HELD_CI)
        scenario.start()
        first = _wait_testing(scenario)
        testing = {iid for iid in iids if scenario.status(iid) is StatusCategory.TESTING}
        assert len(testing) == 2
        assert first.testing_sha is not None

        # Everything GitLab sent so far, again: as "Resend" (same Idempotency-Key), then as
        # new deliveries of the same events, newest first.
        deliveries = scenario.deliveries()
        assert len(deliveries) > 10
        for delivery in deliveries:
            gitlab_sim.resend_delivery(delivery.id)
        for delivery in reversed(deliveries):
            scenario.deliver_anew(delivery)
        # All of it reached Merge Assist while the batch still tested.
        original = _pipelines(scenario, first.testing_sha)
        assert all(p["status"] == "running" for p in original), (original, _steps(scenario))
        _wait_caught_up(scenario)
        gitlab_sim.set_pipeline_rules(scenario.project, duration_s=SHORT_CI)
        assert gitlab_sim.finish_pipelines_within(scenario.project, SHORT_CI) >= 1

        scenario.settle()
        steps = _steps(scenario)
        batches = scenario.batches()
        assert len(batches) == 2, steps
        landed = [iid for batch in batches for iid in batch.landed]
        assert sorted(landed) == sorted(iids), steps  # each merged exactly once
        assert set(batches[0].landed) == testing
        # The replay changed nothing: the first batch landed the commit it was testing.
        assert batches[0].id == first.id
        assert batches[0].sha == first.testing_sha, steps
        for batch in batches:
            assert batch.state is BatchState.LANDED
            assert not {"rebuilt", "dropped", "rejected"} & set(_kinds(batch)), steps
        for earlier, later in itertools.pairwise(batches):
            assert later.created_at >= earlier.updated_at, steps
        for iid in iids:
            assert scenario.status(iid) is StatusCategory.MERGED
            assert scenario.gitlab_mr(iid)["state"] == "merged"
            notes = scenario.notes(iid)
            assert _count(notes, QUEUED_NOTE) == 1, notes
            assert _count(notes, MERGED_NOTE) == 1, notes
        # One execution per batch, each started once the one before had finished its
        # batch (it starts the next from its last step, so the two overlap by that step).
        executions = _executions(scenario)
        assert [e["name"] for e in executions] == [batch.id for batch in batches]
        assert all(e["status"] == "SUCCEEDED" for e in executions), executions
        for earlier, later_run in zip(batches, executions[1:], strict=False):
            assert later_run["startDate"] >= earlier.updated_at, (executions, steps)
        assert len(_batch_pipelines(scenario)) == 2
        scenario.assert_invariants()
    finally:
        scenario.close()


def test_a_lost_pipeline_webhook_costs_one_poll_interval(
    stack: LocalStack, scenario_name: str
) -> None:
    scenario = Scenario.open(stack, scenario_name, settings={"batch_size": 5})
    gitlab_sim = _sim(stack)
    try:
        iids = [
            scenario.open_mr(f"feature/{n}", {f"src/{n}.py": f"{n.upper()} = 1\n"}) for n in "ab"
        ]
        scenario.wait_status(iids, StatusCategory.QUEUED)
        # Long enough that the pipeline still runs when the wait starts, shorter than a poll.
        gitlab_sim.set_pipeline_rules(scenario.project, duration_s=60)
        gitlab_sim.drop_webhooks("Pipeline Hook")
        started = datetime.now(UTC)
        scenario.start()
        scenario.settle()
        steps = _steps(scenario)

        for iid in iids:
            assert scenario.status(iid) is StatusCategory.MERGED, steps
            assert scenario.gitlab_mr(iid)["state"] == "merged"
        [batch] = scenario.batches()
        assert batch.state is BatchState.LANDED
        assert sorted(batch.landed) == sorted(iids)
        assert gitlab_sim.branch_sha(scenario.project, "main") == batch.sha
        [built] = _of_kind(batch, "built")
        [tested] = _of_kind(batch, "tested")
        assert (tested.sha, tested.status) == (batch.sha, "success")
        # The webhook never came: the workflow asked GitLab after one poll interval.
        assert batch.sha is not None
        [pipeline] = [
            p for p in _pipelines(scenario, batch.sha, batch_only=True) if p["status"] == "success"
        ]
        dropped = [
            d
            for d in scenario.deliveries()
            if d.event_name == "Pipeline Hook"
            and d.body["object_attributes"]["id"] == pipeline["id"]
        ]
        assert dropped, "the batch pipeline's webhook was sent"
        assert all(d.dropped and d.status_code is None for d in dropped)
        assert tested.at - built.at >= timedelta(seconds=POLL_SECONDS), steps
        assert tested.at - started >= timedelta(seconds=POLL_SECONDS)
        finished = _simulator_time(pipeline["finished_at"])
        assert finished < tested.at, (finished, tested.at)
        gitlab_sim.clear_faults()
        scenario.assert_invariants()
    finally:
        gitlab_sim.clear_faults()
        scenario.close()
