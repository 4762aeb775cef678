"""Readiness: every reason an MR cannot be queued, and none when it can."""

from __future__ import annotations

import pytest

from merge_assist.platform.config import ProjectConfig, Strategy
from merge_assist.queue import comments
from merge_assist.queue.models import Reason, ReasonCode
from merge_assist.queue.readiness import MergeRequestFacts, concerns_bot, not_ready_reasons

BOT = 99
CONFIG = ProjectConfig(project_id=1, target_branches=["main", "release"])


def _facts(**changes: object) -> MergeRequestFacts:
    fields: dict[str, object] = {
        "iid": 3,
        "state": "opened",
        "target_branch": "main",
        "assignee_ids": [BOT],
        "detailed_merge_status": "mergeable",
        "blocking_discussions_resolved": True,
        "head_pipeline_status": "success",
        "approved": True,
    }
    fields.update(changes)
    return MergeRequestFacts.model_validate(fields)


def _codes(facts: MergeRequestFacts, config: ProjectConfig = CONFIG) -> list[ReasonCode]:
    return [reason.code for reason in not_ready_reasons(facts, config, BOT)]


def test_a_mergeable_assigned_green_mr_is_ready() -> None:
    assert not_ready_reasons(_facts(), CONFIG, BOT) == []


def test_need_rebase_does_not_block_because_the_batch_rebases() -> None:
    assert _codes(_facts(detailed_merge_status="need_rebase")) == []


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"state": "closed"}, ReasonCode.CLOSED),
        ({"state": "merged"}, ReasonCode.CLOSED),
        ({"draft": True}, ReasonCode.DRAFT),
        ({"detailed_merge_status": "draft_status"}, ReasonCode.DRAFT),
        ({"assignee_ids": []}, ReasonCode.NOT_ASSIGNED),
        ({"approved": False}, ReasonCode.APPROVALS),
        ({"detailed_merge_status": "not_approved"}, ReasonCode.APPROVALS),
        ({"blocking_discussions_resolved": False}, ReasonCode.DISCUSSIONS),
        ({"has_conflicts": True}, ReasonCode.CONFLICTS),
        ({"detailed_merge_status": "conflict"}, ReasonCode.CONFLICTS),
        ({"head_pipeline_status": None}, ReasonCode.PIPELINE),
        ({"head_pipeline_status": "running"}, ReasonCode.PIPELINE),
        ({"head_pipeline_status": "failed"}, ReasonCode.PIPELINE),
        ({"head_pipeline_status": "canceled"}, ReasonCode.PIPELINE),
        ({"target_branch": "develop"}, ReasonCode.TARGET_BRANCH),
    ],
)
def test_each_blocker_gives_its_reason(changes: dict[str, object], code: ReasonCode) -> None:
    assert _codes(_facts(**changes)) == [code]


def test_several_blockers_are_all_listed_once_each() -> None:
    codes = _codes(
        _facts(
            draft=True,
            detailed_merge_status="draft_status",
            approved=False,
            head_pipeline_status="pending",
            assignee_ids=[],
        )
    )

    assert codes == [
        ReasonCode.NOT_ASSIGNED,
        ReasonCode.DRAFT,
        ReasonCode.APPROVALS,
        ReasonCode.PIPELINE,
    ]


def test_the_trigger_label_stands_in_for_assignment() -> None:
    labelled = ProjectConfig(project_id=1, trigger_label="merge-me")
    facts = _facts(assignee_ids=[], labels=["merge-me"])

    assert concerns_bot(facts, labelled, BOT)
    assert not concerns_bot(facts, CONFIG, BOT)
    assert not_ready_reasons(facts, labelled, BOT) == []
    [reason] = not_ready_reasons(_facts(assignee_ids=[]), labelled, BOT)
    assert "merge-me" in reason.message


def test_comments_set_one_queue_label_and_clear_the_others() -> None:
    labels = CONFIG.labels
    waiting = comments.not_ready(
        CONFIG, [Reason(code=ReasonCode.PIPELINE, message="its pipeline is running")]
    )
    queued = comments.recognised(CONFIG, "main", 2)
    out = comments.rejected(
        CONFIG, Reason(code=ReasonCode.CI_FAILED, message="its batch failed"), "https://ci/1"
    )
    done = comments.merged(CONFIG, "main", "https://ci/2")

    assert waiting.add_label == labels.not_ready
    assert labels.not_ready not in waiting.remove_labels
    assert labels.recognised in waiting.remove_labels
    assert "- its pipeline is running" in waiting.comment
    assert queued.add_label == labels.recognised
    assert "position 2" in queued.comment
    assert out.add_label == labels.rejected
    assert "(https://ci/1)" in out.comment
    assert done.add_label is None
    assert labels.recognised in done.remove_labels
    assert labels.rejected in done.remove_labels
    assert labels.batch_merge_request not in done.remove_labels


def test_recognised_comment_explains_the_strategy() -> None:
    serial = ProjectConfig(project_id=1, strategy=Strategy.SERIAL)

    assert "on its own" in comments.recognised(serial, "main", 1).comment
    assert "batch of up to 5" in comments.recognised(CONFIG, "main", 1).comment
