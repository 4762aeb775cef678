"""The invariant checks catch what they are for: an untested commit on the target, and an
MR lost, merged twice or dropped without a reason."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import gitlab
import pytest

from local.gitlab_sim import GitLabSimulator
from local.invariants import LandingLog, landed_merges, unaccounted, untested_landings
from merge_assist.queue.models import MergeRequestState, Reason, ReasonCode, StatusCategory

MAINTAINER = 40


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[GitLabSimulator]:
    with GitLabSimulator(tmp_path / "gitlab", time_scale=0.001) as simulator:
        yield simulator


def test_a_landing_of_a_tested_tree_passes_and_an_untested_one_is_caught(
    sim: GitLabSimulator,
) -> None:
    bot, token = sim.create_user("bot")
    project = sim.create_project(
        "app", files={"a.txt": "a\n"}, members={"bot": MAINTAINER}, merge_method="ff"
    )
    log = LandingLog(sim, project.id, "main")
    try:
        iid = sim.create_merge_request(project, "topic", "Add b", {"b.txt": "b\n"})
        assert sim.wait_idle()  # the MR's pipeline has passed
        mr = (
            gitlab.Gitlab(sim.url, private_token=token)
            .projects.get(project.id)
            .mergerequests.get(iid)
        )
        mr.merge(sha=mr.sha)
        assert untested_landings(sim, project.id, log.by(bot.id)) == []

        untested = sim.commit_files(project, "main", {"c.txt": "c\n"}, author="bot", skip_ci=True)
        assert untested_landings(sim, project.id, log.by(bot.id)) == [untested]
    finally:
        log.close()


def test_a_pipeline_that_passes_only_after_the_landing_does_not_count(
    sim: GitLabSimulator,
) -> None:
    bot, _ = sim.create_user("bot")
    project = sim.create_project("app", files={"a.txt": "a\n"}, members={"bot": MAINTAINER})
    log = LandingLog(sim, project.id, "main")
    try:
        landed = sim.commit_files(project, "main", {"d.txt": "d\n"}, author="bot")
        assert sim.wait_idle()  # its push pipeline passes, but after it landed

        assert untested_landings(sim, project.id, log.by(bot.id)) == [landed]
        assert log.by(bot.id + 1000) == []
    finally:
        log.close()


def _state(
    iid: int, status: StatusCategory, reasons: list[Reason] | None = None
) -> MergeRequestState:
    return MergeRequestState(
        project_id=1,
        iid=iid,
        sha=f"{iid:040x}",
        source_branch=f"f{iid}",
        target_branch="main",
        status=status,
        reasons=reasons or [],
        ready_since=datetime(2026, 1, 1, tzinfo=UTC) if status is StatusCategory.QUEUED else None,
    )


def test_every_mr_that_entered_the_queue_is_accounted_for() -> None:
    why = [Reason(code=ReasonCode.CI_FAILED, message="its pipeline failed")]
    states = [
        _state(1, StatusCategory.MERGED),
        _state(2, StatusCategory.REJECTED, why),
        _state(3, StatusCategory.QUEUED),
        _state(4, StatusCategory.MERGED),
        _state(5, StatusCategory.REJECTED),
        _state(6, StatusCategory.BATCHING),
        _state(7, StatusCategory.NOT_READY),
        _state(8, StatusCategory.MERGED),
    ]

    problems = unaccounted(range(1, 10), states, merged_in_gitlab=[1, 4, 4])

    assert problems == {
        4: "merged 2 times",
        5: "rejected without a reason",
        6: "still batching after the run",
        7: "dropped from the queue without a reason",
        8: "marked merged but GitLab never merged it",
        9: "lost: the store no longer knows it",
    }


def test_an_mr_whose_changes_land_twice_is_counted_twice_and_caught(
    sim: GitLabSimulator,
) -> None:
    """A deliberately broken run: the bot lands !1 again on top of its first landing, as a
    queue that forgot it had merged it would. The harness must say "merged 2 times"."""
    bot, _ = sim.create_user("bot")
    project = sim.create_project("twice", files={"a.txt": "a\n"}, members={"bot": MAINTAINER})
    log = LandingLog(sim, project.id, "main")
    try:
        iid = sim.create_merge_request(project, "topic", "Add b", {"b.txt": "b\n"})
        head = sim.merge_request(project, iid)["sha"]
        path = project.path_with_namespace
        sim.commit_files(
            project,
            "main",
            {"b.txt": "b\n"},
            author="bot",
            message=f"Land\n\nSee merge request {path}!{iid}",
        )
        sim.commit_files(
            project,
            "main",
            {"b2.txt": "b\n"},
            author="bot",
            message=f"Again\n\nSee merge request {path}!{iid}",
        )
        merged = landed_merges(sim, project.id, log.by(bot.id), {iid: head})
        state = MergeRequestState(
            project_id=project.id,
            iid=iid,
            sha=head,
            source_branch="topic",
            target_branch="main",
            status=StatusCategory.MERGED,
        )

        assert merged == [iid, iid]
        assert unaccounted([iid], [state], merged) == {iid: "merged 2 times"}
        assert unaccounted([iid], [state], merged[:1]) == {}
    finally:
        log.close()
