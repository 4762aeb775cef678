"""The python-gitlab gateway's merge-workflow calls, against the GitLab simulator."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import gitlab
import pytest

from bench.merge_queue import rest_calls
from local.gitlab_sim import GitLabSimulator
from local.gitlab_sim.models import Project
from merge_assist.adapters.gitlab_gateway import PythonGitLabGateway
from merge_assist.platform.config import ProjectConfig
from merge_assist.platform.errors import (
    ConflictError,
    GitLabRefused,
    GitLabUnavailable,
    NotFoundError,
    NotMergeableError,
)
from merge_assist.platform.metrics import Metric
from merge_assist.queue import comments
from merge_assist.queue.models import ReasonCode
from merge_assist.queue.readiness import not_ready_reasons
from tests.recording_meter import RecordingMeter

# A simulated minute in 60 ms: pipelines and rebases finish within a few scheduler ticks.
TIME_SCALE = 0.001
POLL_S = 0.01
POLL_TIMEOUT_S = 10.0
MAINTAINER = 40
DEVELOPER = 30
_names = itertools.count(1)
T = TypeVar("T")


@dataclass
class GitLab:
    sim: GitLabSimulator
    gateway: PythonGitLabGateway
    bot_id: int
    bot_token: str
    admin: gitlab.Gitlab

    def project(self, bot_access: int = MAINTAINER, **settings: Any) -> Project:
        return self.sim.create_project(
            f"app{next(_names)}",
            namespace="g",
            files={"a.txt": "a\n"},
            members={"bot": bot_access, "alice": DEVELOPER},
            **settings,
        )


@pytest.fixture(scope="module")
def gl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitLab]:
    data_dir: Path = tmp_path_factory.mktemp("gitlab")
    with GitLabSimulator(data_dir, time_scale=TIME_SCALE) as sim:
        bot, token = sim.create_user("bot")
        sim.create_user("alice")
        yield GitLab(
            sim,
            PythonGitLabGateway(sim.url, token),
            bot.id,
            token,
            gitlab.Gitlab(sim.url, private_token=sim.admin_token),
        )


def _until(condition: Callable[[], T | None]) -> T:
    deadline = time.monotonic() + POLL_TIMEOUT_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(POLL_S)
    raise AssertionError("condition not met in time")


def _user_notes(gl: GitLab, project: Project, iid: int) -> list[str]:
    mr = gl.admin.projects.get(project.id, lazy=True).mergerequests.get(iid, lazy=True)
    return [n.body for n in mr.notes.list(get_all=True) if not n.system]


# --- facts ----------------------------------------------------------------------------------


def test_facts_of_a_ready_merge_request_leave_no_reason(gl: GitLab) -> None:
    project = gl.project(approvals_before_merge=1, only_allow_merge_if_pipeline_succeeds=True)
    iid = gl.sim.create_merge_request(
        project, "topic", "Add b", {"b.txt": "b\n"}, assignees=["bot"]
    )
    gl.sim.approve(project, iid, "alice")
    assert gl.sim.wait_idle()

    with rest_calls(gl.sim) as calls:
        facts = gl.gateway.merge_request_facts(project.id, iid)

    # "mergeable" says the approvals are there: one call, not two.
    assert calls["bot"] == 1
    assert facts.iid == iid
    assert facts.state == "opened"
    assert facts.assignee_ids == [gl.bot_id]
    assert facts.approved is True
    assert facts.head_pipeline_status == "success"
    # GitLab's own time for the pipeline's end, as the MR's head_pipeline gives it.
    finished = gl.sim.merge_request(project, iid)["head_pipeline"]["finished_at"]
    assert facts.head_pipeline_finished_at == datetime.fromisoformat(finished)
    assert facts.head_pipeline_finished_at is not None
    assert facts.head_pipeline_finished_at.tzinfo is not None
    assert facts.detailed_merge_status == "mergeable"
    assert not facts.draft
    assert not facts.has_conflicts
    assert not_ready_reasons(facts, ProjectConfig(project_id=project.id), gl.bot_id) == []


def test_facts_of_a_draft_failing_unapproved_merge_request(gl: GitLab) -> None:
    project = gl.project(approvals_before_merge=1, only_allow_merge_if_pipeline_succeeds=True)
    gl.sim.set_pipeline_rules(project, fail_paths=["ci/fail"])
    iid = gl.sim.create_merge_request(project, "topic", "Draft: break it", {"ci/fail": "x\n"})
    assert gl.sim.wait_idle()

    with rest_calls(gl.sim) as calls:
        facts = gl.gateway.merge_request_facts(project.id, iid)

    # A draft's status names the draft, not the approvals: those are asked.
    assert facts.detailed_merge_status == "draft_status"
    assert calls["bot"] == 2
    assert facts.draft
    assert facts.approved is False
    assert facts.head_pipeline_status == "failed"
    assert facts.assignee_ids == []
    reasons = not_ready_reasons(facts, ProjectConfig(project_id=project.id), gl.bot_id)
    assert {r.code for r in reasons} == {
        ReasonCode.NOT_ASSIGNED,
        ReasonCode.DRAFT,
        ReasonCode.APPROVALS,
        ReasonCode.PIPELINE,
    }


def test_facts_say_when_an_merge_request_conflicts_with_its_target(gl: GitLab) -> None:
    project = gl.project()
    iid = gl.sim.create_merge_request(project, "topic", "Change a", {"a.txt": "mine\n"})
    gl.sim.commit_files(project, "main", {"a.txt": "theirs\n"})

    facts = gl.gateway.merge_request_facts(project.id, iid)

    assert facts.has_conflicts
    assert facts.detailed_merge_status == "conflict"


# --- transitions ----------------------------------------------------------------------------


def test_a_transition_posts_one_note_and_swaps_the_queue_labels(gl: GitLab) -> None:
    project = gl.project()
    config = ProjectConfig(project_id=project.id)
    iid = gl.sim.create_merge_request(
        project, "topic", "Add b", {"b.txt": "b\n"}, labels=["backend", config.labels.not_ready]
    )
    transition = comments.recognised(config, "main", 1)

    gl.gateway.apply_transition(project.id, iid, transition, key="mr-1-v1")

    assert _user_notes(gl, project, iid) == [
        f"{transition.comment}\n\n<!-- merge-assist:mr-1-v1 -->"
    ]
    assert sorted(gl.sim.merge_request(project, iid)["labels"]) == sorted(
        ["backend", config.labels.recognised]
    )


def test_a_transition_without_a_label_only_takes_the_queue_labels_off(gl: GitLab) -> None:
    project = gl.project()
    config = ProjectConfig(project_id=project.id)
    iid = gl.sim.create_merge_request(
        project, "topic", "Add b", {"b.txt": "b\n"}, labels=["backend", config.labels.recognised]
    )

    gl.gateway.apply_transition(
        project.id, iid, comments.merged(config, "main", "http://ci/1"), key="mr-1-v2"
    )

    assert gl.sim.merge_request(project, iid)["labels"] == ["backend"]
    assert len(_user_notes(gl, project, iid)) == 1


# --- rebase ---------------------------------------------------------------------------------


def _rebase_done(gl: GitLab, project: Project, iid: int) -> tuple[bool, str | None]:
    def finished() -> tuple[bool, str | None] | None:
        status = gl.gateway.rebase_status(project.id, iid)
        return None if status[0] else status

    return _until(finished)


def test_rebase_puts_the_source_branch_on_the_target_head(gl: GitLab) -> None:
    project = gl.project()
    iid = gl.sim.create_merge_request(project, "topic", "Add b", {"b.txt": "b\n"})
    before = gl.sim.merge_request(project, iid)["sha"]
    target = gl.sim.commit_files(project, "main", {"c.txt": "c\n"})

    gl.gateway.rebase(project.id, iid, skip_ci=True)

    assert _rebase_done(gl, project, iid) == (False, None)
    after = gl.sim.merge_request(project, iid)
    assert after["sha"] != before
    assert after["diff_refs"]["base_sha"] == target
    assert gl.sim.read_file(project, after["sha"], "c.txt") == b"c\n"
    assert gl.gateway.pipelines_for_sha(project.id, after["sha"]) == []  # skip_ci held


def test_a_rebase_without_skip_ci_runs_the_pipeline(gl: GitLab) -> None:
    project = gl.project()
    iid = gl.sim.create_merge_request(project, "topic", "Add b", {"b.txt": "b\n"})
    gl.sim.commit_files(project, "main", {"c.txt": "c\n"})

    gl.gateway.rebase(project.id, iid, skip_ci=False)

    _rebase_done(gl, project, iid)
    assert gl.gateway.pipelines_for_sha(project.id, gl.sim.merge_request(project, iid)["sha"])


def test_a_conflicting_rebase_reports_the_merge_error(gl: GitLab) -> None:
    project = gl.project()
    iid = gl.sim.create_merge_request(project, "topic", "Change a", {"a.txt": "mine\n"})
    before = gl.sim.merge_request(project, iid)["sha"]
    gl.sim.commit_files(project, "main", {"a.txt": "theirs\n"})

    gl.gateway.rebase(project.id, iid, skip_ci=False)

    in_progress, error = _rebase_done(gl, project, iid)
    assert not in_progress
    assert error
    assert gl.sim.merge_request(project, iid)["sha"] == before


def test_rebasing_a_closed_merge_request_is_refused_with_its_status(gl: GitLab) -> None:
    project = gl.project()
    iid = gl.sim.create_merge_request(project, "topic", "Add b", {"b.txt": "b\n"})
    gl.gateway.close_merge_request(project.id, iid)

    with pytest.raises(GitLabRefused) as refused:
        gl.gateway.rebase(project.id, iid, skip_ci=True)

    assert refused.value.status == 405


def test_rebasing_a_branch_the_bot_may_not_push_to_is_forbidden(gl: GitLab) -> None:
    project = gl.project(bot_access=DEVELOPER)
    iid = gl.sim.create_merge_request(project, "topic", "Add b", {"b.txt": "b\n"})
    gl.sim.protect_branch(project, "topic", push_access_level=MAINTAINER)

    with pytest.raises(GitLabRefused) as refused:
        gl.gateway.rebase(project.id, iid, skip_ci=True)

    assert refused.value.status == 403


def test_a_second_rebase_while_one_runs_is_a_conflict(tmp_path: Path) -> None:
    # Real time: the first rebase takes two seconds, so the second surely finds it running.
    with GitLabSimulator(tmp_path, time_scale=1.0) as sim:
        _, token = sim.create_user("bot")
        project = sim.create_project("app", files={"a.txt": "a\n"}, members={"bot": MAINTAINER})
        iid = sim.create_merge_request(project, "topic", "Add b", {"b.txt": "b\n"})
        gateway = PythonGitLabGateway(sim.url, token)

        gateway.rebase(project.id, iid, skip_ci=True)
        with pytest.raises(ConflictError):
            gateway.rebase(project.id, iid, skip_ci=True)
        assert gateway.rebase_status(project.id, iid) == (True, None)


# --- merge ----------------------------------------------------------------------------------


def test_merge_with_a_stale_sha_merges_nothing(gl: GitLab) -> None:
    project = gl.project()
    iid = gl.sim.create_merge_request(project, "topic", "Add b", {"b.txt": "b\n"})
    stale = gl.sim.merge_request(project, iid)["sha"]
    gl.sim.commit_files(project, "topic", {"b.txt": "b2\n"})
    target = gl.sim.branch_sha(project, "main")

    with pytest.raises(ConflictError):
        gl.gateway.merge(project.id, iid, stale)

    assert gl.sim.merge_request(project, iid)["state"] == "opened"
    assert gl.sim.branch_sha(project, "main") == target


def test_merge_returns_the_target_branchs_new_head(gl: GitLab) -> None:
    project = gl.project()
    iid = gl.sim.create_merge_request(project, "topic", "Add b", {"b.txt": "b\n"})
    head = gl.sim.merge_request(project, iid)["sha"]

    landed = gl.gateway.merge(project.id, iid, head, message="Land b")

    assert landed == gl.sim.branch_sha(project, "main")
    assert landed != head  # a merge commit
    commit = gl.admin.projects.get(project.id, lazy=True).commits.get(landed)
    assert commit.message.startswith("Land b")
    assert gl.sim.merge_request(project, iid)["state"] == "merged"


def test_fast_forward_merge_returns_the_merge_requests_head(gl: GitLab) -> None:
    project = gl.project(merge_method="ff")
    iid = gl.sim.create_merge_request(project, "topic", "Add b", {"b.txt": "b\n"})
    head = gl.sim.merge_request(project, iid)["sha"]

    assert gl.gateway.merge(project.id, iid, head) == head == gl.sim.branch_sha(project, "main")


def test_merging_a_draft_is_not_mergeable_with_gitlabs_reason(gl: GitLab) -> None:
    project = gl.project()
    iid = gl.sim.create_merge_request(project, "topic", "Draft: b", {"b.txt": "b\n"})
    head = gl.sim.merge_request(project, iid)["sha"]

    with pytest.raises(NotMergeableError) as refused:
        gl.gateway.merge(project.id, iid, head)

    assert refused.value.status == 405
    assert "405" in str(refused.value)
    assert gl.sim.merge_request(project, iid)["state"] == "opened"


# --- pipelines ------------------------------------------------------------------------------


def test_pipelines_created_found_by_sha_newest_first_and_read_back(gl: GitLab) -> None:
    project = gl.project()
    sha = gl.sim.branch_sha(project, "main")
    assert sha is not None

    first = gl.gateway.create_pipeline(project.id, "main")
    second = gl.gateway.create_pipeline(project.id, "main")

    assert (first.sha, first.ref) == (sha, "main")
    found = gl.gateway.pipelines_for_sha(project.id, sha)
    assert [p.id for p in found] == [second.id, first.id]
    assert gl.gateway.pipelines_for_sha(project.id, sha, ref="elsewhere") == []
    assert gl.sim.wait_idle()
    done = gl.gateway.pipeline(project.id, first.id)
    assert (done.id, done.status, done.sha) == (first.id, "success", sha)


def test_a_missing_pipeline_is_not_found(gl: GitLab) -> None:
    project = gl.project()

    with pytest.raises(NotFoundError):
        gl.gateway.pipeline(project.id, 987654)


# --- the batch merge request ----------------------------------------------------------------


def test_ensure_merge_request_creates_once_then_updates(gl: GitLab) -> None:
    project = gl.project()
    gl.sim.commit_files(project, "merge-assist/main", {"b.txt": "b\n"}, start_branch="main")
    labels = [ProjectConfig(project_id=project.id).labels.batch_merge_request]

    iid = gl.gateway.ensure_merge_request(
        project.id, "merge-assist/main", "main", title="Batch 1", description="!1", labels=labels
    )
    again = gl.gateway.ensure_merge_request(
        project.id, "merge-assist/main", "main", title="Batch 2", description="!2", labels=labels
    )

    assert again == iid
    mr = gl.sim.merge_request(project, iid)
    assert (mr["title"], mr["description"], mr["labels"]) == ("Batch 2", "!2", labels)
    assert mr["source_branch"] == "merge-assist/main"

    gl.gateway.close_merge_request(project.id, iid)
    gl.gateway.close_merge_request(project.id, iid)
    assert gl.sim.merge_request(project, iid)["state"] == "closed"
    reopened = gl.gateway.ensure_merge_request(
        project.id, "merge-assist/main", "main", title="Batch 3", description="", labels=labels
    )
    assert reopened != iid


# --- project and branches -------------------------------------------------------------------


def test_project_settings_and_branch_heads(gl: GitLab) -> None:
    project = gl.project(merge_method="rebase_merge")

    assert gl.gateway.project_merge_method(project.id) == "rebase_merge"
    assert gl.gateway.project_http_url(project.id).endswith(f"/{project.path_with_namespace}.git")
    assert gl.gateway.branch_sha(project.id, "main") == gl.sim.branch_sha(project, "main")
    assert gl.gateway.branch_sha(project.id, "no/such-branch") is None


def test_a_missing_project_is_not_found_and_the_token_stays_out(gl: GitLab) -> None:
    missing = 987654
    calls: list[Callable[[], object]] = [
        lambda: gl.gateway.merge_request_facts(missing, 1),
        lambda: gl.gateway.branch_sha(missing, "main"),
        lambda: gl.gateway.project_merge_method(missing),
        lambda: gl.gateway.merge(missing, 1, "0" * 40),
    ]
    for call in calls:
        with pytest.raises(NotFoundError) as error:
            call()
        assert gl.bot_token not in str(error.value)


def test_calls_failures_and_python_gitlabs_retries_are_counted(gl: GitLab) -> None:
    project = gl.project()
    meter = RecordingMeter()
    gateway = PythonGitLabGateway(gl.sim.url, gl.bot_token, meter=meter)

    assert gateway.project_merge_method(project.id) == "merge"
    assert meter.values(Metric.GITLAB_API_CALLS) == [1]
    assert Metric.GITLAB_API_ERRORS not in meter.names()
    assert Metric.GITLAB_API_RETRIES not in meter.names()

    meter.clear()
    gl.sim.inject_fault(rf"^/projects/{project.id}$", method="GET", status=502, times=2)
    assert gateway.project_merge_method(project.id) == "merge"
    # Two 502s, each retried by python-gitlab, then the answer: three requests sent.
    assert meter.values(Metric.GITLAB_API_CALLS) == [1, 1, 1]
    assert meter.values(Metric.GITLAB_API_ERRORS) == [1, 1]
    assert meter.values(Metric.GITLAB_API_RETRIES) == [2]

    meter.clear()
    with pytest.raises(NotFoundError):
        gateway.project_merge_method(987654)
    # A 4xx is GitLab's answer, not a failure of the call, and is not retried.
    assert meter.values(Metric.GITLAB_API_CALLS) == [1]
    assert Metric.GITLAB_API_ERRORS not in meter.names()


def test_a_note_whose_answer_timed_out_is_not_posted_twice(gl: GitLab) -> None:
    project = gl.project()
    config = ProjectConfig(project_id=project.id)
    iid = gl.sim.create_merge_request(project, "slow", "Add b", {"b.txt": "b\n"})
    impatient = PythonGitLabGateway(gl.sim.url, gl.bot_token, timeout=0.3)
    # GitLab takes the note but answers after the client has given up.
    gl.sim.inject_fault(r"/notes$", method="POST", latency_s=0.6, times=1)

    impatient.apply_transition(project.id, iid, comments.merged(config, "main", None), key="k-1")

    assert len(_user_notes(gl, project, iid)) == 1


def test_an_owed_note_already_on_gitlab_is_not_posted_again(gl: GitLab) -> None:
    project = gl.project()
    config = ProjectConfig(project_id=project.id)
    iid = gl.sim.create_merge_request(project, "owed", "Add b", {"b.txt": "b\n"})
    transition = comments.merged(config, "main", None)
    gl.gateway.apply_transition(project.id, iid, transition, key="k-2")

    gl.gateway.apply_transition(project.id, iid, transition, key="k-2", may_exist=True)
    gl.gateway.apply_transition(project.id, iid, transition, key="k-3", may_exist=True)

    assert len(_user_notes(gl, project, iid)) == 2


def test_gitlab_not_answering_is_reported_as_unavailable(gl: GitLab) -> None:
    project = gl.project()
    iid = gl.sim.create_merge_request(project, "down", "Add b", {"b.txt": "b\n"})
    nowhere = PythonGitLabGateway("http://127.0.0.1:9", gl.bot_token, timeout=0.3)

    with pytest.raises(GitLabUnavailable):
        nowhere.merge_request_facts(project.id, iid)


def test_a_merge_whose_answer_was_lost_is_the_merge_asked_for(gl: GitLab) -> None:
    project = gl.project()
    iid = gl.sim.create_merge_request(project, "lost", "Add b", {"b.txt": "b\n"})
    head = gl.sim.merge_request(project, iid)["sha"]
    # GitLab merges, then the answer is lost; python-gitlab's retry meets "not open".
    gl.sim.inject_fault(r"/merge$", method="PUT", status=502, after_effect=True, times=1)

    landed = gl.gateway.merge(project.id, iid, head)

    assert landed == gl.sim.branch_sha(project, "main")
    assert gl.sim.merge_request(project, iid)["state"] == "merged"


def test_a_note_whose_answer_was_lost_after_gitlab_took_it_is_not_posted_twice(
    gl: GitLab,
) -> None:
    project = gl.project()
    config = ProjectConfig(project_id=project.id)
    iid = gl.sim.create_merge_request(project, "lost-note", "Add b", {"b.txt": "b\n"})
    gl.sim.inject_fault(r"/notes$", method="POST", status=502, after_effect=True, times=2)

    gl.gateway.apply_transition(
        project.id, iid, comments.merged(config, "main", None), key="mr-1-v9"
    )

    assert len(_user_notes(gl, project, iid)) == 1


def test_several_merge_requests_are_read_in_one_call(gl: GitLab) -> None:
    project = gl.project()
    iids = [
        gl.sim.create_merge_request(project, f"topic-{n}", f"Change {n}", {f"{n}.txt": "x\n"})
        for n in range(3)
    ]
    gl.sim.create_merge_request(project, "other", "Other", {"other.txt": "x\n"})
    assert gl.sim.wait_idle()

    with rest_calls(gl.sim) as calls:
        found = gl.gateway.merge_requests(project.id, [iids[2], iids[0], iids[1]])

    assert calls["bot"] == 1
    assert list(found) == sorted(iids)
    for iid in iids:
        one = gl.gateway.merge_request(project.id, iid)
        assert (found[iid].sha, found[iid].state, found[iid].source_branch) == (
            one.sha,
            one.state,
            one.source_branch,
        )
    with pytest.raises(NotFoundError, match=f"!{max(iids) + 10} "):
        gl.gateway.merge_requests(project.id, [iids[0], max(iids) + 10])
