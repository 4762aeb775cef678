"""The git engine's ancestry and merge bases against git's own answers, on random
histories whose commits all share one timestamp (where date-ordered walks go wrong)."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest
from dulwich.objects import Commit, ObjectID, Tree
from dulwich.repo import Repo

from merge_assist.adapters.git_engine import CommitHistory

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git as the reference")


def _random_history(repo: Repo, seed: int, size: int) -> list[ObjectID]:
    """Commits with one or two parents picked at random among the earlier ones, several
    roots, criss-cross merges and all."""
    rng = random.Random(seed)
    tree = Tree()
    repo.object_store.add_object(tree)
    commits: list[ObjectID] = []
    for number in range(size):
        parents = [] if number < 2 else rng.sample(commits, k=rng.choice([1, 1, 2, 2, 3]) % 3 or 1)
        commit = Commit()
        commit.tree = tree.id
        commit.parents = parents
        commit.author = commit.committer = b"T <t@example.com>"
        commit.author_time = commit.commit_time = 1_700_000_000
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = f"{number}\n".encode()
        repo.object_store.add_object(commit)
        commits.append(commit.id)
    return commits


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_merge_bases_and_ancestry_are_gits(tmp_path: Path, seed: int) -> None:
    repo = Repo.init_bare(str(tmp_path / "repo.git"), mkdir=True)
    commits = _random_history(repo, seed, 40)
    history = CommitHistory(lambda: repo)
    rng = random.Random(seed)
    for _ in range(40):
        first, second = rng.choice(commits), rng.choice(commits)
        found = _git(tmp_path / "repo.git", "merge-base", "--all", first.decode(), second.decode())
        expected = set(found.stdout.split())
        assert {sha.decode() for sha in history.merge_bases(first, second)} == expected
        is_ancestor = _git(
            tmp_path / "repo.git", "merge-base", "--is-ancestor", first.decode(), second.decode()
        )
        assert history.is_ancestor(first, second) is (is_ancestor.returncode == 0)
