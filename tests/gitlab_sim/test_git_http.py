"""Git smart HTTP with the real git CLI and dulwich's client: clone, push, protected
branches, MR head refs, and MRs merged by a push."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

from dulwich import porcelain

from local.gitlab_sim import GitLabSimulator


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
