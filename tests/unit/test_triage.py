"""Triage: queued or not ready, and when the author is told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from merge_assist.platform.config import ProjectConfig
from merge_assist.queue.models import MergeRequestState, Reason, ReasonCode, StatusCategory
from merge_assist.queue.readiness import MergeRequestFacts
from merge_assist.queue.strikes import MAX_STRIKES
from merge_assist.queue.triage import triage

BOT = 99
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SHA = "a" * 40
CONFIG = ProjectConfig(project_id=1)


def _state(
    status: StatusCategory = StatusCategory.NOT_READY, **changes: object
) -> MergeRequestState:
    fields: dict[str, object] = {
        "project_id": 1,
        "iid": 5,
        "sha": SHA,
        "source_branch": "feature/5",
        "target_branch": "main",
        "status": status,
        "assignee_ids": [BOT],
    }
    if status is StatusCategory.QUEUED:
        fields["ready_since"] = NOW - timedelta(hours=1)
    fields.update(changes)
    fields.setdefault("bot_assigned", BOT in fields["assignee_ids"])  # type: ignore[operator]
    return MergeRequestState.model_validate(fields)


def _facts(**changes: object) -> MergeRequestFacts:
    fields: dict[str, object] = {
        "iid": 5,
        "state": "opened",
        "target_branch": "main",
        "assignee_ids": [BOT],
        "detailed_merge_status": "mergeable",
        "head_pipeline_status": "success",
        "approved": True,
    }
    fields.update(changes)
    return MergeRequestFacts.model_validate(fields)


def test_a_ready_mr_is_queued_now_and_told_its_position() -> None:
    result = triage(_state(), _facts(), CONFIG, BOT, NOW, head_sha=SHA, queue_position=3)

    assert result.state.status is StatusCategory.QUEUED
    assert result.state.ready_since == NOW
    assert result.transition is not None
    assert "position 3" in result.transition.comment
    assert result.transition.add_label == CONFIG.labels.recognised


def test_a_queued_mr_keeps_its_place_and_is_not_told_again() -> None:
    queued = _state(StatusCategory.QUEUED)

    same = triage(queued, _facts(), CONFIG, BOT, NOW, head_sha=SHA, queue_position=1)
    pushed = triage(queued, _facts(), CONFIG, BOT, NOW, head_sha="b" * 40, queue_position=1)

    for result in (same, pushed):
        assert result.state.status is StatusCategory.QUEUED
        assert result.state.ready_since == queued.ready_since
        assert result.transition is None
    assert pushed.state.sha == "b" * 40


def test_a_queued_mr_whose_pipeline_fails_leaves_the_queue_with_the_reason() -> None:
    result = triage(
        _state(StatusCategory.QUEUED),
        _facts(head_pipeline_status="failed"),
        CONFIG,
        BOT,
        NOW,
        head_sha=SHA,
        queue_position=1,
    )

    assert result.state.status is StatusCategory.NOT_READY
    assert result.state.ready_since is None
    assert [r.code for r in result.state.reasons] == [ReasonCode.PIPELINE]
    assert result.transition is not None
    assert "its pipeline failed" in result.transition.comment


def test_the_same_reasons_are_not_repeated_but_new_ones_are_told() -> None:
    waiting = _state(reasons=[Reason(code=ReasonCode.PIPELINE, message="its pipeline is running")])

    again = triage(
        waiting,
        _facts(head_pipeline_status="pending"),
        CONFIG,
        BOT,
        NOW,
        head_sha=SHA,
        queue_position=1,
    )
    other = triage(
        waiting,
        _facts(draft=True, head_pipeline_status="pending"),
        CONFIG,
        BOT,
        NOW,
        head_sha=SHA,
        queue_position=1,
    )

    assert again.transition is None
    assert other.transition is not None
    assert "draft" in other.transition.comment


def test_mrs_nobody_asked_the_bot_to_merge_are_left_in_peace() -> None:
    stranger = triage(
        _state(assignee_ids=[]),
        _facts(assignee_ids=[]),
        CONFIG,
        BOT,
        NOW,
        head_sha=SHA,
        queue_position=1,
    )
    unassigned = triage(
        _state(StatusCategory.QUEUED),
        _facts(assignee_ids=[]),
        CONFIG,
        BOT,
        NOW,
        head_sha=SHA,
        queue_position=1,
    )

    assert stranger.state.status is StatusCategory.NOT_READY
    assert stranger.transition is None
    assert unassigned.state.status is StatusCategory.NOT_READY
    assert unassigned.transition is not None  # it was queued: say why it left


def test_an_mr_in_a_running_batch_is_only_recorded_while_it_stays_as_tested() -> None:
    batching = _state(StatusCategory.BATCHING, batch_id="b-1")

    result = triage(
        batching, _facts(labels=["backend"]), CONFIG, BOT, NOW, head_sha=SHA, queue_position=1
    )
    merged = triage(
        batching, _facts(state="merged"), CONFIG, BOT, NOW, head_sha=SHA, queue_position=1
    )

    assert result.state.status is StatusCategory.BATCHING
    assert result.state.batch_id == "b-1"
    assert result.state.labels == ["backend"]
    assert result.transition is None
    assert result.left_batch is None
    # Merged by its own batch's landing: the workflow marks it and says so.
    assert merged.state.status is StatusCategory.BATCHING
    assert merged.transition is None


def test_an_mr_made_draft_in_a_batch_leaves_it_with_one_comment() -> None:
    testing = _state(StatusCategory.TESTING, batch_id="b-1", strikes=1)

    result = triage(testing, _facts(draft=True), CONFIG, BOT, NOW, head_sha=SHA, queue_position=1)

    assert result.left_batch == "b-1"
    assert result.state.status is StatusCategory.NOT_READY
    assert result.state.batch_id is None
    assert result.state.strikes == 1
    assert result.transition is not None
    assert "out of batch `b-1`: it was marked as draft" in result.transition.comment
    assert result.transition.add_label == CONFIG.labels.not_ready


def test_an_mr_pushed_to_in_a_batch_leaves_it_and_its_strikes_reset() -> None:
    testing = _state(StatusCategory.TESTING, batch_id="b-1", strikes=2)

    result = triage(
        testing,
        _facts(head_pipeline_status="running"),
        CONFIG,
        BOT,
        NOW,
        head_sha="c" * 40,
        queue_position=1,
    )

    assert result.left_batch == "b-1"
    assert result.state.sha == "c" * 40
    assert result.state.strikes == 0
    assert [r.code for r in result.state.reasons] == [ReasonCode.PIPELINE]


def test_the_serial_workflows_own_rebase_is_not_a_push() -> None:
    rebasing = _state(StatusCategory.BATCHING, batch_id="b-1", rebasing=True)

    result = triage(rebasing, _facts(), CONFIG, BOT, NOW, head_sha="c" * 40, queue_position=1)

    assert result.left_batch is None
    assert result.state.status is StatusCategory.BATCHING
    assert result.state.sha == "c" * 40
    assert result.transition is None


def test_merged_in_gitlab_is_merged_here() -> None:
    result = triage(
        _state(StatusCategory.QUEUED),
        _facts(state="merged"),
        CONFIG,
        BOT,
        NOW,
        head_sha=SHA,
        queue_position=1,
    )

    assert result.state.status is StatusCategory.MERGED
    assert result.transition is None


def test_a_rejected_mr_waits_for_a_push_or_a_reassignment() -> None:
    rejected = _state(StatusCategory.REJECTED, strikes=1)

    untouched = triage(rejected, _facts(), CONFIG, BOT, NOW, head_sha=SHA, queue_position=1)
    pushed = triage(rejected, _facts(), CONFIG, BOT, NOW, head_sha="d" * 40, queue_position=1)
    reassigned = triage(
        _state(StatusCategory.REJECTED, strikes=1, assignee_ids=[]),
        _facts(),
        CONFIG,
        BOT,
        NOW,
        head_sha=SHA,
        queue_position=1,
    )

    assert untouched.state.status is StatusCategory.REJECTED
    assert untouched.transition is None
    assert pushed.state.status is StatusCategory.QUEUED
    assert pushed.state.strikes == 0
    assert reassigned.state.status is StatusCategory.QUEUED


def test_a_push_already_recorded_from_its_webhook_is_still_a_push() -> None:
    # The dispatcher records the event (the new head) before triage judges it.
    recorded = _state(StatusCategory.REJECTED, strikes=2, sha="d" * 40, judged_sha=SHA)

    result = triage(recorded, _facts(), CONFIG, BOT, NOW, head_sha="d" * 40, queue_position=1)

    assert result.state.status is StatusCategory.QUEUED
    assert result.state.strikes == 0
    assert result.state.judged_sha == "d" * 40


def test_an_unassignment_and_reassignment_requeues_a_rejected_mr() -> None:
    rejected = _state(StatusCategory.REJECTED, strikes=1)

    unassigned = triage(
        rejected, _facts(assignee_ids=[]), CONFIG, BOT, NOW, head_sha=SHA, queue_position=1
    )
    # The assignment event has recorded the bot among the assignees already.
    again = triage(
        unassigned.state.model_copy(update={"assignee_ids": [BOT]}),
        _facts(),
        CONFIG,
        BOT,
        NOW,
        head_sha=SHA,
        queue_position=1,
    )

    assert unassigned.state.status is StatusCategory.REJECTED
    assert again.state.status is StatusCategory.QUEUED


def test_three_strikes_need_a_push() -> None:
    struck_out = _state(StatusCategory.REJECTED, strikes=MAX_STRIKES, assignee_ids=[])

    reassigned = triage(struck_out, _facts(), CONFIG, BOT, NOW, head_sha=SHA, queue_position=1)
    pushed = triage(struck_out, _facts(), CONFIG, BOT, NOW, head_sha="e" * 40, queue_position=1)

    assert reassigned.state.status is StatusCategory.REJECTED
    assert pushed.state.status is StatusCategory.QUEUED


def _waiting_for(*codes: ReasonCode) -> MergeRequestState:
    return _state(reasons=[Reason(code=code, message=code.value) for code in codes])


def test_an_mr_that_waited_only_for_its_pipeline_stands_in_line_from_when_it_finished() -> None:
    # GitLab delivers hooks from parallel workers: the queue may hear of this pipeline
    # after one that finished later, and the MR still goes first.
    finished = NOW - timedelta(seconds=40)
    facts = _facts(head_pipeline_finished_at=finished)

    result = triage(
        _waiting_for(ReasonCode.PIPELINE), facts, CONFIG, BOT, NOW, head_sha=SHA, queue_position=1
    )

    assert result.state.status is StatusCategory.QUEUED
    assert result.state.ready_since == finished


def test_an_mr_that_waited_for_anything_else_stands_in_line_from_now() -> None:
    # GitLab gives no time for an approval, an assignment or a draft ending: the queue's
    # own moment is the earliest it knows.
    facts = _facts(head_pipeline_finished_at=NOW - timedelta(hours=2))
    for state in (
        _waiting_for(ReasonCode.PIPELINE, ReasonCode.APPROVALS),
        _waiting_for(ReasonCode.NOT_ASSIGNED),
        _state(),  # never judged before
        _state(StatusCategory.REJECTED, reasons=[Reason(code=ReasonCode.CI_FAILED, message="")]),
    ):
        result = triage(state, facts, CONFIG, BOT, NOW, head_sha="b" * 40, queue_position=1)
        assert result.state.status is StatusCategory.QUEUED, state
        assert result.state.ready_since == NOW, state


def test_a_pipeline_finished_by_a_clock_ahead_of_ours_queues_the_mr_now() -> None:
    facts = _facts(head_pipeline_finished_at=NOW + timedelta(minutes=3))

    result = triage(
        _waiting_for(ReasonCode.PIPELINE), facts, CONFIG, BOT, NOW, head_sha=SHA, queue_position=1
    )

    assert result.state.ready_since == NOW
