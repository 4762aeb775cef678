"""What the dispatcher and the workflow steps count, with the store on moto: each metric
once per transition that happened, and nothing again when a step is retried."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from functions.watcher import app as watcher
from functions.watcher import wiring as watcher_wiring
from local.runtime import make_context
from merge_assist.admin.ports import Store
from merge_assist.platform.config import ProjectConfig, Strategy
from merge_assist.platform.events import EventKind, MergeRequestSnapshot, QueueEvent
from merge_assist.platform.metrics import Metric
from merge_assist.queue.batch_plan import BatchBuild, GitIdentity, IncludedMergeRequest
from merge_assist.queue.comments import Transition
from merge_assist.queue.dispatch import Dispatcher
from merge_assist.queue.models import (
    Batch,
    BatchState,
    BatchStep,
    BatchStepKind,
    Reason,
    ReasonCode,
    StatusCategory,
)
from merge_assist.queue.pipeline_wait import lock_ttl
from merge_assist.queue.readiness import MergeRequestFacts
from merge_assist.queue.watcher import overdue_batches
from merge_assist.queue.workflow import members
from merge_assist.queue.workflow.context import BatchRef, WorkflowContext, WorkflowInput
from merge_assist.queue.workflow.land import land
from merge_assist.queue.workflow.release import release
from merge_assist.queue.workflow.select import select
from tests.conftest import MakeMR
from tests.integration.conftest import START, Advance, FakeClock
from tests.recording_meter import RecordingMeter

PROJECT = 1
BOT = 99
BATCH = "batch-1"


class FakeGitLab:
    def __init__(self) -> None:
        self.facts: dict[int, MergeRequestFacts] = {}
        self.transitions: list[tuple[int, Transition]] = []

    def merge_request_facts(self, project_id: int, iid: int) -> MergeRequestFacts:
        return self.facts[iid]

    def apply_transition(
        self,
        project_id: int,
        iid: int,
        transition: Transition,
        *,
        key: str,
        may_exist: bool = False,
    ) -> None:
        self.transitions.append((iid, transition))

    def merge_request(self, project_id: int, iid: int) -> MergeRequestSnapshot:
        return MergeRequestSnapshot(iid=iid, state="opened", sha=f"{iid:040x}")

    def merge_requests(self, project_id: int, iids: list[int]) -> dict[int, MergeRequestSnapshot]:
        return {iid: self.merge_request(project_id, iid) for iid in iids}


class FakeRepository:
    def __init__(self) -> None:
        self.pushed: list[tuple[str, str]] = []

    def push(
        self,
        branch: str,
        sha: str,
        *,
        expected_old_sha: str | None,
        force: bool,
        skip_pipeline: bool = False,
    ) -> None:
        self.pushed.append((branch, sha))


class NoExecutions:
    def start(self, name: str, execution_input: dict[str, Any]) -> bool:
        return False

    def resume(self, task_token: str, output: dict[str, Any]) -> bool:
        return False


@pytest.fixture
def meter() -> RecordingMeter:
    return RecordingMeter()


@pytest.fixture
def gitlab() -> FakeGitLab:
    return FakeGitLab()


@pytest.fixture
def ctx(store: Store, fake_clock: FakeClock, gitlab: FakeGitLab, meter: RecordingMeter) -> Any:
    store.save_project(ProjectConfig(project_id=PROJECT))
    repository = FakeRepository()
    return WorkflowContext(
        store=store,
        gitlab=gitlab,  # type: ignore[arg-type]
        executions=NoExecutions(),
        clock=fake_clock,
        identity=GitIdentity(name="Merge Assist", email="bot@example.test"),
        repository=lambda config: repository,  # type: ignore[arg-type,return-value]
        meter=meter,
    )


def _batch(store: Store, iids: list[int], **fields: Any) -> Batch:
    included = tuple(
        IncludedMergeRequest(iid=iid, head_sha=f"{iid:040x}", tip_sha=f"{iid + 100:040x}")
        for iid in iids
    )
    batch = Batch(
        id=BATCH,
        project_id=PROJECT,
        target_branch="main",
        strategy=Strategy.BATCH,
        merge_requests=iids,
        build=BatchBuild(target_sha="0" * 40, sha=included[-1].tip_sha, included=included),
        **fields,
    )
    return store.save_batch(batch)


def _in_batch(store: Store, make_mr: MakeMR, iid: int, ready_for: timedelta) -> None:
    store.save_merge_request(
        make_mr(
            iid,
            status=StatusCategory.TESTING,
            batch_id=BATCH,
            ready_since=START - ready_for,
        )
    )


def test_a_ready_mr_is_counted_queued_once(
    store: Store, fake_clock: FakeClock, gitlab: FakeGitLab, meter: RecordingMeter
) -> None:
    store.save_project(ProjectConfig(project_id=PROJECT))
    gitlab.facts[1] = MergeRequestFacts.model_validate(
        {
            "iid": 1,
            "state": "opened",
            "target_branch": "main",
            "source_branch": "feature/1",
            "sha": "a" * 40,
            "assignee_ids": [BOT],
            "detailed_merge_status": "mergeable",
            "head_pipeline_status": "success",
            "approved": True,
        }
    )
    dispatcher = Dispatcher(
        store,
        gitlab,  # type: ignore[arg-type]
        NoExecutions(),
        fake_clock,
        BOT,
        meter=meter,
    )

    def event(key: str) -> QueueEvent:
        return QueueEvent(
            kind=EventKind.MERGE_REQUEST,
            idempotency_key=key,
            project_id=PROJECT,
            target_branch="main",
            merge_request=MergeRequestSnapshot(
                iid=1,
                state="opened",
                sha="a" * 40,
                source_branch="feature/1",
                target_branch="main",
                assignee_ids=[BOT],
            ),
        )

    first = dispatcher.handle(event("first")).state
    assert first is not None
    assert first.status is StatusCategory.QUEUED
    dispatcher.handle(event("first"))  # a redelivery
    dispatcher.handle(event("second"))  # already queued: not queued again
    assert meter.values(Metric.MERGE_REQUESTS_QUEUED) == [1]


def test_select_counts_the_batch_size_once(
    ctx: WorkflowContext, store: Store, make_mr: MakeMR, meter: RecordingMeter
) -> None:
    for iid in (1, 2, 3):
        store.save_merge_request(make_mr(iid))
    run = WorkflowInput(project_id=PROJECT, target_branch="main", batch_id=BATCH)
    assert select(ctx, run).merge_requests == [1, 2, 3]
    select(ctx, run)  # the step retried
    assert meter.values(Metric.BATCH_SIZE) == [3]


def test_a_landed_batch_counts_merges_time_to_merge_and_its_testing(
    ctx: WorkflowContext, store: Store, make_mr: MakeMR, meter: RecordingMeter
) -> None:
    _in_batch(store, make_mr, 1, timedelta(minutes=30))
    _in_batch(store, make_mr, 2, timedelta(minutes=10))
    tested = BatchStep(kind=BatchStepKind.TESTED, status="success")
    _batch(
        store,
        [1, 2],
        state=BatchState.LANDING,
        tested_length=2,
        land_length=2,
        steps=[tested],
    )
    land(ctx, BatchRef(project_id=PROJECT, batch_id=BATCH))
    assert meter.values(Metric.MERGE_REQUESTS_MERGED) == [1, 1]
    assert meter.values(Metric.TIME_TO_MERGE) == [1800, 600]
    # A green first run: no bisection, one pipeline for two merged MRs.
    assert meter.values(Metric.BISECTION_DEPTH) == [0]
    assert meter.values(Metric.PIPELINES_PER_MERGED_MR) == [0.5]

    meter.clear()
    land(ctx, BatchRef(project_id=PROJECT, batch_id=BATCH))  # the step retried
    release(ctx, WorkflowInput(project_id=PROJECT, target_branch="main", batch_id=BATCH))
    assert meter.records == []


def test_a_bisected_batch_counts_its_rounds_and_pipelines_per_merged_mr(
    ctx: WorkflowContext, store: Store, make_mr: MakeMR, meter: RecordingMeter
) -> None:
    for iid in (1, 2, 3, 4):
        _in_batch(store, make_mr, iid, timedelta(minutes=5))
    # 4 red, bisected to 2 (green), then to 3 (red): MR 3 broke it, 1 and 2 land.
    steps = [
        BatchStep(kind=BatchStepKind.TESTED, status="failed"),
        BatchStep(kind=BatchStepKind.BISECTED),
        BatchStep(kind=BatchStepKind.TESTED, status="success"),
        BatchStep(kind=BatchStepKind.BISECTED),
        BatchStep(kind=BatchStepKind.TESTED, status="failed"),
    ]
    _batch(store, [1, 2, 3, 4], state=BatchState.LANDING, land_length=2, steps=steps)
    land(ctx, BatchRef(project_id=PROJECT, batch_id=BATCH))
    assert meter.values(Metric.BISECTION_DEPTH) == [2]
    assert meter.values(Metric.PIPELINES_PER_MERGED_MR) == [1.5]
    assert meter.values(Metric.MERGE_REQUESTS_MERGED) == [1, 1]


def test_a_rejected_mr_is_counted_once(
    ctx: WorkflowContext, store: Store, make_mr: MakeMR, meter: RecordingMeter
) -> None:
    _in_batch(store, make_mr, 1, timedelta(minutes=5))
    batch = _batch(store, [1], state=BatchState.TESTING)
    config = store.get_project(PROJECT)
    reason = Reason(code=ReasonCode.CI_FAILED, message="its pipeline failed")
    members.reject(ctx, config, batch, 1, reason)
    members.reject(ctx, config, batch, 1, reason)  # the step retried: already out
    assert meter.values(Metric.MERGE_REQUESTS_REJECTED) == [1]
    assert Metric.MERGE_REQUESTS_MERGED not in meter.names()


def test_a_released_batch_that_merged_nothing_counts_bisection_only(
    ctx: WorkflowContext, store: Store, make_mr: MakeMR, meter: RecordingMeter
) -> None:
    _in_batch(store, make_mr, 1, timedelta(minutes=5))
    steps = [
        BatchStep(kind=BatchStepKind.TESTED, status="failed"),
        BatchStep(kind=BatchStepKind.RETRIED),
        BatchStep(kind=BatchStepKind.TESTED, status="failed"),
    ]
    _batch(store, [1], state=BatchState.TESTING, rejected=[1], steps=steps)
    run = WorkflowInput(project_id=PROJECT, target_branch="main", batch_id=BATCH)
    assert release(ctx, run).state is BatchState.FAILED
    release(ctx, run)  # the step retried
    assert meter.values(Metric.BISECTION_DEPTH) == [0]
    assert Metric.PIPELINES_PER_MERGED_MR not in meter.names()


def test_locks_held_past_the_ci_timeout_and_margin_are_overdue(
    store: Store, make_mr: MakeMR, advance: Advance, fake_clock: FakeClock
) -> None:
    config = store.save_project(
        ProjectConfig(project_id=PROJECT, target_branches=["main", "release", "idle"])
    )
    for branch, batch_id in (("main", "old"), ("release", "young")):
        store.save_batch(
            Batch(
                id=batch_id,
                project_id=PROJECT,
                target_branch=branch,
                strategy=Strategy.BATCH,
                merge_requests=[1],
                created_at=fake_clock.now(),
            )
        )
    store.acquire_branch_lock(PROJECT, "main", "old", lock_ttl(config))
    advance(lock_ttl(config) + timedelta(minutes=1))
    # Both locks renewed just now, as each step renews its batch's lock: the hold counts
    # from the batch's start, not from the last renewal.
    store.acquire_branch_lock(PROJECT, "main", "old", lock_ttl(config))
    store.acquire_branch_lock(PROJECT, "release", "young", lock_ttl(config))
    store.save_batch(store.get_batch("young").model_copy(update={"created_at": fake_clock.now()}))
    assert overdue_batches(store, [config], fake_clock.now()) == 1


def test_each_watcher_run_is_counted_with_its_overdue_locks(
    store: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Bot:
        def __init__(self, **_: object) -> None:
            pass

        def current_user_id(self) -> int:
            return BOT

    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setattr(watcher_wiring, "store", lambda: store)
    monkeypatch.setattr(watcher_wiring, "gitlab", Bot)
    capsys.readouterr()
    watcher.handler({"id": "run-1"}, make_context("test-watcher", 256, 60))

    emitted = {
        name: document[name]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith('{"_aws"')
        for document in [json.loads(line)]
        for name in ("WatcherRuns", "OverdueBatches")
        if name in document
    }
    assert emitted == {"WatcherRuns": [1.0], "OverdueBatches": [0.0]}
