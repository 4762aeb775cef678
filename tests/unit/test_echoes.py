"""The dispatcher's rule for which events can change a decision, case by case
(``merge_assist.queue.dispatch``'s docstring), and how a receive's events coalesce."""

from __future__ import annotations

import pytest

from merge_assist.platform.events import (
    EventKind,
    MergeRequestSnapshot,
    NoteSnapshot,
    PipelineSnapshot,
    PushSnapshot,
    QueueEvent,
)
from merge_assist.queue.dispatch import can_change_decision, judged_later

BOT = 99
PERSON = 7
SHA = "a" * 40


def _mr(
    iid: int = 1,
    *,
    actor: int | None = PERSON,
    action: str | None = "update",
    changed: tuple[str, ...] = (),
    source_branch: str = "feature/1",
) -> QueueEvent:
    return QueueEvent(
        kind=EventKind.MERGE_REQUEST,
        idempotency_key=f"mr-{iid}-{action}-{actor}-{'-'.join(changed)}",
        project_id=5,
        target_branch="main",
        actor_id=actor,
        merge_request=MergeRequestSnapshot(
            iid=iid,
            sha=SHA,
            source_branch=source_branch,
            target_branch="main",
            action=action,
            changed=changed,
        ),
    )


def _note(*, actor: int | None, system: bool = False) -> QueueEvent:
    return QueueEvent(
        kind=EventKind.NOTE,
        idempotency_key=f"note-{actor}-{system}",
        project_id=5,
        target_branch="main",
        actor_id=actor,
        merge_request=MergeRequestSnapshot(iid=1, target_branch="main"),
        note=NoteSnapshot(id=1, body="text", system=system),
    )


def _pipeline(status: str, *, actor: int | None = BOT, iid: int | None = 1) -> QueueEvent:
    return QueueEvent(
        kind=EventKind.PIPELINE,
        idempotency_key=f"pipeline-{status}-{iid}",
        project_id=5,
        target_branch="main",
        actor_id=actor,
        merge_request=MergeRequestSnapshot(iid=iid, target_branch="main") if iid else None,
        pipeline=PipelineSnapshot(id=3, sha=SHA, ref="feature/1", status=status),
    )


@pytest.mark.parametrize("status", ["created", "waiting_for_resource", "pending", "running"])
def test_an_unfinished_pipeline_decides_nothing(status: str) -> None:
    assert not can_change_decision(_pipeline(status), BOT)
    assert not can_change_decision(_pipeline(status, actor=PERSON), BOT)


@pytest.mark.parametrize("status", ["success", "failed", "canceled", "skipped"])
def test_a_finished_pipeline_can_decide_whoever_ran_it(status: str) -> None:
    assert can_change_decision(_pipeline(status), BOT)
    assert can_change_decision(_pipeline(status, actor=PERSON), BOT)


@pytest.mark.parametrize("system", [False, True])
def test_the_bots_own_notes_are_echoes(system: bool) -> None:
    assert not can_change_decision(_note(actor=BOT, system=system), BOT)


@pytest.mark.parametrize("actor", [PERSON, None])
def test_a_persons_note_or_one_of_unknown_origin_can_decide(actor: int | None) -> None:
    # A person's note may be a command or open a discussion.
    assert can_change_decision(_note(actor=actor), BOT)
    assert can_change_decision(_note(actor=actor, system=True), BOT)


@pytest.mark.parametrize(
    "changed", [("labels",), ("labels", "updated_at"), ("updated_at", "updated_by_id"), ()]
)
def test_the_bots_label_updates_are_echoes(changed: tuple[str, ...]) -> None:
    assert not can_change_decision(_mr(actor=BOT, changed=changed), BOT)


@pytest.mark.parametrize(
    "changed", [("labels",), ("assignees", "updated_at"), ("draft",), ("title",), ()]
)
def test_every_update_by_a_person_can_decide(changed: tuple[str, ...]) -> None:
    assert can_change_decision(_mr(actor=PERSON, changed=changed), BOT)


@pytest.mark.parametrize(
    ("action", "changed"),
    [
        ("update", ("labels", "assignees")),  # the bot unassigned itself too
        ("update", ("oldrev", "updated_at")),  # its own rebase: a new head
        ("merge", ("state_id", "updated_at")),
        ("close", ("state_id",)),
        ("open", ()),
        ("reopen", ()),
        ("approved", ()),
    ],
)
def test_the_bots_other_mr_events_can_decide(action: str, changed: tuple[str, ...]) -> None:
    assert can_change_decision(_mr(actor=BOT, action=action, changed=changed), BOT)


def test_an_mr_event_of_unknown_origin_can_decide() -> None:
    assert can_change_decision(_mr(actor=None, changed=("labels",)), BOT)


@pytest.mark.parametrize("action", ["open", "update", "reopen"])
def test_the_bots_events_on_its_batch_mr_are_echoes(action: str) -> None:
    event = _mr(
        actor=BOT, action=action, changed=("oldrev",), source_branch="merge-assist/batch/main"
    )
    assert not can_change_decision(event, BOT)
    # The same branch name pushed by a person is a person's doing.
    person = _mr(actor=PERSON, action=action, source_branch="merge-assist/batch/main")
    assert can_change_decision(person, BOT)


def test_pushes_and_reconciliations_can_decide() -> None:
    push = QueueEvent(
        kind=EventKind.PUSH,
        idempotency_key="push",
        project_id=5,
        target_branch="main",
        actor_id=BOT,
        push=PushSnapshot(branch="main", before=SHA, after="b" * 40),
    )
    reconcile = _mr(actor=None).model_copy(update={"kind": EventKind.RECONCILE})
    assert can_change_decision(push, BOT)
    assert can_change_decision(reconcile, BOT)


def test_an_mr_is_judged_at_the_last_of_its_events_that_can_decide() -> None:
    person = _mr(1, changed=("draft",))
    echo = _mr(1, actor=BOT, changed=("labels",))
    other = _mr(2, changed=("title",))
    finished = _pipeline("success", iid=1)
    running = _pipeline("running", iid=1)

    assert judged_later([person, echo, other], BOT) == [False, False, False]
    assert judged_later([person, other, finished, running], BOT) == [True, False, False, False]
    assert judged_later([echo, person], BOT) == [True, False]
    assert judged_later([echo, echo.model_copy(update={"idempotency_key": "e2"})], BOT) == [
        False,
        False,
    ]


def test_events_of_other_projects_or_without_an_mr_do_not_coalesce() -> None:
    here = _mr(1, changed=("draft",))
    elsewhere = here.model_copy(update={"project_id": 6, "idempotency_key": "x"})
    branch_pipeline = _pipeline("success", iid=None)
    assert judged_later([here, elsewhere, branch_pipeline, None], BOT) == [
        False,
        False,
        False,
        False,
    ]
