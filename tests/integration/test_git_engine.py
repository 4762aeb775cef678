"""The git engine against the GitLab simulator's smart HTTP: batches built with each merge
method, conflicts, landing by fast-forward push, the compare-and-set, and bad credentials."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dulwich.client import AbstractHttpGitClient
from dulwich.errors import GitProtocolError
from dulwich.object_store import iter_tree_contents
from dulwich.objects import Commit, ObjectID, ShaFile
from dulwich.pack import pack_objects_to_data
from dulwich.repo import Repo

from local.gitlab_sim import GitLabSimulator
from merge_assist.adapters import git_engine
from merge_assist.adapters.git_engine import (
    GitAuthError,
    GitEngine,
    GitTransportError,
    PushRejected,
    RefNotFound,
    RemoteMoved,
)
from merge_assist.queue.batch_plan import (
    BatchBuild,
    BatchMember,
    GitIdentity,
    MergeMethod,
    branch_ref,
    merge_request_ref,
)

PROJECT = "g/app"
BOT = GitIdentity(name="Merge Assist", email="merge-assist@example.com")
WHEN = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
SHARED = "one\ntwo\nthree\nfour\nfive\nsix\nseven\n"


@dataclass
class Scene:
    sim: GitLabSimulator
    token: str
    engine: GitEngine
    target_sha: str
    members: dict[str, BatchMember]


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    with GitLabSimulator(tmp_path / "gitlab", time_scale=0.001) as sim:
        _, token = sim.create_user("bot")
        sim.create_user("dev")
        sim.create_project(
            "app",
            namespace="g",
            files={"shared.txt": SHARED, "keep.txt": "keep\n"},
            members={"bot": 40, "dev": 30},
        )
        changes: dict[str, dict[str, str | None]] = {
            "one": {"shared.txt": SHARED.replace("one", "ONE"), "one.txt": "1\n"},
            "two": {"shared.txt": SHARED.replace("seven", "SEVEN"), "two.txt": "2\n"},
            "three": {"dir/three.txt": "3\n"},
            "clash": {"shared.txt": SHARED.replace("one", "uno")},
        }
        iids = {
            name: sim.create_merge_request(PROJECT, name, f"Change {name}", files, author="dev")
            for name, files in changes.items()
        }
        # A second commit on one MR, so rebasing replays more than one commit.
        sim.commit_files(PROJECT, "two", {"two.txt": "2\n2\n"}, author="dev")
        # The target moves after the MRs branched off, as it does in real life.
        target_sha = sim.commit_files(
            PROJECT, "main", {"shared.txt": SHARED.replace("four", "FOUR")}
        )
        sim.wait_idle()
        members = {
            name: BatchMember(
                iid=iid,
                head_sha=sim.merge_request(PROJECT, iid)["sha"],
                source_branch=name,
                title=f"Change {name}",
            )
            for name, iid in iids.items()
        }
        with GitEngine(
            f"{sim.url}/{PROJECT}.git", token, tmp_path / "work", project_path=PROJECT
        ) as engine:
            engine.fetch(
                [branch_ref("main"), *(merge_request_ref(m.iid) for m in members.values())]
            )
            yield Scene(sim, token, engine, target_sha, members)


def build(scene: Scene, names: list[str], method: MergeMethod = MergeMethod.MERGE) -> BatchBuild:
    return scene.engine.build_batch(
        scene.target_sha,
        [scene.members[name] for name in names],
        method=method,
        identity=BOT,
        target_branch="main",
        when=WHEN,
    )


def commit(engine: GitEngine, sha: str) -> Commit:
    found = engine.repo[sha.encode()]
    assert isinstance(found, Commit)
    return found


EXPECTED = {
    "shared.txt": b"ONE\ntwo\nthree\nFOUR\nfive\nsix\nSEVEN\n",
    "one.txt": b"1\n",
    "two.txt": b"2\n2\n",
    "dir/three.txt": b"3\n",
    "keep.txt": b"keep\n",
}


def test_fetch_returns_the_remote_shas(scene: Scene) -> None:
    one = scene.members["one"]
    shas = scene.engine.fetch([branch_ref("main"), merge_request_ref(one.iid)])
    assert shas == {"refs/heads/main": scene.target_sha, merge_request_ref(one.iid): one.head_sha}
    with pytest.raises(RefNotFound, match="refs/merge-requests/99/head"):
        scene.engine.fetch([merge_request_ref(99)])


def test_merge_batch_holds_every_mr_and_each_head(scene: Scene) -> None:
    batch = build(scene, ["one", "two", "three"])
    assert batch.rejected == ()
    assert batch.included_iids == tuple(scene.members[n].iid for n in ["one", "two", "three"])
    assert batch.sha == batch.included[-1].tip_sha
    scene.engine.push("merge-assist/batch", batch.sha, expected_old_sha=None, force=True)
    assert scene.sim.branch_sha(PROJECT, "merge-assist/batch") == batch.sha
    for path, content in EXPECTED.items():
        assert scene.sim.read_file(PROJECT, "merge-assist/batch", path) == content
    for part in batch.included:
        assert scene.engine.is_ancestor(part.head_sha, batch.sha)
        merge = commit(scene.engine, part.tip_sha)
        assert [p.decode() for p in merge.parents][1] == part.head_sha
    last = commit(scene.engine, batch.sha)
    three = scene.members["three"]
    assert last.message.decode() == (
        "Merge branch 'three' into 'main'\n\nChange three\n\n"
        f"See merge request {PROJECT}!{three.iid}\n"
    )
    assert last.author == b"Merge Assist <merge-assist@example.com>"
    # The same batch built again is the same commit: a retried step changes nothing.
    assert build(scene, ["one", "two", "three"]).sha == batch.sha


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git CLI as the reference")
def test_merge_batch_tree_equals_git_cli_merge(scene: Scene, tmp_path: Path) -> None:
    batch = build(scene, ["one", "two", "three"])
    url = scene.sim.url.replace("http://", f"http://oauth2:{scene.token}@") + f"/{PROJECT}.git"
    work = tmp_path / "cli"

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=T", "-c", "user.email=t@example.com", *args],
            cwd=work if work.exists() else tmp_path,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return done.stdout.strip()

    git("clone", "-q", url, str(work))
    for name in ["one", "two", "three"]:
        git("fetch", "-q", "origin", merge_request_ref(scene.members[name].iid))
        git("merge", "-q", "--no-ff", "--no-edit", "FETCH_HEAD")
    assert git("rev-parse", "HEAD^{tree}") == commit(scene.engine, batch.sha).tree.decode()


def test_conflicting_mr_is_rejected_with_its_path_and_the_rest_go_on(scene: Scene) -> None:
    batch = build(scene, ["one", "clash", "two"])
    clash = scene.members["clash"]
    assert [(r.iid, r.conflicts) for r in batch.rejected] == [(clash.iid, ("shared.txt",))]
    assert batch.included_iids == (scene.members["one"].iid, scene.members["two"].iid)
    assert not scene.engine.is_ancestor(clash.head_sha, batch.sha)
    first = commit(scene.engine, batch.included[0].tip_sha)
    assert commit(scene.engine, batch.sha).parents[0] == first.id


@pytest.mark.parametrize("method", [MergeMethod.REBASE_MERGE, MergeMethod.FF])
def test_rebase_methods_give_linear_history_with_the_merge_tree(
    scene: Scene, method: MergeMethod
) -> None:
    names = ["one", "two", "three"]
    batch = build(scene, names, method)
    merged = build(scene, names)
    assert batch.included_iids == merged.included_iids
    assert commit(scene.engine, batch.sha).tree == commit(scene.engine, merged.sha).tree
    chain: list[Commit] = []
    sha = batch.sha.encode()
    while sha != scene.target_sha.encode():
        current = commit(scene.engine, sha.decode())
        assert len(current.parents) == 1
        chain.append(current)
        sha = current.parents[0]
    assert [c.message.decode().strip() for c in reversed(chain)] == [
        "Change one",
        "Change two",
        "Update two.txt",
        "Change three",
    ]
    assert {c.committer for c in chain} == {b"Merge Assist <merge-assist@example.com>"}
    original = commit(scene.engine, scene.members["one"].head_sha)
    assert (chain[-1].author, chain[-1].author_time) == (original.author, original.author_time)
    # Each MR's part ends where the next begins, so prefixes of the batch are known.
    assert [part.tip_sha for part in batch.included] == [
        chain[3].id.decode(),
        chain[1].id.decode(),
        chain[0].id.decode(),
    ]


def test_rebase_skips_a_conflicting_mr(scene: Scene) -> None:
    batch = build(scene, ["one", "clash", "three"], MergeMethod.FF)
    assert [(r.iid, r.conflicts) for r in batch.rejected] == [
        (scene.members["clash"].iid, ("shared.txt",))
    ]
    assert batch.included_iids == (scene.members["one"].iid, scene.members["three"].iid)


def test_landing_by_fast_forward_marks_the_mrs_merged(scene: Scene) -> None:
    batch = build(scene, ["one", "two", "three"])
    scene.engine.push("merge-assist/batch", batch.sha, expected_old_sha=None, force=True)
    scene.engine.push("main", batch.sha, expected_old_sha=scene.target_sha, force=False)
    assert scene.sim.branch_sha(PROJECT, "main") == batch.sha
    # A retried landing finds the branch already there and succeeds without change.
    scene.engine.push("main", batch.sha, expected_old_sha=scene.target_sha, force=False)
    scene.sim.wait_idle()
    for name in ["one", "two", "three"]:
        assert scene.sim.merge_request(PROJECT, scene.members[name].iid)["state"] == "merged"
    assert scene.sim.merge_request(PROJECT, scene.members["clash"].iid)["state"] == "opened"


def test_a_landing_push_with_skip_pipeline_leaves_the_target_pipeline_skipped(
    scene: Scene,
) -> None:
    batch = build(scene, ["one", "three"])
    scene.engine.push("merge-assist/batch", batch.sha, expected_old_sha=None, force=True)
    scene.engine.push(
        "main", batch.sha, expected_old_sha=scene.target_sha, force=False, skip_pipeline=True
    )
    scene.sim.wait_idle()
    on = {
        ref: [
            p.status
            for p in scene.sim.store.pipelines.values()
            if p.sha == batch.sha and p.ref == ref
        ]
        for ref in ("merge-assist/batch", "main")
    }
    assert on["main"] == ["skipped"]
    assert on["merge-assist/batch"] != ["skipped"]
    assert len(on["merge-assist/batch"]) == 1
    assert scene.sim.merge_request(PROJECT, scene.members["one"].iid)["state"] == "merged"


def test_landing_after_the_target_moved_fails_and_changes_nothing(scene: Scene) -> None:
    batch = build(scene, ["one", "three"])
    moved = scene.sim.commit_files(PROJECT, "main", {"late.txt": "late\n"})
    with pytest.raises(RemoteMoved) as raised:
        scene.engine.push("main", batch.sha, expected_old_sha=scene.target_sha, force=False)
    assert raised.value.ref == "refs/heads/main"
    with pytest.raises(RemoteMoved, match="not an ancestor"):
        scene.engine.push("main", batch.sha, expected_old_sha=None, force=False)
    assert scene.sim.branch_sha(PROJECT, "main") == moved
    scene.sim.wait_idle()
    assert scene.sim.merge_request(PROJECT, scene.members["one"].iid)["state"] == "opened"


def test_a_wrong_token_is_an_auth_error_without_the_token(scene: Scene, tmp_path: Path) -> None:
    wrong = "glpat-not-the-right-one"
    with GitEngine(f"{scene.sim.url}/{PROJECT}.git", wrong, tmp_path / "other") as engine:
        with pytest.raises(GitAuthError) as raised:
            engine.fetch([branch_ref("main")])
        assert wrong not in str(raised.value)
    with (
        GitEngine(f"{scene.sim.url}/{PROJECT}.git", wrong, tmp_path / "work") as engine,
        pytest.raises(GitAuthError),
    ):
        engine.push("main", scene.members["one"].head_sha, expected_old_sha=None, force=False)
    assert scene.sim.branch_sha(PROJECT, "main") == scene.target_sha


def test_a_refused_update_is_push_rejected_with_the_servers_reason(scene: Scene) -> None:
    # main is protected: GitLab refuses a force push even when the compare-and-set holds.
    one = scene.members["one"]
    with pytest.raises(PushRejected) as raised:
        scene.engine.push("main", one.head_sha, expected_old_sha=scene.target_sha, force=True)
    assert not isinstance(raised.value, RemoteMoved)
    assert "force push" in raised.value.reason
    assert scene.sim.branch_sha(PROJECT, "main") == scene.target_sha


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("merge_assist.platform.retrying.time.sleep", lambda seconds: None)


def test_a_fetch_the_transport_fails_is_tried_again(
    scene: Scene, monkeypatch: pytest.MonkeyPatch, no_sleep: None
) -> None:
    real = AbstractHttpGitClient.fetch_pack
    failures = iter([GitProtocolError("unexpected http resp 503"), OSError("reset")])

    def flaky(self: Any, *args: Any, **kwargs: Any) -> Any:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real(self, *args, **kwargs)

    monkeypatch.setattr(AbstractHttpGitClient, "fetch_pack", flaky)

    assert scene.engine.fetch([branch_ref("main")]) == {"refs/heads/main": scene.target_sha}


def test_a_push_that_landed_unanswered_is_not_an_error_when_tried_again(
    scene: Scene, monkeypatch: pytest.MonkeyPatch, no_sleep: None
) -> None:
    batch = build(scene, ["one", "two"])
    real = AbstractHttpGitClient.send_pack
    answered: list[bool] = []

    def lost_answer(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = real(self, *args, **kwargs)
        if not answered:
            answered.append(False)
            raise GitProtocolError("unexpected http resp 502")
        return result

    monkeypatch.setattr(AbstractHttpGitClient, "send_pack", lost_answer)

    scene.engine.push("main", batch.sha, expected_old_sha=scene.target_sha, force=False)

    assert scene.sim.branch_sha(PROJECT, "main") == batch.sha


def test_a_transport_that_keeps_failing_is_an_error_without_the_token(
    scene: Scene, monkeypatch: pytest.MonkeyPatch, no_sleep: None
) -> None:
    def down(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise GitProtocolError(f"unexpected http resp 503 for {scene.token}")

    monkeypatch.setattr(AbstractHttpGitClient, "fetch_pack", down)

    with pytest.raises(GitTransportError) as raised:
        scene.engine.fetch([branch_ref("main")])
    assert scene.token not in str(raised.value)


def _reachable(repo: Repo, sha: str) -> set[ObjectID]:
    """Every object of ``sha``'s history: commits, trees and blobs."""
    found: set[ObjectID] = set()
    pending = [ObjectID(sha.encode())]
    while pending:
        commit = repo[pending.pop()]
        assert isinstance(commit, Commit)
        if commit.id in found:
            continue
        found.add(commit.id)
        found.add(commit.tree)
        found.update(
            entry.sha
            for entry in iter_tree_contents(repo.object_store, commit.tree, include_trees=True)
            if entry.sha is not None
        )
        pending.extend(commit.parents)
    return found


def _server_objects(scene: Scene) -> set[ObjectID]:
    """What the remote holds for sure: what its refs reach. Objects it made for itself
    (the trees of its mergeability checks) may be there too, but no client can know."""
    with scene.sim.store.lock:
        repo = scene.sim.store.repo(scene.sim.project(PROJECT).id)
        found: set[ObjectID] = set()
        for sha in set(repo.refs.as_dict().values()):
            found |= _reachable(repo, sha.decode())
        return found


def test_a_push_sends_exactly_what_the_remote_lacks(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the batch's own commits, trees and merged blobs go over the wire: nothing the
    remote holds is sent again, and nothing it lacks is left out."""
    batch = build(scene, ["one", "two", "three"])
    held = _server_objects(scene)
    lacking = _reachable(scene.engine.repo, batch.sha) - held
    sent: list[ObjectID] = []
    real = pack_objects_to_data

    def recorded(objects: list[ShaFile]) -> Any:
        sent.extend(o.id for o in objects)
        return real(objects)

    monkeypatch.setattr("merge_assist.adapters.git_engine.pack_objects_to_data", recorded)

    scene.engine.push("merge-assist/batch", batch.sha, expected_old_sha=None, force=True)

    assert sorted(sent) == sorted(lacking)
    assert lacking <= _server_objects(scene)


def test_a_push_far_from_what_the_remote_holds_still_sends_everything(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the walk's limit dulwich's own finder decides what to send."""
    batch = build(scene, ["one", "two", "three"])
    monkeypatch.setattr(git_engine, "PUSH_WALK_LIMIT", 1)
    scene.engine.push("merge-assist/batch", batch.sha, expected_old_sha=None, force=True)
    assert _reachable(scene.engine.repo, batch.sha) <= _server_objects(scene)
    for path, content in EXPECTED.items():
        assert scene.sim.read_file(PROJECT, "merge-assist/batch", path) == content


def test_a_warm_fetch_brings_only_the_new_commits(scene: Scene) -> None:
    """The repository kept from the last fetch tells the remote what it holds: the pack
    that comes back holds the MR's new commit and what it changed, nothing else."""
    one = scene.members["one"]
    new_head = scene.sim.commit_files(PROJECT, "one", {"one.txt": "1\n1\n"}, author="dev")
    assert scene.sim.wait_idle()
    store = scene.engine.repo.object_store
    held = set(store)
    packs = {pack.name() for pack in store.packs}

    shas = scene.engine.fetch([branch_ref("main"), merge_request_ref(one.iid)])

    assert shas[merge_request_ref(one.iid)] == new_head
    received = [pack for pack in store.packs if pack.name() not in packs]
    assert len(received) == 1
    assert set(received[0]) == _reachable(scene.engine.repo, new_head) - held
    # Nothing new: no pack at all.
    scene.engine.fetch([branch_ref("main"), merge_request_ref(one.iid)])
    assert len([pack for pack in store.packs if pack.name() not in packs]) == 1
