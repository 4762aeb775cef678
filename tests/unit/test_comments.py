"""The reasons' wording, pinned: authors, the dashboard and the e2e scenarios read them."""

from __future__ import annotations

import pytest

from merge_assist.platform.config import ProjectConfig
from merge_assist.queue import comments
from merge_assist.queue.models import Reason, ReasonCode


def test_readiness_reasons_say_what_to_do_about_them() -> None:
    assert comments.not_open("closed") == Reason(
        code=ReasonCode.CLOSED, message="the merge request is closed"
    )
    assert comments.not_a_target_branch("dev", ["main", "release"]) == Reason(
        code=ReasonCode.TARGET_BRANCH,
        message="dev is not a target branch of this project (main, release)",
    )
    assert comments.not_assigned(None).message == (
        "it is not queued for merging: assign it to the bot"
    )
    assert comments.not_assigned("merge-me").message == (
        "it is not queued for merging: assign it to the bot or add the label 'merge-me'"
    )
    assert comments.pipeline_pending("running").message == "its pipeline is running"
    assert comments.pipeline_not_green("failed").message == "its pipeline failed"
    assert comments.NO_PIPELINE.message == "it has no pipeline yet"


def test_conflicts_list_the_first_ten_paths() -> None:
    paths = [f"src/{n}.py" for n in range(12)]

    reason = comments.conflicts("main", paths)

    assert reason.code is ReasonCode.CONFLICTS
    listed = ", ".join(f"`src/{n}.py`" for n in range(10))
    assert reason.message == (
        f"it conflicts with `main` or with the merge requests ahead of it in the batch ({listed})"
    )


def test_serial_rejections_quote_gitlab() -> None:
    assert comments.rebase_refused("main", "403 Forbidden") == Reason(
        code=ReasonCode.CONFLICTS, message="GitLab refused to rebase it on `main`: 403 Forbidden"
    )
    assert comments.rebase_failed("main", "conflict in a.py") == Reason(
        code=ReasonCode.CONFLICTS, message="it could not be rebased on `main`: conflict in a.py"
    )
    assert comments.merge_refused("405 Method Not Allowed") == Reason(
        code=ReasonCode.CONFLICTS, message="GitLab refused to merge it: 405 Method Not Allowed"
    )


def test_a_culprit_is_told_how_its_pipeline_ended_with_the_link() -> None:
    failed = comments.culprit("https://ci/p/7", timed_out=False, alone=False)
    timed_out = comments.culprit(None, timed_out=True, alone=True)

    assert failed == Reason(
        code=ReasonCode.CI_FAILED,
        message="the pipeline failed with this merge request on top of the merge requests "
        "ahead of it in its batch (https://ci/p/7)",
    )
    assert timed_out == Reason(
        code=ReasonCode.CI_TIMEOUT,
        message="its pipeline did not finish within the project's CI timeout",
    )
    assert comments.pipeline_skipped("https://ci/p/8") == Reason(
        code=ReasonCode.PIPELINE_SKIPPED,
        message="CI skipped the batch's pipeline, and only tested commits are merged; "
        "check the CI rules for the batch branch (https://ci/p/8)",
    )


def test_the_strike_limit_is_added_to_the_reason() -> None:
    reason = comments.culprit(None, timed_out=False, alone=True)

    struck = comments.struck_out(reason, 3)

    assert struck.code is ReasonCode.CI_FAILED
    assert struck.message == (
        "the pipeline failed with this merge request. This is its 3rd rejection: it stays "
        "out of the queue until its author pushes a change"
    )


def test_a_rejection_comment_carries_the_reason_and_its_link() -> None:
    config = ProjectConfig(project_id=1)

    transition = comments.rejected(config, comments.merge_refused("no"), "https://x/1")

    assert transition.comment == (
        "Merge Assist took this merge request out of the queue: GitLab refused to merge it: "
        "no ([details](https://x/1)).\n\nPush a fix (or reassign the bot) to queue it again."
    )
    assert transition.add_label == config.labels.rejected


@pytest.mark.parametrize(
    ("strikes", "said"),
    [
        (1, "1st"),
        (2, "2nd"),
        (3, "3rd"),
        (4, "4th"),
        (11, "11th"),
        (12, "12th"),
        (13, "13th"),
        (21, "21st"),
        (22, "22nd"),
        (103, "103rd"),
    ],
)
def test_the_rejection_count_reads_as_an_ordinal(strikes: int, said: str) -> None:
    struck = comments.struck_out(comments.culprit(None, timed_out=False, alone=True), strikes)

    assert f"This is its {said} rejection" in struck.message
