"""Git operations on the simulator's bare repositories, with dulwich: commits from file
actions, merges (dulwich's three-way merge, which uses merge3 for file contents), rebases
by cherry-picking, ancestry and diffs. Callers hold the store lock."""

from __future__ import annotations

import base64
import difflib
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dulwich.graph import find_merge_base
from dulwich.index import commit_tree
from dulwich.merge import three_way_merge
from dulwich.object_store import iter_tree_contents
from dulwich.objects import Blob, Commit, ObjectID
from dulwich.refs import Ref
from dulwich.repo import Repo
from dulwich.walk import ORDER_TOPO

ZERO_SHA = "0" * 40
FILE_MODE = stat.S_IFREG | 0o644
EXEC_MODE = stat.S_IFREG | 0o755
HEX = frozenset("0123456789abcdef")


class GitError(Exception):
    """A git operation the caller asked for cannot be done; the message is user-facing."""


@dataclass(frozen=True)
class Identity:
    name: str
    email: str

    @property
    def raw(self) -> bytes:
        return f"{self.name} <{self.email}>".encode()


@dataclass(frozen=True)
class MergeResult:
    tree: str
    conflicts: list[str]


def init_repo(path: Path, default_branch: str) -> Repo:
    path.mkdir(parents=True, exist_ok=True)
    repo = Repo.init_bare(str(path))
    repo.refs.set_symbolic_ref(Ref(b"HEAD"), Ref(b"refs/heads/" + default_branch.encode()))
    return repo


def branch_ref(branch: str) -> Ref:
    return Ref(b"refs/heads/" + branch.encode())


def branches(repo: Repo) -> dict[str, str]:
    refs = repo.refs.as_dict(Ref(b"refs/heads"))
    return {name.decode(): sha.decode() for name, sha in refs.items()}


def branch_sha(repo: Repo, branch: str) -> str | None:
    try:
        return repo.refs[branch_ref(branch)].decode()
    except KeyError:
        return None


def set_ref(repo: Repo, ref: str, sha: str, expected_old: str | None = None) -> bool:
    """Moves a ref; with ``expected_old`` it is a compare-and-swap (ZERO_SHA: must be absent)."""
    old = None if expected_old is None else ObjectID(expected_old.encode())
    return bool(repo.refs.set_if_equals(Ref(ref.encode()), old, ObjectID(sha.encode())))


def delete_ref(repo: Repo, ref: str) -> None:
    repo.refs.remove_if_equals(Ref(ref.encode()), None)


def get_commit(repo: Repo, sha: str) -> Commit:
    try:
        obj = repo[ObjectID(sha.encode())]
    except (KeyError, ValueError) as err:
        raise GitError("404 Commit Not Found") from err
    if not isinstance(obj, Commit):
        raise GitError("404 Commit Not Found")
    return obj


def resolve(repo: Repo, rev: str) -> str | None:
    """A branch name, a full ref, a full sha or a unique sha prefix of at least 7 characters."""
    for candidate in (f"refs/heads/{rev}", f"refs/tags/{rev}", rev):
        try:
            return repo.refs[Ref(candidate.encode())].decode()
        except (KeyError, ValueError):
            continue
    lowered = rev.lower()
    if not lowered or not set(lowered) <= HEX:
        return None
    if len(lowered) == 40:
        try:
            get_commit(repo, lowered)
        except GitError:
            return None
        return lowered
    if 7 <= len(lowered) < 40:
        matches = {s.decode() for s in repo.object_store.iter_prefix(lowered.encode())}
        commits = [s for s in matches if isinstance(repo[ObjectID(s.encode())], Commit)]
        if len(commits) == 1:
            return commits[0]
    return None


def flatten(repo: Repo, tree_id: str) -> dict[str, tuple[int, str]]:
    entries = iter_tree_contents(repo.object_store, ObjectID(tree_id.encode()))
    return {e.path.decode(): (e.mode, e.sha.decode()) for e in entries if e.path and e.sha}


def tree_paths(repo: Repo, commit_sha: str) -> set[str]:
    return set(flatten(repo, get_commit(repo, commit_sha).tree.decode()))


def read_blob(repo: Repo, commit_sha: str, path: str) -> tuple[bytes, str, int] | None:
    """A file's content, blob sha and mode at a commit, or None."""
    entry = flatten(repo, get_commit(repo, commit_sha).tree.decode()).get(path.strip("/"))
    if entry is None:
        return None
    blob = repo[ObjectID(entry[1].encode())]
    assert isinstance(blob, Blob)
    return blob.data, entry[1], entry[0]


def write_tree(repo: Repo, files: dict[str, tuple[int, str]]) -> str:
    blobs = [(p.encode(), ObjectID(sha.encode()), mode) for p, (mode, sha) in files.items()]
    return commit_tree(repo.object_store, blobs).decode()


def make_commit(
    repo: Repo,
    tree: str,
    parents: list[str],
    message: str,
    author: Identity,
    *,
    committer: Identity | None = None,
    author_time: int | None = None,
) -> str:
    now = int(time.time())
    commit = Commit()
    commit.tree = ObjectID(tree.encode())
    commit.parents = [ObjectID(p.encode()) for p in parents]
    commit.author = author.raw
    commit.committer = (committer or author).raw
    commit.author_time = now if author_time is None else author_time
    commit.commit_time = now
    commit.author_timezone = commit.commit_timezone = 0
    commit.encoding = b"UTF-8"
    commit.message = message.encode() if message.endswith("\n") else (message + "\n").encode()
    repo.object_store.add_object(commit)
    return commit.id.decode()


# One branch per action kind and its GitLab error.
def apply_actions(  # noqa: PLR0912
    repo: Repo, base_commit: str | None, actions: list[dict[str, Any]]
) -> str:
    """Applies GitLab's commit ``actions`` (create, update, delete, move, chmod) to a tree."""
    files = {}
    if base_commit is not None:
        files = flatten(repo, get_commit(repo, base_commit).tree.decode())
    for action in actions:
        kind = action.get("action")
        path = str(action.get("file_path", "")).strip("/")
        if not path:
            raise GitError("file_path is missing")
        if kind == "move":
            previous = str(action.get("previous_path", "")).strip("/")
            if previous not in files:
                raise GitError(f"A file with this name doesn't exist: {previous}")
            moved = files.pop(previous)
            if action.get("content") is None:
                files[path] = moved
                continue
        if kind in ("create", "update", "move"):
            if kind == "create" and path in files:
                raise GitError("A file with this name already exists")
            if kind == "update" and path not in files:
                raise GitError("A file with this name doesn't exist")
            raw = str(action.get("content") or "")
            data = base64.b64decode(raw) if action.get("encoding") == "base64" else raw.encode()
            blob = Blob.from_string(data)
            repo.object_store.add_object(blob)
            mode = files.get(path, (FILE_MODE, ""))[0]
            files[path] = (mode, blob.id.decode())
        elif kind == "delete":
            if path not in files:
                raise GitError("A file with this name doesn't exist")
            del files[path]
        elif kind == "chmod":
            if path not in files:
                raise GitError("A file with this name doesn't exist")
            mode = EXEC_MODE if action.get("execute_filemode") else FILE_MODE
            files[path] = (mode, files[path][1])
        else:
            raise GitError(f"Unknown action '{kind}'")
    return write_tree(repo, files)


def is_ancestor(repo: Repo, ancestor: str, descendant: str) -> bool:
    """An exact walk of ``descendant``'s history. dulwich's ``can_fast_forward`` prunes by
    commit time and, when commits share a timestamp (the simulator makes many within one
    second), can answer False for a real ancestor."""
    if ancestor == descendant:
        return True
    target = ObjectID(ancestor.encode())
    pending = [ObjectID(descendant.encode())]
    seen: set[ObjectID] = set()
    while pending:
        sha = pending.pop()
        if sha == target:
            return True
        if sha in seen:
            continue
        seen.add(sha)
        commit = repo[sha]
        assert isinstance(commit, Commit)
        pending.extend(commit.parents)
    return False


def merge_base(repo: Repo, a: str, b: str) -> str | None:
    bases = find_merge_base(repo, [ObjectID(a.encode()), ObjectID(b.encode())])
    return bases[0].decode() if bases else None


def merge_trees(repo: Repo, base: str | None, ours: str, theirs: str) -> MergeResult:
    """Three-way merge of commits ``ours`` and ``theirs`` over ``base``; conflicted paths listed."""
    base_commit = get_commit(repo, base) if base else None
    tree, conflicts = three_way_merge(
        repo.object_store, base_commit, get_commit(repo, ours), get_commit(repo, theirs)
    )
    repo.object_store.add_object(tree)
    return MergeResult(tree.id.decode(), sorted(c.decode() for c in conflicts))


def commits_between(repo: Repo, base: str | None, head: str) -> list[Commit]:
    """``git log base..head`` in topological order, newest first."""
    exclude = [ObjectID(base.encode())] if base else []
    walker = repo.get_walker(include=[ObjectID(head.encode())], exclude=exclude, order=ORDER_TOPO)
    return [entry.commit for entry in walker]


def rebase(repo: Repo, onto: str, head: str, committer: Identity) -> str:
    """Replays ``onto..head`` on ``onto`` as ``git rebase`` does (merges dropped, commits that
    become empty dropped); raises GitError naming the conflicted paths."""
    if is_ancestor(repo, onto, head):
        return head
    current = onto
    for commit in reversed(commits_between(repo, onto, head)):
        if len(commit.parents) != 1:
            continue
        parent = commit.parents[0].decode()
        picked = merge_trees(repo, parent, current, commit.id.decode())
        if picked.conflicts:
            raise GitError(
                "Rebase failed: Rebase locally, resolve all conflicts, then push the branch. "
                f"Conflicts in: {', '.join(picked.conflicts)}"
            )
        if picked.tree == get_commit(repo, current).tree.decode():
            continue
        current = make_commit(
            repo,
            picked.tree,
            [current],
            commit.message.decode(errors="replace"),
            parse_identity(commit.author),
            committer=committer,
            author_time=commit.author_time,
        )
    return current


def parse_identity(raw: bytes) -> Identity:
    text = raw.decode(errors="replace")
    name, _, rest = text.partition(" <")
    return Identity(name, rest.rstrip(">"))


def diff_trees(repo: Repo, old_commit: str | None, new_commit: str) -> list[dict[str, Any]]:
    """GitLab's diff entries between two commits' trees, with unified diff text."""
    old = flatten(repo, get_commit(repo, old_commit).tree.decode()) if old_commit else {}
    new = flatten(repo, get_commit(repo, new_commit).tree.decode())
    entries = []
    for path in sorted(set(old) | set(new)):
        before, after = old.get(path), new.get(path)
        if before == after:
            continue
        old_text = _blob_lines(repo, before[1]) if before else []
        new_text = _blob_lines(repo, after[1]) if after else []
        hunks = list(difflib.unified_diff(old_text, new_text, lineterm=""))[2:]
        entries.append(
            {
                "old_path": path,
                "new_path": path,
                "a_mode": f"{before[0]:o}" if before else "0",
                "b_mode": f"{after[0]:o}" if after else "0",
                "new_file": before is None,
                "renamed_file": False,
                "deleted_file": after is None,
                "generated_file": False,
                "diff": "\n".join(hunks) + ("\n" if hunks else ""),
            }
        )
    return entries


def _blob_lines(repo: Repo, sha: str) -> list[str]:
    blob = repo[ObjectID(sha.encode())]
    assert isinstance(blob, Blob)
    return blob.data.decode(errors="replace").splitlines()


def commit_json(commit: Commit, web_url: str) -> dict[str, Any]:
    """GitLab's commit representation (``/repository/commits/:sha``)."""
    author = parse_identity(commit.author)
    committer = parse_identity(commit.committer)
    message = commit.message.decode(errors="replace")
    sha = commit.id.decode()
    committed = iso_from_epoch(commit.commit_time)
    return {
        "id": sha,
        "short_id": sha[:8],
        "title": message.split("\n", 1)[0],
        "message": message,
        "author_name": author.name,
        "author_email": author.email,
        "authored_date": iso_from_epoch(commit.author_time),
        "committer_name": committer.name,
        "committer_email": committer.email,
        "committed_date": committed,
        "created_at": committed,
        "parent_ids": [p.decode() for p in commit.parents],
        "trailers": {},
        "extended_trailers": {},
        "web_url": f"{web_url}/-/commit/{sha}",
    }


def iso_from_epoch(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch))
