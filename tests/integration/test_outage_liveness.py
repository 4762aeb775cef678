"""A GitLab outage costs time, never the queue: the release of a batch touches the store
alone, what authors are owed waits in the outbox, a batch whose execution died holding its
branch is released by the watcher, and an MR GitLab no longer has is recorded as gone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from merge_assist.admin.ports import Store
from merge_assist.admin.recovery import release_dead_batches
from merge_assist.admin.watch import GitLabUnreachable, Watcher
from merge_assist.platform.config import ProjectConfig, Strategy
from merge_assist.platform.errors import GitLabUnavailable, NotFoundError
from merge_assist.platform.events import EventKind, MergeRequestSnapshot, QueueEvent
from merge_assist.platform.metrics import NullMeter
from merge_assist.queue import notices
from merge_assist.queue.batch_plan import GitIdentity
from merge_assist.queue.comments import GONE, Transition
from merge_assist.queue.dispatch import Dispatcher
from merge_assist.queue.models import Batch, BatchState, StatusCategory
from merge_assist.queue.readiness import MergeRequestFacts
from merge_assist.queue.workflow.context import WorkflowContext, WorkflowInput
from merge_assist.queue.workflow.release import release
from tests.conftest import MakeMR
from tests.integration.conftest import FakeClock

PROJECT = 1
BOT = 99
BATCH = "batch-1"


class DownGitLab:
    """GitLab during an outage: every call fails as the gateway reports it, until ``up``."""

    def __init__(self) -> None:
        self.up = False
        self.told: list[tuple[int, str, bool]] = []
        self.facts: dict[int, MergeRequestFacts] = {}

    def _answer(self) -> None:
        if not self.up:
            raise GitLabUnavailable(None, "GitLab did not answer (ConnectionError)")

    def apply_transition(
        self,
        project_id: int,
        iid: int,
        transition: Transition,
        *,
        key: str,
        may_exist: bool = False,
    ) -> None:
        self._answer()
        self.told.append((iid, key, may_exist))

    def current_user_id(self) -> int:
        self._answer()
        return BOT

    def merge_request_facts(self, project_id: int, iid: int) -> MergeRequestFacts:
        self._answer()
        if iid not in self.facts:
            raise NotFoundError(f"!{iid} of project {project_id} not found")
        return self.facts[iid]


class Executions:
    def __init__(self, statuses: dict[str, str] | None = None) -> None:
        self.started: list[str] = []
        self.statuses = statuses or {}

    def start(self, name: str, execution_input: dict[str, Any]) -> bool:
        self.started.append(name)
        return True

    def resume(self, task_token: str, output: dict[str, Any]) -> bool:
        return False

    def status(self, name: str) -> str | None:
        return self.statuses.get(name)

    def stop(self, name: str, cause: str) -> bool:
        return False


@pytest.fixture
def gitlab() -> DownGitLab:
    return DownGitLab()


@pytest.fixture
def ctx(store: Store, fake_clock: FakeClock, gitlab: DownGitLab) -> WorkflowContext:
    store.save_project(ProjectConfig(project_id=PROJECT))
    return WorkflowContext(
        store=store,
        gitlab=gitlab,  # type: ignore[arg-type]
        executions=Executions(),
        clock=fake_clock,
        identity=GitIdentity(name="Merge Assist", email="bot@example.test"),
        repository=lambda config: None,  # type: ignore[arg-type,return-value]
    )


def _testing_batch(store: Store, make_mr: MakeMR, iids: list[int]) -> Batch:
    for iid in iids:
        store.save_merge_request(make_mr(iid, status=StatusCategory.TESTING, batch_id=BATCH))
    store.acquire_branch_lock(PROJECT, "main", BATCH, timedelta(minutes=90))
    return store.save_batch(
        Batch(
            id=BATCH,
            project_id=PROJECT,
            target_branch="main",
            strategy=Strategy.BATCH,
            merge_requests=iids,
            state=BatchState.TESTING,
        )
    )


def _failed_run() -> WorkflowInput:
    return WorkflowInput(project_id=PROJECT, target_branch="main", batch_id=BATCH, failed=True)


def test_a_failed_batch_is_released_while_gitlab_is_down(
    ctx: WorkflowContext, store: Store, make_mr: MakeMR, gitlab: DownGitLab
) -> None:
    _testing_batch(store, make_mr, [1, 2, 3])

    released = release(ctx, _failed_run())

    assert released.state is BatchState.FAILED
    assert store.get_branch_lock(PROJECT, "main") is None
    assert [store.get_merge_request(PROJECT, iid).status for iid in (1, 2, 3)] == [
        StatusCategory.QUEUED
    ] * 3
    # Owed, not lost: one notice per MR, keyed by the state change it tells of.
    owed = store.list_notices(PROJECT)
    assert [notice.iid for notice in owed] == [1, 2, 3]
    assert all("stopped on an error" in notice.comment for notice in owed)
    assert gitlab.told == []


def test_the_outbox_is_delivered_once_gitlab_is_back_and_only_once(
    ctx: WorkflowContext, store: Store, make_mr: MakeMR, gitlab: DownGitLab
) -> None:
    _testing_batch(store, make_mr, [1, 2])
    release(ctx, _failed_run())

    assert notices.deliver_pending(gitlab, store, PROJECT) == notices.Delivered(0, 2)  # type: ignore[arg-type]
    gitlab.up = True
    assert notices.deliver_pending(gitlab, store, PROJECT) == notices.Delivered(2, 0)  # type: ignore[arg-type]
    assert notices.deliver_pending(gitlab, store, PROJECT) == notices.Delivered(0, 0)  # type: ignore[arg-type]

    # Each may have reached GitLab unanswered before: the gateway looks for its marker.
    assert [(iid, may_exist) for iid, _, may_exist in gitlab.told] == [(1, True), (2, True)]
    assert store.list_notices(PROJECT) == []


def test_a_retried_release_changes_nothing_and_owes_nothing_twice(
    ctx: WorkflowContext, store: Store, make_mr: MakeMR
) -> None:
    _testing_batch(store, make_mr, [1, 2])
    release(ctx, _failed_run())
    before = [(n.key, n.comment) for n in store.list_notices(PROJECT)]

    release(ctx, _failed_run())

    assert [(n.key, n.comment) for n in store.list_notices(PROJECT)] == before


def test_the_watcher_releases_a_branch_whose_execution_died_holding_it(
    store: Store, make_mr: MakeMR, fake_clock: FakeClock
) -> None:
    store.save_project(ProjectConfig(project_id=PROJECT))
    _testing_batch(store, make_mr, [1, 2])

    still_running = Executions({BATCH: "RUNNING"})
    assert release_dead_batches(store, still_running, fake_clock, PROJECT, ["main"]) == []
    assert store.get_branch_lock(PROJECT, "main") is not None

    died = Executions({BATCH: "FAILED"})
    assert release_dead_batches(store, died, fake_clock, PROJECT, ["main"]) == [BATCH]

    assert store.get_branch_lock(PROJECT, "main") is None
    assert store.get_batch(BATCH).state is BatchState.FAILED
    assert {store.get_merge_request(PROJECT, iid).status for iid in (1, 2)} == {
        StatusCategory.QUEUED
    }
    assert release_dead_batches(store, died, fake_clock, PROJECT, ["main"]) == []


def test_an_mr_gitlab_no_longer_has_is_recorded_as_gone_and_leaves_its_batch(
    store: Store, make_mr: MakeMR, gitlab: DownGitLab, fake_clock: FakeClock
) -> None:
    store.save_project(ProjectConfig(project_id=PROJECT))
    _testing_batch(store, make_mr, [4])
    gitlab.up = True
    dispatcher = Dispatcher(
        store=store,
        gitlab=gitlab,  # type: ignore[arg-type]
        executions=Executions(),
        clock=fake_clock,
        bot_user_id=BOT,
    )
    event = QueueEvent(
        kind=EventKind.RECONCILE,
        idempotency_key="k-gone",
        project_id=PROJECT,
        target_branch="main",
        merge_request=MergeRequestSnapshot(iid=4, state="opened", target_branch="main"),
    )

    dispatcher.handle(event)

    state = store.get_merge_request(PROJECT, 4)
    assert state.status is StatusCategory.NOT_READY
    assert state.reasons == [GONE]
    assert state.batch_id is None
    # A second event about it costs no further GitLab call than the one that says 404.
    again = event.model_copy(update={"idempotency_key": "k-gone-2"})
    assert dispatcher.handle(again).state == store.get_merge_request(PROJECT, 4)


def test_a_notice_the_mr_has_moved_on_from_is_dropped_not_told(
    ctx: WorkflowContext, store: Store, make_mr: MakeMR, gitlab: DownGitLab
) -> None:
    _testing_batch(store, make_mr, [1])
    release(ctx, _failed_run())
    requeued = store.get_merge_request(PROJECT, 1)
    store.save_merge_request(requeued.model_copy(update={"status": StatusCategory.MERGED}))
    gitlab.up = True

    assert notices.deliver_pending(gitlab, store, PROJECT) == notices.Delivered(0, 0)  # type: ignore[arg-type]

    assert gitlab.told == []
    assert store.list_notices(PROJECT) == []


def test_a_notice_is_owed_from_before_gitlab_is_asked_until_it_took_it(
    store: Store, make_mr: MakeMR
) -> None:
    state = store.save_merge_request(make_mr(1))
    seen: list[list[str]] = []

    class Watching(DownGitLab):
        def apply_transition(self, project_id: int, iid: int, *args: Any, **kwargs: Any) -> None:
            seen.append([notice.key for notice in store.list_notices(PROJECT)])

    assert notices.tell(Watching(), store, state, Transition("hello", None, ()))  # type: ignore[arg-type]

    assert seen == [[notices.notice_key(state)]]
    assert store.list_notices(PROJECT) == []


def test_the_watcher_leaves_a_notice_being_told_to_the_step_telling_it(
    store: Store, make_mr: MakeMR, gitlab: DownGitLab
) -> None:
    """The watcher delivering the outbox while a step tells the same notice would post it
    twice: the step's post has not landed yet, so the watcher's look for its marker finds
    nothing."""
    state = store.save_merge_request(make_mr(1))
    gitlab.up = True
    delivered_meanwhile: list[notices.Delivered] = []

    class Slow(DownGitLab):
        def apply_transition(self, project_id: int, iid: int, *args: Any, **kwargs: Any) -> None:
            delivered_meanwhile.append(notices.deliver_pending(gitlab, store, PROJECT))  # type: ignore[arg-type]

    assert notices.tell(Slow(), store, state, Transition("hello", None, ()))  # type: ignore[arg-type]

    assert delivered_meanwhile == [notices.Delivered(0, 1)]
    assert gitlab.told == []  # only the step told it
    assert store.list_notices(PROJECT) == []


def test_a_notice_gitlab_refused_is_the_watchers_at_once(
    store: Store, make_mr: MakeMR, gitlab: DownGitLab
) -> None:
    state = store.save_merge_request(make_mr(1))

    assert not notices.tell(gitlab, store, state, Transition("hello", None, ()))  # type: ignore[arg-type]
    gitlab.up = True

    assert notices.deliver_pending(gitlab, store, PROJECT) == notices.Delivered(1, 0)  # type: ignore[arg-type]
    assert gitlab.told == [(1, notices.notice_key(state), True)]


def test_the_watcher_starts_queues_while_gitlab_is_down_and_one_project_does_not_stop_another(
    store: Store, make_mr: MakeMR, gitlab: DownGitLab, fake_clock: FakeClock
) -> None:
    store.save_project(ProjectConfig(project_id=PROJECT))
    store.save_project(ProjectConfig(project_id=PROJECT + 1))
    _testing_batch(store, make_mr, [1, 2])
    asked: list[tuple[int, str]] = []

    def start_queues(project_id: int, cause: str) -> list[str]:
        asked.append((project_id, cause))
        if project_id == PROJECT + 1:
            raise RuntimeError("its queue could not be read")
        return [f"started-{project_id}"]

    watcher = Watcher(
        store=store,
        executions=Executions({BATCH: "FAILED"}),
        clock=fake_clock,
        start_queues=start_queues,
        gitlab=lambda: gitlab,  # type: ignore[arg-type,return-value]
        send=lambda event: None,
        meter=NullMeter(),
    )

    with pytest.raises(GitLabUnreachable):
        watcher.run("run-1")

    # The dead batch was released and both projects' queues were asked to start, though
    # GitLab never answered and the second project failed.
    assert store.get_branch_lock(PROJECT, "main") is None
    assert sorted(asked) == [(PROJECT, "watch:run-1"), (PROJECT + 1, "watch:run-1")]
