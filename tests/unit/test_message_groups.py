"""Which FIFO group an event is handled in: an MR's events with its own branch's pipelines,
a batch's pipeline apart from every MR's events."""

from __future__ import annotations

from merge_assist.platform.events import (
    EventKind,
    MergeRequestSnapshot,
    NoteSnapshot,
    PipelineSnapshot,
    PushSnapshot,
    QueueEvent,
)

SHA = "a" * 40


def _event(kind: EventKind, key: str, project_id: int = 5, **parts: object) -> QueueEvent:
    return QueueEvent.model_validate(
        {"kind": kind, "idempotency_key": key, "project_id": project_id, **parts}
    )


def _mr(iid: int, source: str) -> MergeRequestSnapshot:
    return MergeRequestSnapshot(iid=iid, source_branch=source, target_branch="main")


def test_an_mr_and_its_own_branch_pipeline_share_a_group() -> None:
    opened = _event(EventKind.MERGE_REQUEST, "k1", merge_request=_mr(1, "feature/1"))
    note = _event(
        EventKind.NOTE,
        "k2",
        merge_request=_mr(1, "feature/1"),
        note=NoteSnapshot(id=1, body="LGTM"),
    )
    branch_pipeline = _event(
        EventKind.PIPELINE,
        "k3",
        pipeline=PipelineSnapshot(id=1, sha=SHA, ref="feature/1", status="success"),
    )
    mr_pipeline = _event(
        EventKind.PIPELINE,
        "k4",
        merge_request=_mr(1, "feature/1"),
        pipeline=PipelineSnapshot(
            id=2, sha=SHA, ref="refs/merge-requests/1/head", status="success"
        ),
    )

    groups = {e.message_group_id for e in (opened, note, branch_pipeline, mr_pipeline)}
    assert groups == {"5:branch:feature/1"}


def test_a_batch_pipeline_waits_behind_no_mr_and_projects_never_share() -> None:
    batch = _event(
        EventKind.PIPELINE,
        "k1",
        merge_request=_mr(9, "merge-assist/batch/main"),
        pipeline=PipelineSnapshot(id=3, sha=SHA, ref="refs/merge-requests/9/head", status="failed"),
    )
    others = [
        _event(EventKind.MERGE_REQUEST, f"m{i}", merge_request=_mr(i, f"feature/{i}"))
        for i in range(1, 4)
    ]
    push = _event(EventKind.PUSH, "p", target_branch="main", push=PushSnapshot(branch="main"))
    elsewhere = _event(
        EventKind.MERGE_REQUEST, "x", project_id=6, merge_request=_mr(1, "feature/1")
    )

    assert batch.message_group_id == "5:branch:merge-assist/batch/main"
    assert batch.message_group_id not in {e.message_group_id for e in [*others, push]}
    assert push.message_group_id == "5:branch:main"
    assert elsewhere.message_group_id != others[0].message_group_id


def test_a_branch_name_sqs_refuses_becomes_a_digest() -> None:
    event = _event(EventKind.MERGE_REQUEST, "k", merge_request=_mr(1, "fix/ünïcode"))
    assert event.message_group_id.startswith("sha256:")
    assert len(event.message_group_id) <= 128
