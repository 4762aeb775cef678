"""The watcher queues exactly the MRs GitLab and the store disagree about."""

from __future__ import annotations

from merge_assist.platform.config import ProjectConfig
from merge_assist.platform.events import EventKind, MergeRequestSnapshot
from merge_assist.queue.models import MergeRequestState, StatusCategory
from merge_assist.queue.watcher import differs, reconcile_events, reconcile_key

CONFIG = ProjectConfig(project_id=3)


def _snapshot(iid: int, **changes: object) -> MergeRequestSnapshot:
    fields: dict[str, object] = {
        "iid": iid,
        "sha": f"{iid:040x}",
        "state": "opened",
        "source_branch": f"feature/{iid}",
        "target_branch": "main",
        "labels": ["a", "b"],
        "assignee_ids": [7],
    }
    fields.update(changes)
    return MergeRequestSnapshot.model_validate(fields)


def _state(iid: int, **changes: object) -> MergeRequestState:
    fields: dict[str, object] = {
        "project_id": 3,
        "iid": iid,
        "sha": f"{iid:040x}",
        "source_branch": f"feature/{iid}",
        "target_branch": "main",
        "gitlab_state": "opened",
        "labels": ["b", "a"],
        "assignee_ids": [7],
        "status": StatusCategory.NOT_READY,
    }
    fields.update(changes)
    return MergeRequestState.model_validate(fields)


def test_in_sync_mrs_produce_no_events() -> None:
    assert not differs(_snapshot(1), _state(1))
    assert reconcile_events(CONFIG, [_snapshot(1)], [_state(1)], lambda iid: None) == []


def test_each_kind_of_divergence_is_noticed() -> None:
    assert differs(_snapshot(1), None)
    assert differs(_snapshot(1, sha="f" * 40), _state(1))
    assert differs(_snapshot(1, draft=True), _state(1))
    assert differs(_snapshot(1, labels=["a"]), _state(1))
    assert differs(_snapshot(1, assignee_ids=[]), _state(1))
    assert differs(_snapshot(1, target_branch="release"), _state(1))
    assert differs(_snapshot(1, state="merged"), _state(1))


def test_untracked_and_changed_mrs_are_queued_as_reconcile_events() -> None:
    events = reconcile_events(
        CONFIG,
        [_snapshot(1), _snapshot(2, sha="e" * 40), _snapshot(3)],
        [_state(1), _state(2)],
        lambda iid: None,
    )

    assert [event.mr_iid for event in events] == [2, 3]
    assert all(event.kind is EventKind.RECONCILE for event in events)
    assert events[0].merge_request is not None
    assert events[0].merge_request.sha == "e" * 40
    assert events[0].message_group_id == "3:branch:feature/2"  # with the MR's own events


def test_tracked_mr_that_left_the_open_list_is_looked_up() -> None:
    looked_up: list[int] = []

    def current(iid: int) -> MergeRequestSnapshot | None:
        looked_up.append(iid)
        return _snapshot(iid, state="merged")

    events = reconcile_events(CONFIG, [], [_state(4), _state(5, gitlab_state="merged")], current)

    assert looked_up == [4]
    assert [event.mr_iid for event in events] == [4]
    assert events[0].merge_request is not None
    assert events[0].merge_request.state == "merged"


def test_a_vanished_mr_is_skipped() -> None:
    assert reconcile_events(CONFIG, [], [_state(4)], lambda iid: None) == []


def test_the_same_divergence_gets_the_same_key_and_a_new_one_a_new_key() -> None:
    first = reconcile_key(3, _snapshot(1))
    again = reconcile_key(3, _snapshot(1, labels=["b", "a"]))
    moved = reconcile_key(3, _snapshot(1, sha="c" * 40))

    assert first == again
    assert first != moved
    assert len(first) <= 128


def test_a_held_back_mr_that_gitlab_would_merge_now_is_judged_again() -> None:
    # Its branch pipeline passed, and that pipeline's webhook named no MR (or was lost).
    mergeable = _snapshot(1, detailed_merge_status="mergeable", head_pipeline_id=9)
    running = _snapshot(1, detailed_merge_status="ci_still_running", head_pipeline_id=9)

    assert differs(mergeable, _state(1))
    assert not differs(running, _state(1))
    assert not differs(mergeable, _state(1, status="queued", ready_since="2026-01-01T00:00:00Z"))
    # The same view of GitLab is queued once; a new pipeline is a new view.
    assert reconcile_key(3, mergeable) == reconcile_key(3, mergeable)
    assert reconcile_key(3, mergeable) != reconcile_key(
        3, mergeable.model_copy(update={"head_pipeline_id": 10})
    )
