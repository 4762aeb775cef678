"""The REST API driven by python-gitlab, a client written against real GitLab."""

from __future__ import annotations

import gitlab
import pytest
import requests

from local.gitlab_sim import GitLabSimulator


def test_auth_is_required_and_errors_have_gitlabs_shape(sim: GitLabSimulator) -> None:
    response = requests.get(f"{sim.url}/api/v4/user", timeout=5)
    assert response.status_code == 401
    assert response.json() == {"message": "401 Unauthorized"}
    bearer = requests.get(
        f"{sim.url}/api/v4/user", timeout=5, headers={"Authorization": f"Bearer {sim.admin_token}"}
    )
    assert bearer.json()["username"] == "root"
    missing = requests.get(
        f"{sim.url}/api/v4/projects/999", timeout=5, headers={"PRIVATE-TOKEN": sim.admin_token}
    )
    assert missing.status_code == 404
    assert missing.json() == {"message": "404 Project Not Found"}


def test_users_status_and_version(sim: GitLabSimulator, gl: gitlab.Gitlab) -> None:
    user, token = sim.create_user(
        "bob", availability="busy", status_message="Out of office", status_emoji="palm_tree"
    )
    gl.auth()
    assert gl.user is not None
    assert gl.user.is_admin
    assert gl.users.get(user.id).username == "bob"
    status = gl.users.get(user.id, lazy=True).status.get()
    assert (status.availability, status.message, status.emoji) == (
        "busy",
        "Out of office",
        "palm_tree",
    )
    assert gl.version()[0] == "18.5.0"
    as_bob = gitlab.Gitlab(sim.url, private_token=token)
    as_bob.auth()
    assert as_bob.user is not None
    assert as_bob.user.username == "bob"


def test_projects_by_path_membership_and_pagination(
    sim: GitLabSimulator, gl: gitlab.Gitlab
) -> None:
    _, token = sim.create_user("carol")
    for number in range(5):
        sim.create_project(
            f"p{number}", namespace="team", members={"carol": 30} if number < 3 else None
        )
    project = gl.projects.get("team/p2")
    assert project.path_with_namespace == "team/p2"
    assert project.http_url_to_repo == f"{sim.url}/team/p2.git"
    carol = gitlab.Gitlab(sim.url, private_token=token)
    assert sorted(p.name for p in carol.projects.list(membership=True, get_all=True)) == [
        "p0",
        "p1",
        "p2",
    ]
    with pytest.raises(gitlab.GitlabGetError) as err:
        carol.projects.get("team/p4")
    assert err.value.response_code == 404
    page = requests.get(
        f"{sim.url}/api/v4/projects",
        params={"per_page": 2, "page": 2},
        headers={"PRIVATE-TOKEN": sim.admin_token},
        timeout=5,
    )
    assert (
        page.headers["X-Page"],
        page.headers["X-Next-Page"],
        page.headers["X-Prev-Page"],
        page.headers["X-Total"],
        page.headers["X-Total-Pages"],
    ) == ("2", "3", "1", "5", "3")
    assert 'rel="next"' in page.headers["Link"]
    assert len(gl.projects.list(get_all=True, per_page=2)) == 5
    created = gl.projects.create({"name": "fresh", "initialize_with_readme": True})
    assert created.default_branch == "main"
    assert created.files.raw(file_path="README.md", ref="main") == b"# fresh\n"


def test_branches_commits_files_and_compare(sim: GitLabSimulator, gl: gitlab.Gitlab) -> None:
    sim.create_project("repo", namespace="g", files={"a.txt": "one\n"})
    project = gl.projects.get("g/repo")
    project.branches.create({"branch": "topic", "ref": "main"})
    commit = project.commits.create(
        {
            "branch": "topic",
            "commit_message": "Change things",
            "actions": [
                {"action": "update", "file_path": "a.txt", "content": "two\n"},
                {"action": "create", "file_path": "dir/b.txt", "content": "bee\n"},
            ],
        }
    )
    assert project.commits.get(commit.id).title == "Change things"
    assert project.files.get("dir/b.txt", ref="topic").decode() == b"bee\n"
    assert project.files.raw(file_path="a.txt", ref="main") == b"one\n"
    assert project.commits.list(ref_name="topic", get_all=True)[0].id == commit.id
    compared = project.repository_compare("main", "topic")
    assert isinstance(compared, dict)
    assert sorted(d["new_path"] for d in compared["diffs"]) == ["a.txt", "dir/b.txt"]
    assert project.branches.get("main").protected
    assert not project.branches.get("topic").protected
    with pytest.raises(gitlab.GitlabCreateError) as err:
        project.commits.create(
            {
                "branch": "topic",
                "commit_message": "x",
                "actions": [{"action": "create", "file_path": "a.txt", "content": "dup"}],
            }
        )
    assert err.value.response_code == 400
    project.branches.delete("topic")
    with pytest.raises(gitlab.GitlabGetError):
        project.branches.get("topic")


def test_merge_request_lifecycle(sim: GitLabSimulator, gl: gitlab.Gitlab) -> None:
    dev, _ = sim.create_user("dev")
    sim.create_project("app", namespace="g", files={"a.txt": "a\n"}, members={"dev": 30})
    iid = sim.create_merge_request(
        "g/app", "feature", "Add b", {"b.txt": "b\n"}, author="dev", labels=["backend"]
    )
    project = gl.projects.get("g/app")
    mr = project.mergerequests.get(iid)
    assert (mr.state, mr.author["username"], mr.labels, mr.has_conflicts) == (
        "opened",
        "dev",
        ["backend"],
        False,
    )
    assert mr.diff_refs["head_sha"] == mr.sha == sim.branch_sha("g/app", "feature")
    mr.labels = ["backend", "ready"]
    mr.assignee_ids = [dev.id]
    mr.save()
    assert project.mergerequests.list(labels=["ready"], state="opened")[0].iid == iid
    assert project.mergerequests.list(assignee_id=dev.id)[0].iid == iid
    assert project.mergerequests.list(target_branch="other") == []
    mr.notes.create({"body": "looks fine"})
    assert [n.body for n in mr.notes.list()] == ["looks fine"]
    discussion = mr.discussions.create({"body": "please fix"})
    assert not project.mergerequests.get(iid).blocking_discussions_resolved
    discussion.resolved = True
    discussion.save()
    assert project.mergerequests.get(iid).blocking_discussions_resolved
    assert [c.title for c in mr.commits()] == ["Add b"]
    changes = mr.changes()
    assert isinstance(changes, dict)
    assert [d["new_path"] for d in changes["changes"]] == ["b.txt"]
    mr.approve()
    assert mr.approvals.get().approved_by[0]["user"]["username"] == "root"
    mr.state_event = "close"
    mr.save()
    assert project.mergerequests.get(iid).state == "closed"
    assert project.mergerequests.list(state="opened") == []


def test_merge_sha_guard_checks_and_merge_commit(sim: GitLabSimulator, gl: gitlab.Gitlab) -> None:
    sim.create_project(
        "app", namespace="g", files={"a.txt": "a\n"}, only_allow_merge_if_pipeline_succeeds=True
    )
    iid = sim.create_merge_request("g/app", "feature", "Draft: add b", {"b.txt": "b\n"})
    project = gl.projects.get("g/app")
    mr = project.mergerequests.get(iid)
    with pytest.raises(gitlab.GitlabMRClosedError) as err:
        mr.merge()
    assert err.value.response_code == 405
    mr.title = "Add b"
    mr.save()
    assert sim.wait_idle()
    with pytest.raises(gitlab.GitlabMRClosedError) as err:
        mr.merge(sha="0" * 40)
    assert err.value.response_code == 409
    merged = project.mergerequests.get(iid)
    assert merged.detailed_merge_status == "mergeable"
    merged.merge(sha=merged.sha, should_remove_source_branch=True)
    merged = project.mergerequests.get(iid)
    assert merged.state == "merged"
    assert merged.merged_by["username"] == "root"
    commit = project.commits.get(merged.merge_commit_sha)
    assert commit.parent_ids[1] == merged.sha
    assert commit.title == "Merge branch 'feature' into 'main'"
    assert sim.read_file("g/app", "main", "b.txt") == b"b\n"
    assert sim.branch_sha("g/app", "feature") is None


def test_ci_gates_merge_status(sim: GitLabSimulator, gl: gitlab.Gitlab) -> None:
    sim.create_project(
        "app", namespace="g", files={"a.txt": "a\n"}, only_allow_merge_if_pipeline_succeeds=True
    )
    sim.set_pipeline_rules("g/app", duration_s=600)
    iid = sim.create_merge_request("g/app", "bad", "Break", {"ci/fail": "x\n"})
    project = gl.projects.get("g/app")
    assert project.mergerequests.get(iid).detailed_merge_status == "ci_still_running"
    assert sim.wait_idle()
    mr = project.mergerequests.get(iid)
    assert (mr.head_pipeline["status"], mr.detailed_merge_status) == ("failed", "ci_must_pass")
    with pytest.raises(gitlab.GitlabMRClosedError):
        mr.merge()


def test_conflicts_and_async_rebase(sim: GitLabSimulator, gl: gitlab.Gitlab) -> None:
    sim.create_project(
        "app", namespace="g", files={"a.txt": "base\n", "b.txt": "b\n"}, merge_method="ff"
    )
    clash = sim.create_merge_request("g/app", "clash", "Clash", {"a.txt": "theirs\n"})
    clean = sim.create_merge_request("g/app", "clean", "Clean", {"c.txt": "c\n"})
    sim.commit_files("g/app", "main", {"a.txt": "ours\n", "b.txt": "b2\n"})
    project = gl.projects.get("g/app")
    conflicted = project.mergerequests.get(clash)
    assert (conflicted.has_conflicts, conflicted.detailed_merge_status) == (True, "conflict")
    behind = project.mergerequests.get(clean)
    assert behind.detailed_merge_status == "need_rebase"
    with pytest.raises(gitlab.GitlabMRClosedError) as err:
        behind.merge()
    assert err.value.response_code == 422
    # GitLab answers 202 with {"rebase_in_progress": true} and rebases later; reading the
    # MR back at once would race with the simulator's fast clock.
    accepted = behind.rebase()
    assert accepted == {"rebase_in_progress": True}
    assert sim.wait_idle()
    rebased = project.mergerequests.get(clean)
    assert not rebased.rebase_in_progress
    assert rebased.merge_error is None
    assert rebased.sha != behind.sha
    assert rebased.detailed_merge_status == "mergeable"
    rebased.merge(sha=rebased.sha)
    assert sim.branch_sha("g/app", "main") == rebased.sha
    assert sim.read_file("g/app", "main", "b.txt") == b"b2\n"
    conflicted.rebase()
    assert sim.wait_idle()
    failed = project.mergerequests.get(clash)
    assert failed.merge_error is not None
    assert "a.txt" in failed.merge_error
    assert failed.sha == conflicted.sha


def test_squash_merge(sim: GitLabSimulator, gl: gitlab.Gitlab) -> None:
    sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
    iid = sim.create_merge_request("g/app", "topic", "One", {"b.txt": "1\n"})
    sim.commit_files("g/app", "topic", {"b.txt": "2\n"}, message="Two")
    mr = gl.projects.get("g/app").mergerequests.get(iid)
    mr.merge(squash=True, squash_commit_message="Squashed")
    merged = gl.projects.get("g/app").mergerequests.get(iid)
    squash = gl.projects.get("g/app").commits.get(merged.squash_commit_sha)
    assert squash.title == "Squashed"
    assert len(squash.parent_ids) == 1
    assert sim.read_file("g/app", "main", "b.txt") == b"2\n"


def test_pipelines_api(sim: GitLabSimulator, gl: gitlab.Gitlab) -> None:
    sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
    sim.set_pipeline_rules("g/app", duration_s=3600)
    project = gl.projects.get("g/app")
    pipeline = project.pipelines.create({"ref": "main"})
    assert pipeline.status == "created"
    assert [p.id for p in project.pipelines.list(ref="main", sha=pipeline.sha)] == [pipeline.id]
    assert sorted(j.name for j in pipeline.jobs.list()) == ["build", "test"]
    pipeline.cancel()
    assert project.pipelines.get(pipeline.id).status == "canceled"
    sim.set_pipeline_rules("g/app", duration_s=1)
    pipeline.retry()
    assert sim.wait_idle()
    assert project.pipelines.get(pipeline.id).status == "success"
    assert project.pipelines.list(status="success")[0].id == pipeline.id


def test_hooks_and_labels_crud(sim: GitLabSimulator, gl: gitlab.Gitlab) -> None:
    sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
    project = gl.projects.get("g/app")
    hook = project.hooks.create(
        {"url": "http://127.0.0.1:9/x", "merge_requests_events": True, "token": "s3cret"}
    )
    assert project.hooks.get(hook.id).merge_requests_events
    hook.pipeline_events = True
    hook.save()
    assert project.hooks.get(hook.id).pipeline_events
    hook.delete()
    assert project.hooks.list() == []
    project.labels.create({"name": "bug", "color": "#ff0000"})
    assert [lb.name for lb in project.labels.list()] == ["bug"]
