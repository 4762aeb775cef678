"""Builds and pushes batch commits with dulwich over git smart HTTP: no git binary, so it runs
in a plain Lambda. A bare repository in a work directory is reused while the Lambda is warm,
so later fetches only bring what is new."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from dulwich.client import GitClient, HTTPUnauthorized, get_transport_and_path
from dulwich.errors import GitProtocolError, NotGitRepository
from dulwich.graph import find_merge_base
from dulwich.merge import Merger
from dulwich.objects import Commit, ObjectID, Tree
from dulwich.pack import UnpackedObject
from dulwich.refs import Ref
from dulwich.repo import Repo
from dulwich.walk import ORDER_TOPO

from merge_assist.platform.errors import GitError, PushRejected, RefNotFound, RemoteMoved
from merge_assist.platform.retrying import retry
from merge_assist.queue.batch_plan import (
    BatchBuild,
    BatchMember,
    GitIdentity,
    IncludedMergeRequest,
    MergeMethod,
    RejectedMergeRequest,
    branch_ref,
    merge_commit_message,
)


class GitEngineError(GitError):
    """A git operation failed; messages never carry the token."""


class GitAuthError(GitEngineError):
    """The remote refused the credentials (or hides the project from them)."""


class GitCredentialsRefused(GitAuthError):
    """The remote answered 401: the token is revoked, expired or was rotated away."""


class GitTransportError(GitEngineError):
    """The remote could not be reached or spoke no sensible git."""


T = TypeVar("T")

# About six seconds of trying (jittered 0.5, 1, 2, 4 s caps) before a step fails on it.
TRANSPORT_ATTEMPTS = 5
TRANSPORT_RETRY_SECONDS = 0.5
TRANSPORT_RETRY_CAP_SECONDS = 4.0

__all__ = [
    "GitAuthError",
    "GitCredentialsRefused",
    "GitEngine",
    "GitEngineError",
    "GitTransportError",
    "PushRejected",
    "RefNotFound",
    "RemoteMoved",
]


def _oid(sha: str) -> ObjectID:
    return ObjectID(sha.encode("ascii"))


class GitEngine:
    def __init__(
        self,
        url: str,
        token: str,
        work_dir: Path,
        *,
        project_path: str = "",
        username: str = "oauth2",
    ) -> None:
        """``url`` is the project's git HTTP URL without credentials; ``project_path``
        (``group/project``) goes into merge commit messages."""
        self._url = url
        self._token = token
        self._username = username
        self._work_dir = work_dir
        self.project_path = project_path
        self._repo: Repo | None = None

    @property
    def repo(self) -> Repo:
        if self._repo is None:
            if (self._work_dir / "objects").is_dir():
                self._repo = Repo(str(self._work_dir))
            else:
                self._work_dir.mkdir(parents=True, exist_ok=True)
                self._repo = Repo.init_bare(str(self._work_dir))
        return self._repo

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
            self._repo = None

    def __enter__(self) -> GitEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- remote -------------------------------------------------------------------------

    def fetch(self, refs: Sequence[str]) -> dict[str, str]:
        """Fetches the given full ref names into the same local names; their shas."""
        wanted = [Ref(ref.encode()) for ref in refs]
        store = self.repo.object_store

        def determine_wants(
            refs: Mapping[Ref, ObjectID], depth: int | None = None
        ) -> list[ObjectID]:
            found = {refs[ref] for ref in wanted if refs.get(ref)}
            return [sha for sha in found if sha not in store]

        client, path = self._client()
        result = self._over_the_wire(
            lambda: client.fetch(
                path.encode(), self.repo, determine_wants=determine_wants, ref_prefix=wanted
            )
        )
        shas: dict[str, str] = {}
        missing = []
        for ref in wanted:
            sha = result.refs.get(ref)
            if sha is None:
                missing.append(ref.decode())
                continue
            self.repo.refs[ref] = sha
            shas[ref.decode()] = sha.decode()
        if missing:
            raise RefNotFound(f"not on the remote: {', '.join(missing)}")
        return shas

    def push(self, branch: str, sha: str, *, expected_old_sha: str | None, force: bool) -> None:
        """Moves the remote ``branch`` to ``sha``. With ``expected_old_sha`` the push is a
        compare-and-set (``RemoteMoved`` if the branch is elsewhere); without ``force`` it
        must also be a fast-forward. Pushing where the branch already is succeeds, so a
        retried landing is harmless."""
        ref = Ref(branch_ref(branch).encode())
        new = _oid(sha)
        if new not in self.repo.object_store:
            raise RefNotFound(f"commit {sha} is not in the local repository")
        seen: dict[str, ObjectID | None] = {}

        def update_refs(remote: dict[Ref, ObjectID]) -> dict[Ref, ObjectID]:
            current = remote.get(ref)
            seen["old"] = current
            if current == new:
                return {}
            if expected_old_sha is not None and current != _oid(expected_old_sha):
                found = current.decode() if current else "absent"
                raise RemoteMoved(ref.decode(), f"expected {expected_old_sha}, found {found}")
            if not force and current is not None and not self._is_ancestor(current, new):
                raise RemoteMoved(ref.decode(), f"{current.decode()} is not an ancestor")
            return {ref: new}

        def generate_pack_data(
            have: Set[ObjectID],
            want: Set[ObjectID],
            *,
            ofs_delta: bool = False,
            progress: Any = None,
        ) -> tuple[int, Iterator[UnpackedObject]]:
            known = {sha for sha in have if sha in self.repo.object_store}
            return self.repo.generate_pack_data(known, set(want), ofs_delta=ofs_delta)

        client, path = self._client()
        # Safe to send again: ``update_refs`` looks at the remote anew each time, so a push
        # that landed unanswered is found where it should be and sends nothing.
        result = self._over_the_wire(
            lambda: client.send_pack(path.encode(), update_refs, generate_pack_data)
        )
        error = (result.ref_status or {}).get(ref)
        if error is None:
            return
        # The server compares the old sha it advertised before updating: a loss there means
        # someone pushed between our look and our update.
        now = self._remote_ref(ref)
        if now == new:
            return
        if now != seen.get("old"):
            raise RemoteMoved(ref.decode(), "the branch moved during the push")
        raise PushRejected(ref.decode(), self._redact(error))

    def _remote_ref(self, ref: Ref) -> ObjectID | None:
        client, path = self._client()
        return self._over_the_wire(
            lambda: client.get_refs(path.encode(), ref_prefix=[ref]).refs.get(ref)
        )

    def _over_the_wire(self, operation: Callable[[], T]) -> T:
        """One smart-HTTP exchange, tried again with back-off while the transport fails
        (a 5xx, a reset): as python-gitlab does for REST calls."""

        def attempt() -> T:
            with self._translated_errors():
                return operation()

        return retry(
            attempt,
            should_retry=lambda error: isinstance(error, GitTransportError),
            attempts=TRANSPORT_ATTEMPTS,
            base=TRANSPORT_RETRY_SECONDS,
            cap=TRANSPORT_RETRY_CAP_SECONDS,
        )

    def _client(self) -> tuple[GitClient, str]:
        return get_transport_and_path(
            self._url, username=self._username, password=self._token, quiet=True
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    @contextmanager
    def _translated_errors(self) -> Iterator[None]:
        try:
            yield
        except HTTPUnauthorized:
            raise GitCredentialsRefused("the remote refused the credentials") from None
        except NotGitRepository:
            # GitLab answers 404 rather than 403 when the token may not see the project.
            raise GitAuthError("no such project, or the token cannot see it") from None
        except (GitProtocolError, OSError) as exc:
            detail = self._redact(str(exc))
            raise GitTransportError(f"{type(exc).__name__}: {detail}") from None

    # --- local history ------------------------------------------------------------------

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return self._is_ancestor(_oid(ancestor), _oid(descendant))

    def same_tree(self, first: str, second: str) -> bool:
        return self._tree_of(_oid(first)) == self._tree_of(_oid(second))

    def _is_ancestor(self, ancestor: ObjectID, descendant: ObjectID) -> bool:
        if ancestor == descendant:
            return True
        # A commit we never fetched cannot be in the history of one we have.
        if ancestor not in self.repo.object_store:
            return False
        # Not dulwich's can_fast_forward: it wants the merge bases to be exactly
        # [ancestor], but with equal commit times dulwich also returns stale ancestors of
        # the real base. Every commit it returns is a common ancestor, so membership is
        # exact.
        return ancestor in find_merge_base(self.repo, [ancestor, descendant])

    def _merge_bases(self, ours: ObjectID, theirs: ObjectID) -> list[ObjectID]:
        """The best common ancestors. dulwich may add ancestors of the best ones when commit
        times tie; dropping those is git's ``remove_redundant``."""
        found = find_merge_base(self.repo, [ours, theirs])
        return [
            base
            for base in found
            if not any(other != base and self._is_ancestor(base, other) for other in found)
        ]

    def _commit_time(self, stamp: int, parents: Sequence[ObjectID]) -> int:
        """Newer than every parent. Ancestry walks (git's without generation numbers,
        dulwich's, GitLab's) order and prune by commit time, and a batch built from a fixed
        time or within the second its MRs were pushed would otherwise tie or go backwards."""
        newest = max((self._commit(parent).commit_time for parent in parents), default=0)
        return max(stamp, newest + 1)

    def _commit(self, sha: ObjectID) -> Commit:
        try:
            found = self.repo.object_store[sha]
        except KeyError:
            raise RefNotFound(f"commit {sha.decode()} is not in the local repository") from None
        if not isinstance(found, Commit):
            raise RefNotFound(f"{sha.decode()} is not a commit")
        return found

    def _tree_of(self, commit: ObjectID) -> ObjectID:
        tree: ObjectID = self._commit(commit).tree
        return tree

    def _tree(self, sha: ObjectID) -> Tree:
        found = self.repo.object_store[sha]
        assert isinstance(found, Tree)
        return found

    def _merge_trees(
        self, base: ObjectID | None, ours: ObjectID, theirs: ObjectID
    ) -> tuple[ObjectID, list[str]]:
        merged, conflicts = Merger(self.repo.object_store).merge_trees(
            None if base is None else self._tree(base), self._tree(ours), self._tree(theirs)
        )
        self.repo.object_store.add_object(merged)
        return merged.id, [path.decode("utf-8", "replace") for path in conflicts]

    def _merge_base_tree(self, ours: ObjectID, theirs: ObjectID, depth: int = 0) -> ObjectID | None:
        """The tree to merge from, as git's recursive strategy picks it: with several best
        common ancestors (criss-cross history) they are merged into a virtual base first, so
        changes both sides already share are not merged twice. Conflicts inside the virtual
        base stay in it as markers, as with git."""
        bases = self._merge_bases(ours, theirs)
        if not bases:
            return None
        if len(bases) == 1 or depth > 8:
            return self._tree_of(bases[0])
        virtual = bases[0]
        for other in bases[1:]:
            inner = self._merge_base_tree(virtual, other, depth + 1)
            tree, _ = self._merge_trees(inner, self._tree_of(virtual), self._tree_of(other))
            commit = Commit()
            commit.tree = tree
            commit.parents = [virtual, other]
            commit.author = commit.committer = b"virtual merge base <merge-assist@localhost>"
            commit.author_time = commit.commit_time = 0
            commit.author_timezone = commit.commit_timezone = 0
            commit.message = b"virtual merge base\n"
            self.repo.object_store.add_object(commit)
            virtual = commit.id
        return self._tree_of(virtual)

    # --- batch --------------------------------------------------------------------------

    def build_batch(
        self,
        target_sha: str,
        members: Sequence[BatchMember],
        *,
        method: MergeMethod,
        identity: GitIdentity,
        target_branch: str,
        when: datetime | None = None,
    ) -> BatchBuild:
        """The batch commit: ``members`` applied in order on ``target_sha`` following the
        project's merge method. An MR that conflicts is left out with its conflicting paths
        and the next one goes on from the previous tip. A fixed ``when`` makes a rebuild of
        the same batch produce the same shas."""
        stamp = int(when.timestamp() if when else time.time())
        who = f"{identity.name} <{identity.email}>".encode()
        tip = _oid(target_sha)
        self._commit(tip)
        included: list[IncludedMergeRequest] = []
        rejected: list[RejectedMergeRequest] = []
        for member in members:
            head = _oid(member.head_sha)
            self._commit(head)
            if method is MergeMethod.MERGE:
                new_tip, conflicts = self._merge(
                    tip, head, member, target_branch, who=who, stamp=stamp
                )
            else:
                new_tip, conflicts = self._rebase(tip, head, _oid(target_sha), who, stamp)
            if conflicts:
                rejected.append(RejectedMergeRequest(iid=member.iid, conflicts=tuple(conflicts)))
                continue
            tip = new_tip
            included.append(
                IncludedMergeRequest(iid=member.iid, head_sha=member.head_sha, tip_sha=tip.decode())
            )
        return BatchBuild(
            target_sha=target_sha,
            sha=tip.decode(),
            included=tuple(included),
            rejected=tuple(rejected),
        )

    def _merge(
        self,
        tip: ObjectID,
        head: ObjectID,
        member: BatchMember,
        target_branch: str,
        *,
        who: bytes,
        stamp: int,
    ) -> tuple[ObjectID, list[str]]:
        if self._is_ancestor(head, tip):
            return tip, []
        base = self._merge_base_tree(tip, head)
        tree, conflicts = self._merge_trees(base, self._tree_of(tip), self._tree_of(head))
        if conflicts:
            return tip, conflicts
        commit = Commit()
        commit.tree = tree
        commit.parents = [tip, head]
        commit.author = commit.committer = who
        commit.author_time = commit.commit_time = self._commit_time(stamp, [tip, head])
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = merge_commit_message(member, target_branch, self.project_path).encode()
        self.repo.object_store.add_object(commit)
        return commit.id, []

    def _rebase(
        self, tip: ObjectID, head: ObjectID, target: ObjectID, who: bytes, stamp: int
    ) -> tuple[ObjectID, list[str]]:
        if self._is_ancestor(tip, head):
            # Already based on the tip: landing the MR's own commits lets GitLab recognise
            # them as merged, as a fast-forward merge would.
            return head, []
        walker = self.repo.get_walker(include=[head], exclude=[target], order=ORDER_TOPO)
        # Merge commits are dropped as `git rebase` drops them: what they brought in from
        # the target is already there.
        commits = [entry.commit for entry in walker if len(entry.commit.parents) <= 1][::-1]
        new_tip = tip
        for original in commits:
            parent_tree = self._tree_of(original.parents[0]) if original.parents else None
            tip_tree = self._tree_of(new_tip)
            tree, conflicts = self._merge_trees(parent_tree, tip_tree, original.tree)
            if conflicts:
                return tip, conflicts
            if tree == tip_tree and original.tree != parent_tree:
                continue  # its change is already in: `git rebase` drops such commits too
            commit = Commit()
            commit.tree = tree
            commit.parents = [new_tip]
            commit.author = original.author
            commit.author_time = original.author_time
            commit.author_timezone = original.author_timezone
            commit.committer = who
            commit.commit_time = self._commit_time(stamp, [new_tip])
            commit.commit_timezone = 0
            commit.message = original.message
            if original.encoding:
                commit.encoding = original.encoding
            self.repo.object_store.add_object(commit)
            new_tip = commit.id
        return new_tip, []
