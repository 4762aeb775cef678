"""Git smart HTTP with the real git CLI and dulwich's client: clone, push, protected
branches, MR head refs, MRs merged by a push, and the push's effects following its
answer."""

from __future__ import annotations

import io
import random
import subprocess
import threading
from pathlib import Path
from typing import Any

import gitlab
import pytest
from dulwich import porcelain
from dulwich.client import get_transport_and_path
from dulwich.refs import Ref

from local.gitlab_sim import GitLabSimulator, gitops
from local.gitlab_sim.models import Project, User
from local.gitlab_sim.pushes import CommitGraph, RefUpdate


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _url(sim: GitLabSimulator, token: str, path: str) -> str:
    return sim.url.replace("http://", f"http://oauth2:{token}@") + f"/{path}.git"


def test_git_cli_clone_push_and_protection(sim: GitLabSimulator, tmp_path: Path) -> None:
    _, dev_token = sim.create_user("dev")
    sim.create_project("app", namespace="g", files={"a.txt": "a\n"}, members={"dev": 30})
    work = tmp_path / "work"
    cloned = _git(tmp_path, "clone", _url(sim, dev_token, "g/app"), str(work))
    assert cloned.returncode == 0, cloned.stderr
    assert (work / "a.txt").read_text() == "a\n"
    _git(work, "checkout", "-b", "topic")
    (work / "b.txt").write_text("b\n")
    _git(work, "add", "b.txt")
    _git(work, "commit", "-m", "Add b")
    pushed = _git(work, "push", "origin", "topic")
    assert pushed.returncode == 0, pushed.stderr
    head = _git(work, "rev-parse", "HEAD").stdout.strip()
    assert sim.branch_sha("g/app", "topic") == head
    refused = _git(work, "push", "origin", "topic:main")
    assert refused.returncode != 0
    assert "not allowed to push code to protected branches" in refused.stderr
    assert sim.branch_sha("g/app", "main") != head


def test_wrong_token_is_refused(sim: GitLabSimulator, tmp_path: Path) -> None:
    sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
    result = _git(
        tmp_path,
        "-c",
        "credential.helper=",
        "clone",
        _url(sim, "glpat-wrong", "g/app"),
        str(tmp_path / "w"),
    )
    assert result.returncode != 0
    assert not (tmp_path / "w" / "a.txt").exists()


def test_push_that_lands_mr_head_marks_it_merged(sim: GitLabSimulator, tmp_path: Path) -> None:
    _, bot_token = sim.create_user("bot")
    sim.create_project("app", namespace="g", files={"a.txt": "a\n"}, members={"bot": 40})
    first = sim.create_merge_request("g/app", "one", "One", {"one.txt": "1\n"})
    second = sim.create_merge_request("g/app", "two", "Two", {"two.txt": "2\n"})
    work = tmp_path / "work"
    assert _git(tmp_path, "clone", _url(sim, bot_token, "g/app"), str(work)).returncode == 0
    fetched = _git(work, "fetch", "origin", "refs/merge-requests/1/head:mr1")
    assert fetched.returncode == 0, fetched.stderr
    assert _git(work, "rev-parse", "mr1").stdout.strip() == sim.merge_request("g/app", first)["sha"]
    _git(work, "merge", "--ff-only", "mr1")
    pushed = _git(work, "push", "origin", "HEAD:main")
    assert pushed.returncode == 0, pushed.stderr
    # GitLab marks it merged shortly after the push, in its post-receive work.
    assert sim.wait_idle()
    landed = sim.merge_request("g/app", first)
    assert landed["state"] == "merged"
    assert landed["merged_by"]["username"] == "bot"
    assert sim.merge_request("g/app", second)["state"] == "opened"
    hidden = _git(work, "push", "origin", "HEAD:refs/merge-requests/2/head")
    assert hidden.returncode != 0


def test_force_push_to_protected_branch_is_refused(sim: GitLabSimulator, tmp_path: Path) -> None:
    sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
    sim.commit_files("g/app", "main", {"a.txt": "b\n"})
    work = tmp_path / "work"
    assert _git(tmp_path, "clone", _url(sim, sim.admin_token, "g/app"), str(work)).returncode == 0
    _git(work, "reset", "--hard", "HEAD~1")
    forced = _git(work, "push", "--force", "origin", "HEAD:main")
    assert forced.returncode != 0
    assert "force push" in forced.stderr


def test_dulwich_client_clone_and_push(sim: GitLabSimulator, tmp_path: Path) -> None:
    _, dev_token = sim.create_user("dev")
    sim.create_project("app", namespace="g", files={"a.txt": "a\n"}, members={"dev": 30})
    url = f"{sim.url}/g/app.git"
    local = porcelain.clone(
        url, str(tmp_path / "clone"), username="oauth2", password=dev_token, errstream=io.BytesIO()
    )
    try:
        assert (tmp_path / "clone" / "a.txt").read_text() == "a\n"
        (tmp_path / "clone" / "c.txt").write_text("c\n")
        porcelain.add(local, [str(tmp_path / "clone" / "c.txt")])
        sha = porcelain.commit(
            local,
            message=b"Add c",
            author=b"Dev <dev@example.com>",
            committer=b"Dev <dev@example.com>",
        )
        porcelain.push(
            local,
            url,
            b"HEAD:refs/heads/from-dulwich",
            username="oauth2",
            password=dev_token,
            errstream=io.BytesIO(),
        )
    finally:
        local.close()
    assert sim.branch_sha("g/app", "from-dulwich") == sha.decode()
    assert sim.read_file("g/app", "from-dulwich", "c.txt") == b"c\n"


def test_a_push_is_answered_before_its_effects_follow(
    sim: GitLabSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As GitLab's: the refs move when receive-pack answers; MR updates, pipelines and
    hooks come after, from the post-receive work the push queued."""
    _, bot_token = sim.create_user("bot")
    sim.create_project("app", namespace="g", files={"a.txt": "a\n"}, members={"bot": 40})
    iid = sim.create_merge_request("g/app", "one", "One", {"one.txt": "1\n"})
    assert sim.wait_idle()
    head = sim.merge_request("g/app", iid)["sha"]
    pipelines_before = len(sim.store.pipelines)
    release, started = threading.Event(), threading.Event()
    original = sim.pushes.on_push

    def held(project: Project, user: User, updates: list[RefUpdate], *args: Any, **kw: Any) -> None:
        started.set()
        assert release.wait(30), "the test never released the post-receive work"
        original(project, user, updates, *args, **kw)

    monkeypatch.setattr(sim.pushes, "on_push", held)
    work = tmp_path / "work"
    assert _git(tmp_path, "clone", _url(sim, bot_token, "g/app"), str(work)).returncode == 0
    assert _git(work, "fetch", "origin", f"refs/merge-requests/{iid}/head").returncode == 0
    assert _git(work, "merge", "--ff-only", "FETCH_HEAD").returncode == 0

    pushed = _git(work, "push", "origin", "HEAD:main")

    assert pushed.returncode == 0, pushed.stderr
    assert sim.branch_sha("g/app", "main") == head
    assert started.wait(30)
    assert sim.merge_request("g/app", iid)["state"] == "opened"
    assert len(sim.store.pipelines) == pipelines_before
    assert not sim.pushes.idle()
    release.set()
    assert sim.wait_idle()
    assert sim.merge_request("g/app", iid)["state"] == "merged"
    assert [p.sha for p in list(sim.store.pipelines.values())[pipelines_before:]] == [head]


def test_an_mr_opened_before_the_push_effects_ran_gets_one_pipeline(
    sim: GitLabSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The MR opened on the pushed commit starts its pipeline; the push's own work, coming
    after, does not start a second one for the same commit."""
    _, bot_token = sim.create_user("bot")
    sim.create_project("app", namespace="g", files={"a.txt": "a\n"}, members={"bot": 40})
    release = threading.Event()
    original = sim.pushes.on_push

    def held(project: Project, user: User, updates: list[RefUpdate], *args: Any, **kw: Any) -> None:
        assert release.wait(30), "the test never released the post-receive work"
        original(project, user, updates, *args, **kw)

    monkeypatch.setattr(sim.pushes, "on_push", held)
    work = tmp_path / "work"
    assert _git(tmp_path, "clone", _url(sim, bot_token, "g/app"), str(work)).returncode == 0
    (work / "b.txt").write_text("b\n")
    assert _git(work, "add", "b.txt").returncode == 0
    assert _git(work, "commit", "-q", "-m", "Add b").returncode == 0
    assert _git(work, "push", "origin", "HEAD:refs/heads/topic").returncode == 0
    head = sim.branch_sha("g/app", "topic")
    project = sim.project("g/app")
    sim.merge_requests.create(
        project,
        sim.store.user_by_username("bot"),
        {"source_branch": "topic", "target_branch": "main", "title": "Add b"},
    )
    release.set()
    assert sim.wait_idle()
    assert [p.sha for p in sim.store.pipelines.values()] == [head]


def test_commit_graph_answers_ancestry_as_the_full_walk_does(
    sim: GitLabSimulator,
) -> None:
    """On a random history whose commits share one timestamp (date-pruned walks get those
    wrong), every ancestry question gets the exact walk's answer."""
    project = sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
    rng = random.Random(7)
    author = gitops.Identity("Dev", "dev@example.com")
    with sim.store.lock:
        repo = sim.store.repo(project.id)
        root = gitops.branch_sha(repo, "main")
        assert root is not None
        commits = [root]
        for number in range(60):
            parents = rng.sample(commits, k=min(len(commits), rng.choice([1, 1, 2])))
            tree = gitops.apply_actions(
                repo,
                parents[0],
                [{"action": "update", "file_path": "a.txt", "content": f"{number}\n"}],
            )
            commits.append(
                gitops.make_commit(repo, tree, parents, str(number), author, author_time=0)
            )
        graph = CommitGraph(repo)
        for _ in range(400):
            ancestor, descendant = rng.choice(commits), rng.choice(commits)
            expected = gitops.is_ancestor(repo, ancestor, descendant)
            assert graph.is_ancestor(ancestor, descendant) is expected


def _branch_pipelines(sim: GitLabSimulator, branch: str) -> list[Any]:
    return [p for p in sim.store.pipelines.values() if p.ref == branch]


def test_git_cli_push_options_skip_ci_and_pass_variables(
    sim: GitLabSimulator, tmp_path: Path
) -> None:
    """GitLab's push options: ``ci.skip`` records the branch pipeline as skipped (no jobs,
    nothing run), ``ci.variable`` hands CI/CD variables to the pipeline the push creates;
    an option GitLab does not know changes nothing."""
    _, dev_token = sim.create_user("dev")
    sim.create_project("app", namespace="g", files={"a.txt": "a\n"}, members={"dev": 30})
    work = tmp_path / "work"
    assert _git(tmp_path, "clone", _url(sim, dev_token, "g/app"), str(work)).returncode == 0
    for name in ("skipped", "with-vars", "plain"):
        assert _git(work, "checkout", "-q", "-b", name, "origin/main").returncode == 0
        (work / f"{name}.txt").write_text(f"{name}\n")
        assert _git(work, "add", ".").returncode == 0
        assert _git(work, "commit", "-q", "-m", f"Add {name}").returncode == 0

    skipped = _git(work, "push", "-o", "ci.skip", "origin", "skipped")
    with_vars = _git(
        work,
        "push",
        "-o",
        "ci.variable=MAX_RETRIES=10",
        "-o",
        "ci.variable=URL=http://x?a=b",
        "origin",
        "with-vars",
    )
    plain = _git(work, "push", "-o", "merge_request.unknown_thing", "origin", "plain")

    assert skipped.returncode == with_vars.returncode == plain.returncode == 0, (
        skipped.stderr + with_vars.stderr + plain.stderr
    )
    assert sim.wait_idle()
    [skip] = _branch_pipelines(sim, "skipped")
    assert (skip.status, skip.jobs, skip.finished_at is not None) == ("skipped", [], True)
    [run] = _branch_pipelines(sim, "with-vars")
    assert run.status != "skipped"
    assert run.jobs
    assert run.variables == [("MAX_RETRIES", "10"), ("URL", "http://x?a=b")]
    [default] = _branch_pipelines(sim, "plain")
    assert default.status != "skipped"
    assert default.variables == []

    client = gitlab.Gitlab(sim.url, private_token=dev_token)
    project = client.projects.get("g/app")
    listed = {v.key: v.value for v in project.pipelines.get(run.id).variables.list()}
    assert listed == {"MAX_RETRIES": "10", "URL": "http://x?a=b"}
    assert project.pipelines.get(skip.id).status == "skipped"


def test_dulwich_client_sends_push_options(sim: GitLabSimulator, tmp_path: Path) -> None:
    _, dev_token = sim.create_user("dev")
    sim.create_project("app", namespace="g", files={"a.txt": "a\n"}, members={"dev": 30})
    url = f"{sim.url}/g/app.git"
    local = porcelain.clone(
        url, str(tmp_path / "clone"), username="oauth2", password=dev_token, errstream=io.BytesIO()
    )
    try:
        (tmp_path / "clone" / "c.txt").write_text("c\n")
        porcelain.add(local, [str(tmp_path / "clone" / "c.txt")])
        porcelain.commit(local, message=b"Add c", author=b"D <d@x>", committer=b"D <d@x>")
        client, path = get_transport_and_path(url, username="oauth2", password=dev_token)
        head = local.head()
        result = client.send_pack(
            path.encode(),
            lambda refs: {Ref(b"refs/heads/landed"): head},
            local.generate_pack_data,  # type: ignore[arg-type]
            push_options=[b"ci.skip"],
        )
    finally:
        local.close()
    assert not any((result.ref_status or {}).values())
    assert sim.wait_idle()
    assert [p.status for p in _branch_pipelines(sim, "landed")] == ["skipped"]
