"""A bisection round in the workflow's ``ReachVerdict`` step, with the store on moto: the
round's prefixes pushed at once, each to a branch of its own; their answers taken shortest
first; the pipelines a red answer makes moot stopped; a retried step changing nothing."""

from __future__ import annotations

from typing import Any

import pytest

from merge_assist.admin.ports import Store
from merge_assist.platform.config import ProjectConfig, Strategy
from merge_assist.platform.events import PipelineSnapshot
from merge_assist.queue.batch_plan import BatchBuild, GitIdentity, IncludedMergeRequest
from merge_assist.queue.comments import Transition
from merge_assist.queue.models import Batch, BatchState, BatchStepKind, StatusCategory
from merge_assist.queue.pipeline_wait import PipelineOutcome, lock_ttl
from merge_assist.queue.workflow.context import Next, WorkflowContext
from merge_assist.queue.workflow.verdict import VerdictInput, reach_verdict
from tests.conftest import MakeMR
from tests.integration.conftest import FakeClock
from tests.integration.test_workflow_metrics import NoExecutions
from tests.recording_meter import RecordingMeter

PROJECT = 1
BATCH = "batch-1"
BRANCH = "merge-assist/batch/main"
IIDS = [1, 2, 3, 4, 5, 6]


def tip(iid: int) -> str:
    return f"{iid + 100:040x}"


class FakeGitLab:
    """Pipelines by sha, as GitLab lists them (newest first), and what was cancelled."""

    def __init__(self) -> None:
        self.pipelines: list[PipelineSnapshot] = []
        self.cancelled: list[int] = []
        self.transitions: list[tuple[int, Transition]] = []

    def started(self, sha: str, ref: str) -> None:
        pipeline_id = len(self.pipelines) + 1
        self.pipelines.append(PipelineSnapshot(id=pipeline_id, sha=sha, ref=ref, status="running"))

    def pipelines_for_sha(
        self, project_id: int, sha: str, ref: str | None = None
    ) -> list[PipelineSnapshot]:
        found = [p for p in self.pipelines if p.sha == sha and (ref is None or p.ref == ref)]
        return sorted(found, key=lambda p: -p.id)

    def cancel_pipeline(self, project_id: int, pipeline_id: int) -> None:
        self.cancelled.append(pipeline_id)
        self.pipelines = [
            p.model_copy(update={"status": "canceled"}) if p.id == pipeline_id else p
            for p in self.pipelines
        ]

    def apply_transition(
        self, project_id: int, iid: int, transition: Transition, *, key: str, **_: Any
    ) -> None:
        self.transitions.append((iid, transition))


class FakeRepository:
    """A push to a branch starts a pipeline, as GitLab's does, unless the branch already
    holds the commit."""

    def __init__(self, gitlab: FakeGitLab) -> None:
        self.gitlab = gitlab
        self.heads: dict[str, str] = {}
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
        if self.heads.get(branch) != sha:
            self.heads[branch] = sha
            self.gitlab.started(sha, branch)


@pytest.fixture
def gitlab() -> FakeGitLab:
    return FakeGitLab()


@pytest.fixture
def repository(gitlab: FakeGitLab) -> FakeRepository:
    return FakeRepository(gitlab)


@pytest.fixture
def ctx(
    store: Store, fake_clock: FakeClock, gitlab: FakeGitLab, repository: FakeRepository
) -> WorkflowContext:
    return WorkflowContext(
        store=store,
        gitlab=gitlab,  # type: ignore[arg-type]
        executions=NoExecutions(),
        clock=fake_clock,
        identity=GitIdentity(name="Merge Assist", email="bot@example.test"),
        repository=lambda config: repository,  # type: ignore[arg-type,return-value]
        meter=RecordingMeter(),
    )


def _red_batch_of_six(
    store: Store, make_mr: MakeMR, gitlab: FakeGitLab, repository: FakeRepository, ways: int
) -> None:
    config = ProjectConfig(project_id=PROJECT, bisect_ways=ways)
    store.save_project(config)
    included = tuple(
        IncludedMergeRequest(iid=iid, head_sha=f"{iid:040x}", tip_sha=tip(iid)) for iid in IIDS
    )
    build = BatchBuild(target_sha="0" * 40, sha=tip(6), included=included)
    store.save_batch(
        Batch(
            id=BATCH,
            project_id=PROJECT,
            target_branch="main",
            strategy=Strategy.BATCH,
            merge_requests=IIDS,
            build=build,
            sha=build.sha,
            batch_branch=BRANCH,
            test_ref=BRANCH,
            testing_sha=build.sha,
            tested_length=6,
            state=BatchState.TESTING,
        )
    )
    store.acquire_branch_lock(PROJECT, "main", BATCH, lock_ttl(config))
    for iid in IIDS:
        store.save_merge_request(make_mr(iid, status=StatusCategory.TESTING, batch_id=BATCH))
    repository.heads[BRANCH] = build.sha
    gitlab.started(build.sha, BRANCH)


def _answer(ctx: WorkflowContext, gitlab: FakeGitLab, sha: str, status: str) -> Any:
    [pipeline] = gitlab.pipelines_for_sha(PROJECT, sha)[:1]
    gitlab.pipelines = [
        p.model_copy(update={"status": status}) if p.id == pipeline.id else p
        for p in gitlab.pipelines
    ]
    outcome = PipelineOutcome(pipeline_id=pipeline.id, sha=sha, status=status)
    return reach_verdict(ctx, VerdictInput(project_id=PROJECT, batch_id=BATCH, pipeline=outcome))


def test_a_round_starts_its_prefixes_at_once_each_on_a_branch_of_its_own(
    ctx: WorkflowContext,
    store: Store,
    make_mr: MakeMR,
    gitlab: FakeGitLab,
    repository: FakeRepository,
) -> None:
    _red_batch_of_six(store, make_mr, gitlab, repository, ways=3)

    step = _answer(ctx, gitlab, tip(6), "failed")

    # Cut in three: the first 2 and the first 4, both running now.
    assert repository.pushed == [(BRANCH, tip(2)), (f"{BRANCH}-bisect-1", tip(4))]
    running = [(p.sha, p.ref) for p in gitlab.pipelines if p.status == "running"]
    assert running == [(tip(2), BRANCH), (tip(4), f"{BRANCH}-bisect-1")]
    assert (step.next, step.sha, step.ref) == (Next.TEST, tip(2), BRANCH)
    batch = store.get_batch(BATCH)
    assert batch.under_test == [tip(2), tip(4)]
    [bisected] = [s for s in batch.steps if s.kind is BatchStepKind.BISECTED]
    assert bisected.note == "testing the first 2 and the first 4 of 6, at once"

    # A retried step finds the round under way: nothing pushed again, nothing recorded twice.
    again = _answer(ctx, gitlab, tip(6), "failed")
    assert (again.sha, again.ref) == (tip(2), BRANCH)
    assert len(gitlab.pipelines) == 3
    assert store.get_batch(BATCH).steps == batch.steps

    # The first 2 passed: the first 4, already running, is awaited next on its branch.
    step = _answer(ctx, gitlab, tip(2), "success")
    assert (step.next, step.sha, step.ref) == (Next.TEST, tip(4), f"{BRANCH}-bisect-1")
    assert len(gitlab.pipelines) == 3  # nothing new started

    # The first 4 failed: MR 3 or 4 broke it; the next round tests the first 3 alone.
    step = _answer(ctx, gitlab, tip(4), "failed")
    assert (step.sha, step.ref) == (tip(3), BRANCH)
    step = _answer(ctx, gitlab, tip(3), "success")
    assert step.next is Next.LAND
    batch = store.get_batch(BATCH)
    assert batch.land_length == 3
    assert batch.rejected == [4]
    assert batch.requeued == [5, 6]
    assert store.get_merge_request(PROJECT, 4).status is StatusCategory.REJECTED
    assert gitlab.cancelled == []


def test_a_red_answer_stops_the_longer_prefixes_of_its_round(
    ctx: WorkflowContext,
    store: Store,
    make_mr: MakeMR,
    gitlab: FakeGitLab,
    repository: FakeRepository,
) -> None:
    _red_batch_of_six(store, make_mr, gitlab, repository, ways=4)

    _answer(ctx, gitlab, tip(6), "failed")
    assert [sha for _, sha in repository.pushed] == [tip(2), tip(3), tip(5)]
    refs = [ref for ref, _ in repository.pushed]
    assert refs == [BRANCH, f"{BRANCH}-bisect-1", f"{BRANCH}-bisect-2"]

    # The first 2 failed: the prefixes of 3 and 5 hold it, their pipelines are stopped.
    step = _answer(ctx, gitlab, tip(2), "failed")
    stopped = {p.sha for p in gitlab.pipelines if p.status == "canceled"}
    assert stopped == {tip(3), tip(5)}
    assert (step.sha, step.ref) == (tip(1), BRANCH)
    assert store.get_batch(BATCH).under_test == [tip(1)]
