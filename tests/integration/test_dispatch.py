"""The dispatcher's decisions, with the store on moto and GitLab faked at the gateway."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.provision import create_table
from merge_assist.adapters.aws import clear_caches, store_from_settings
from merge_assist.platform.config import ProjectConfig, Strategy
from merge_assist.platform.events import EventKind, MergeRequestSnapshot, QueueEvent
from merge_assist.platform.resources import ResourceNames
from merge_assist.queue.comments import Transition
from merge_assist.queue.dispatch import Dispatcher
from merge_assist.queue.models import Batch, BatchState, ReasonCode, StatusCategory
from merge_assist.queue.readiness import MergeRequestFacts

BOT = 99
SHA = "a" * 40
NAMES = ResourceNames("test")
Setup = tuple[Dispatcher, "FakeGitLab", "RecordingExecutions"]


class Clock:
    def now(self) -> datetime:
        return datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class FakeGitLab:
    def __init__(self) -> None:
        self.facts: dict[int, MergeRequestFacts] = {}
        self.transitions: list[tuple[int, Transition]] = []
        self.asked: list[int] = []

    def merge_request_facts(self, project_id: int, iid: int) -> MergeRequestFacts:
        self.asked.append(iid)
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


class RecordingExecutions:
    def __init__(self) -> None:
        self.started: list[tuple[str, dict[str, Any]]] = []
        self.resumed: list[tuple[str, dict[str, Any]]] = []

    def start(self, name: str, execution_input: dict[str, Any]) -> bool:
        self.started.append((name, execution_input))
        return True

    def resume(self, task_token: str, output: dict[str, Any]) -> bool:
        self.resumed.append((task_token, output))
        return True


@pytest.fixture
def setup(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Dispatcher, FakeGitLab, RecordingExecutions]]:
    monkeypatch.setenv("MERGE_ASSIST_RESOURCE_PREFIX", NAMES.prefix)
    with mock_aws():
        clear_caches()
        create_table(boto3.Session(), NAMES)
        store = store_from_settings()
        store.save_project(ProjectConfig(project_id=5))
        gitlab = FakeGitLab()
        executions = RecordingExecutions()
        dispatcher = Dispatcher(store, gitlab, executions, Clock(), BOT)  # type: ignore[arg-type]
        yield dispatcher, gitlab, executions
        clear_caches()


def _facts(iid: int, **changes: object) -> MergeRequestFacts:
    fields: dict[str, object] = {
        "iid": iid,
        "state": "opened",
        "target_branch": "main",
        "source_branch": f"feature/{iid}",
        "sha": SHA,
        "assignee_ids": [BOT],
        "detailed_merge_status": "mergeable",
        "head_pipeline_status": "success",
        "approved": True,
    }
    fields.update(changes)
    return MergeRequestFacts.model_validate(fields)


def _event(iid: int, key: str, assignees: tuple[int, ...] = (BOT,)) -> QueueEvent:
    return QueueEvent(
        kind=EventKind.MERGE_REQUEST,
        idempotency_key=key,
        project_id=5,
        target_branch="main",
        merge_request=MergeRequestSnapshot(
            iid=iid,
            state="opened",
            sha=SHA,
            source_branch=f"feature/{iid}",
            target_branch="main",
            assignee_ids=list(assignees),
        ),
    )


def test_a_ready_mr_is_queued_and_told_once(setup: Setup) -> None:
    dispatcher, gitlab, _ = setup
    gitlab.facts[1] = _facts(1)

    first = dispatcher.handle(_event(1, "k1"))
    replay = dispatcher.handle(_event(1, "k1"))
    update = dispatcher.handle(_event(1, "k2"))

    assert first.state is not None
    assert first.state.status is StatusCategory.QUEUED
    assert first.told
    assert not replay.told
    assert not update.told
    assert [iid for iid, _ in gitlab.transitions] == [1]
    assert "position 1" in gitlab.transitions[0][1].comment


def test_queue_positions_follow_the_queue_order(setup: Setup) -> None:
    dispatcher, gitlab, _ = setup
    for iid in (1, 2, 3):
        gitlab.facts[iid] = _facts(iid)
        dispatcher.handle(_event(iid, f"k{iid}"))

    comments = [transition.comment for _, transition in gitlab.transitions]
    for position, comment in enumerate(comments, start=1):
        assert f"position {position})" in comment


def test_a_blocked_mr_gets_its_reasons(setup: Setup) -> None:
    dispatcher, gitlab, _ = setup
    gitlab.facts[4] = _facts(4, head_pipeline_status="running", draft=True)

    result = dispatcher.handle(_event(4, "k4"))

    assert result.state is not None
    assert result.state.status is StatusCategory.NOT_READY
    assert {r.code for r in result.state.reasons} == {ReasonCode.DRAFT, ReasonCode.PIPELINE}
    [(iid, transition)] = gitlab.transitions
    assert iid == 4
    assert "draft" in transition.comment


def test_mrs_that_do_not_concern_the_bot_cost_no_gitlab_call(
    setup: Setup,
) -> None:
    dispatcher, gitlab, _ = setup

    result = dispatcher.handle(_event(6, "k6", assignees=(7,)))

    assert result.state is not None
    assert result.state.status is StatusCategory.NOT_READY
    assert gitlab.asked == []
    assert gitlab.transitions == []


def test_a_queued_mr_starts_one_batch_for_its_branch(setup: Setup) -> None:
    dispatcher, gitlab, executions = setup
    gitlab.facts[1] = _facts(1)
    gitlab.facts[2] = _facts(2)

    first = dispatcher.handle(_event(1, "k1"))
    dispatcher.handle(_event(1, "k1"))  # a replay
    second = dispatcher.handle(_event(2, "k2"))  # the batch runs: no second one

    assert first.started_batch
    assert not second.started_batch
    names = {name for name, _ in executions.started}
    assert len(names) == 1
    [name] = names
    lock = dispatcher.store.get_branch_lock(5, "main")
    assert lock is not None
    assert lock.batch_id == name
    assert executions.started[0][1]["target_branch"] == "main"
    assert executions.started[0][1]["batch_id"] == name


def test_a_paused_project_starts_no_batch(setup: Setup) -> None:
    dispatcher, gitlab, executions = setup
    store = dispatcher.store
    store.save_project(store.get_project(5).model_copy(update={"paused": True}))
    gitlab.facts[1] = _facts(1)

    result = dispatcher.handle(_event(1, "k1"))

    assert result.state is not None
    assert result.state.status is StatusCategory.QUEUED
    assert executions.started == []
    assert store.get_branch_lock(5, "main") is None


def test_an_mr_pushed_to_in_a_batch_leaves_it_and_ends_the_wait(setup: Setup) -> None:
    dispatcher, gitlab, executions = setup
    store = dispatcher.store
    gitlab.facts[1] = _facts(1)
    dispatcher.handle(_event(1, "k1"))
    queued = store.get_merge_request(5, 1)
    store.save_merge_request(
        queued.model_copy(update={"status": StatusCategory.TESTING, "batch_id": "b-1"})
    )
    store.save_batch(
        Batch(
            id="b-1",
            project_id=5,
            target_branch="main",
            strategy=Strategy.BATCH,
            merge_requests=[1],
            testing_sha="c" * 40,
            state=BatchState.TESTING,
        )
    )
    store.put_task_token(5, "c" * 40, "token-1", timedelta(minutes=5))
    gitlab.facts[1] = _facts(1, sha="d" * 40, head_pipeline_status="running")

    result = dispatcher.handle(_event(1, "k2"))

    assert result.state is not None
    assert result.state.status is StatusCategory.NOT_READY
    assert result.state.batch_id is None
    assert executions.resumed == [
        ("token-1", {"pipeline_id": None, "sha": "c" * 40, "status": "changed", "web_url": None})
    ]
    assert store.get_task_token(5, "c" * 40) is None
    comment = gitlab.transitions[-1][1].comment
    assert "out of batch `b-1`" in comment
    assert "new commits were pushed" in comment


def test_an_echo_is_recorded_without_reading_gitlab(setup: Setup) -> None:
    dispatcher, gitlab, _ = setup
    gitlab.facts[1] = _facts(1)
    dispatcher.handle(_event(1, "k1"))
    asked = len(gitlab.asked)
    label_echo = _event(1, "k2").model_copy(
        update={
            "actor_id": BOT,
            "merge_request": _event(1, "k2").merge_request.model_copy(  # type: ignore[union-attr]
                update={"action": "update", "changed": ("labels", "updated_at"), "labels": ["x"]}
            ),
        }
    )

    result = dispatcher.handle(label_echo)

    assert not result.judged
    assert result.state is not None
    assert result.state.last_event_key == "k2"
    assert result.state.labels == ["x"]
    assert result.state.status is StatusCategory.QUEUED
    assert len(gitlab.asked) == asked
    assert len(gitlab.transitions) == 1


def test_events_left_to_a_later_one_are_recorded_and_judged_once(setup: Setup) -> None:
    dispatcher, gitlab, _ = setup
    gitlab.facts[1] = _facts(1)

    early = dispatcher.handle(_event(1, "k1"), judged_later=True)
    assert early.state is not None
    assert early.state.last_event_key == "k1"
    assert gitlab.asked == []
    last = dispatcher.handle(_event(1, "k2"))

    assert last.judged
    assert gitlab.asked == [1]
    assert last.state is not None
    assert last.state.status is StatusCategory.QUEUED
    assert [iid for iid, _ in gitlab.transitions] == [1]
