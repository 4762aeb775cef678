"""Builds and pushes batch commits with dulwich over git smart HTTP: no git binary, so it runs
in a plain Lambda. A bare repository in a work directory is reused while the Lambda is warm,
so later fetches only bring what is new."""

from __future__ import annotations

import functools
import heapq
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from tempfile import SpooledTemporaryFile
from typing import Any, TypeVar

from dulwich.client import (
    FetchPackResult,
    GitClient,
    HTTPUnauthorized,
    get_transport_and_path,
)
from dulwich.errors import GitProtocolError, NotGitRepository
from dulwich.merge import Merger
from dulwich.objects import S_ISGITLINK, Commit, ObjectID, ShaFile, Tree
from dulwich.pack import UnpackedObject, pack_objects_to_data
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

# A fetched pack stays in memory up to this size (dulwich's own threshold), then spills to
# a file in the work directory.
PACK_SPOOL_FILE_MAX_SIZE = 16 * 1024 * 1024
# A push whose new commits reach further than this from anything the remote is known to
# hold is worked out by dulwich's generic finder instead.
PUSH_WALK_LIMIT = 2000
# GitLab's push option for "start no pipeline for this push" (its "Push options" page).
SKIP_CI = b"ci.skip"

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


class _Tips:
    """The haves a fetch sends: the commits we hold among the remote's current values of
    the refs asked for and our copies of them. The target's head is usually ours already
    (we pushed it), so the remote finds the new MR commits' bases at once. dulwich's own
    walker would instead send our whole history, one have per commit, up to its limit,
    and the remote would check every one."""

    def __init__(self) -> None:
        self._offered: list[ObjectID] = []
        self._pending: list[ObjectID] = []

    def offer(self, shas: Set[ObjectID], store: Any) -> None:
        self._offered = sorted(sha for sha in shas if sha in store)
        self._pending = list(self._offered)

    def reset(self) -> None:
        self._offered, self._pending = [], []

    def __next__(self) -> ObjectID | None:
        return self._pending.pop(0) if self._pending else None

    def ack(self, sha: ObjectID, /) -> None:
        """The remote has it: nothing more to learn, the haves are all sent at once."""

    def nak(self) -> None:
        """Nothing in common (a cold repository): the remote sends everything."""


_PARENT1, _PARENT2, _STALE, _RESULT = 1, 2, 4, 8


class CommitHistory:
    """Parents and generation numbers (git's commit-graph "topological levels") of the
    commits met, kept while the engine lives: commits never change. Ancestry and merge
    bases are then exact walks over the commits newer, by generation, than the answer, as
    git does with a commit-graph. dulwich's own merge base orders by commit time and, when
    times tie (commits made within one second), walks far down the history and may also
    return stale ancestors of the real base."""

    def __init__(self, repo: Callable[[], Repo]) -> None:
        self._repo = repo
        self._parents: dict[ObjectID, tuple[ObjectID, ...]] = {}
        self._generation: dict[ObjectID, int] = {}

    def parents(self, sha: ObjectID) -> tuple[ObjectID, ...]:
        found = self._parents.get(sha)
        if found is None:
            commit = self._repo().object_store[sha]
            if not isinstance(commit, Commit):
                raise RefNotFound(f"{sha.decode()} is not a commit")
            store = self._repo().object_store
            # A parent we do not hold (a shallow history) ends the walk there.
            found = self._parents[sha] = tuple(p for p in commit.parents if p in store)
        return found

    def generation(self, sha: ObjectID) -> int:
        """1 for a root commit, else one more than its highest parent."""
        known = self._generation.get(sha)
        if known is not None:
            return known
        pending = [sha]
        while pending:
            top = pending[-1]
            if top in self._generation:
                pending.pop()
                continue
            missing = [p for p in self.parents(top) if p not in self._generation]
            if missing:
                pending.extend(missing)
                continue
            parents = self.parents(top)
            self._generation[top] = 1 + max((self._generation[p] for p in parents), default=0)
            pending.pop()
        return self._generation[sha]

    def is_ancestor(self, ancestor: ObjectID, descendant: ObjectID) -> bool:
        """A commit whose generation is at most the ancestor's, other than the ancestor
        itself, cannot lead to it."""
        if ancestor == descendant:
            return True
        floor = self.generation(ancestor)
        pending, seen = [descendant], {descendant}
        while pending:
            sha = pending.pop()
            if sha == ancestor:
                return True
            if self.generation(sha) <= floor:
                continue
            for parent in self.parents(sha):
                if parent not in seen:
                    seen.add(parent)
                    pending.append(parent)
        return False

    def merge_bases(self, ours: ObjectID, theirs: ObjectID) -> list[ObjectID]:
        """git's ``paint_down_to_common`` with generation numbers, then its
        ``remove_redundant``: newest first, commits reached from one side are painted
        with it; one painted from both is a common ancestor, and its own ancestors are
        stale. The walk ends when only stale commits are left to visit."""
        if ours == theirs:
            return [ours]
        flags: dict[ObjectID, int] = {ours: _PARENT1, theirs: _PARENT2}
        queue = [(-self.generation(ours), ours), (-self.generation(theirs), theirs)]
        heapq.heapify(queue)
        found: list[ObjectID] = []
        while any(not flags[sha] & _STALE for _, sha in queue):
            _, sha = heapq.heappop(queue)
            painted = flags[sha] & (_PARENT1 | _PARENT2 | _STALE)
            if painted == _PARENT1 | _PARENT2:
                if not flags[sha] & _RESULT:
                    flags[sha] |= _RESULT
                    found.append(sha)
                painted |= _STALE
            for parent in self.parents(sha):
                if flags.get(parent, 0) & painted == painted:
                    continue
                flags[parent] = flags.get(parent, 0) | painted
                heapq.heappush(queue, (-self.generation(parent), parent))
        return [
            base
            for base in found
            if not any(other != base and self.is_ancestor(base, other) for other in found)
        ]


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _exclusive(method: _Method) -> _Method:
    """One operation at a time on an engine: its refs, its known-on-remote set and its
    repository are shared state. On AWS a Lambda runs one invocation at a time and this
    never waits; the local stack runs a project's train cars in threads of one process."""

    @functools.wraps(method)
    def guarded(self: GitEngine, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return guarded  # type: ignore[return-value]


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
        # Our copies of the remote's refs, and commits known to be on the remote: read from
        # the work directory once, then kept up to date by ``fetch``.
        self._local: dict[Ref, ObjectID] = {}
        self._local_read = False
        self._on_remote: set[ObjectID] = set()
        self._history = CommitHistory(lambda: self.repo)
        self._lock = threading.RLock()

    @property
    def repo(self) -> Repo:
        if self._repo is None:
            if (self._work_dir / "objects").is_dir():
                self._repo = Repo(str(self._work_dir))
            else:
                self._work_dir.mkdir(parents=True, exist_ok=True)
                self._repo = Repo.init_bare(str(self._work_dir))
        return self._repo

    @_exclusive
    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
            self._repo = None
        self._local.clear()
        self._local_read = False
        self._on_remote.clear()

    def __enter__(self) -> GitEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- remote -------------------------------------------------------------------------

    @_exclusive
    def fetch(self, refs: Sequence[str]) -> dict[str, str]:
        """Fetches the given full ref names into the same local names; their shas. Only
        commits not in the local repository are asked for, and the remote is told the few
        tips we hold that matter (see ``_Tips``), so it sends only what is new."""
        wanted = [Ref(ref.encode()) for ref in refs]
        store = self.repo.object_store
        tips = _Tips()

        def determine_wants(
            refs: Mapping[Ref, ObjectID], depth: int | None = None
        ) -> list[ObjectID]:
            found = {refs[ref] for ref in wanted if refs.get(ref)}
            tips.offer(found | self._local_values(wanted), store)
            return [sha for sha in found if sha not in store]

        client, path = self._client()

        def fetch_once() -> FetchPackResult:
            tips.reset()
            incoming = SpooledTemporaryFile(  # noqa: SIM115 - closed below, as dulwich does
                max_size=PACK_SPOOL_FILE_MAX_SIZE,
                prefix="incoming-",
                dir=str(self._work_dir),
            )
            try:
                result = client.fetch_pack(
                    path.encode(), determine_wants, tips, incoming.write, ref_prefix=wanted
                )
                if incoming.tell():
                    incoming.seek(0)
                    store.add_thin_pack(incoming.read, None)
            finally:
                incoming.close()
            return result

        result = self._over_the_wire(fetch_once)
        shas: dict[str, str] = {}
        missing = []
        for ref in wanted:
            sha = result.refs.get(ref)
            if sha is None:
                missing.append(ref.decode())
                continue
            if self._local.get(ref) != sha:
                self.repo.refs[ref] = sha
                self._local[ref] = sha
            self._on_remote.add(sha)
            shas[ref.decode()] = sha.decode()
        if missing:
            raise RefNotFound(f"not on the remote: {', '.join(missing)}")
        return shas

    def _local_values(self, refs: Sequence[Ref]) -> set[ObjectID]:
        """Where our copies of ``refs`` point (as last fetched)."""
        if not self._local_read:
            self._local.update(self.repo.refs.as_dict())
            self._on_remote.update(self._local.values())
            self._local_read = True
        return {self._local[ref] for ref in refs if ref in self._local}

    @_exclusive
    def push(
        self,
        branch: str,
        sha: str,
        *,
        expected_old_sha: str | None,
        force: bool,
        skip_pipeline: bool = False,
    ) -> None:
        """Moves the remote ``branch`` to ``sha``. With ``expected_old_sha`` the push is a
        compare-and-set (``RemoteMoved`` if the branch is elsewhere); without ``force`` it
        must also be a fast-forward. Pushing where the branch already is succeeds, so a
        retried landing is harmless. ``skip_pipeline`` sends GitLab's ``ci.skip`` push
        option (a server that does not offer push options runs its pipeline as usual)."""
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
            return self._pack_for(have, want, ofs_delta=ofs_delta)

        client, path = self._client()
        # Safe to send again: ``update_refs`` looks at the remote anew each time, so a push
        # that landed unanswered is found where it should be and sends nothing.
        result = self._over_the_wire(
            lambda: client.send_pack(
                path.encode(),
                update_refs,
                generate_pack_data,
                push_options=[SKIP_CI] if skip_pipeline else None,
            )
        )
        error = (result.ref_status or {}).get(ref)
        if error is None:
            self._on_remote.add(new)
            return
        # The server compares the old sha it advertised before updating: a loss there means
        # someone pushed between our look and our update.
        now = self._remote_ref(ref)
        if now == new:
            return
        if now != seen.get("old"):
            raise RemoteMoved(ref.decode(), "the branch moved during the push")
        raise PushRejected(ref.decode(), self._redact(error))

    def _pack_for(
        self, have: Set[ObjectID], want: Set[ObjectID], *, ofs_delta: bool
    ) -> tuple[int, Iterator[UnpackedObject]]:
        """What a push sends: the commits between ``want`` and what the remote holds, with
        only the trees and blobs that differ from their parents'. The remote holds every
        commit it advertises and every commit fetched from it, with all they reach (git's
        connectivity rule). Walking only the new commits keeps a push's cost to its own
        size, where dulwich's generic finder walks the whole history behind ``have``."""
        self._local_values([])
        on_remote = {sha for sha in have if sha in self.repo.object_store} | self._on_remote
        found = self._new_objects(want, on_remote)
        if found is None:
            # An unusual history (a commit far from anything the remote is known to
            # hold): dulwich's finder works it out from the remote's refs.
            known = {sha for sha in have if sha in self.repo.object_store}
            return self.repo.generate_pack_data(known, set(want), ofs_delta=ofs_delta)
        return pack_objects_to_data(found)

    def _new_objects(self, want: Set[ObjectID], on_remote: Set[ObjectID]) -> list[ShaFile] | None:
        """Commits reachable from ``want`` but not from ``on_remote``, parents first, each
        followed by the trees and blobs it brings; None past ``PUSH_WALK_LIMIT`` commits."""
        store = self.repo.object_store
        order: list[Commit] = []
        state: dict[ObjectID, bool] = {}  # False: being walked, True: done
        stack = [sha for sha in want if sha not in on_remote]
        while stack:
            sha = stack[-1]
            if state.get(sha):
                stack.pop()
                continue
            commit = self._commit(sha)
            if sha not in state:
                state[sha] = False
                if len(state) > PUSH_WALK_LIMIT:
                    return None
                # A parent we do not hold is the remote's (we never made it).
                stack.extend(
                    parent
                    for parent in commit.parents
                    if parent not in on_remote and parent not in state and parent in store
                )
                continue
            state[sha] = True
            stack.pop()
            order.append(commit)
        sent: set[ObjectID] = set()
        objects: list[ShaFile] = []
        for commit in order:
            objects.append(commit)
            # Every parent we hold is on the remote or was walked before this commit.
            bases = [self._commit(parent).tree for parent in commit.parents if parent in store]
            self._new_tree_objects(commit.tree, bases, sent, objects)
        return objects

    def _new_tree_objects(
        self, tree_id: ObjectID, bases: list[ObjectID], sent: set[ObjectID], out: list[ShaFile]
    ) -> None:
        """``tree_id`` and what it holds that is neither sent already nor at the same path
        in one of ``bases``: trees of parents, each either on the remote or sent before
        (parents go first)."""
        if tree_id in sent or tree_id in bases:
            return
        tree = self._tree(tree_id)
        sent.add(tree_id)
        out.append(tree)
        base_trees = [self._tree(base) for base in bases]
        for name, mode, sha in tree.iteritems():
            if sha in sent or S_ISGITLINK(mode):
                continue  # a submodule's commit lives in another repository
            same_path = [base[name] for base in base_trees if name in base]
            if any(base_sha == sha for _, base_sha in same_path):
                continue
            if stat.S_ISDIR(mode):
                self._new_tree_objects(
                    sha,
                    [base_sha for base_mode, base_sha in same_path if stat.S_ISDIR(base_mode)],
                    sent,
                    out,
                )
            else:
                sent.add(sha)
                out.append(self.repo.object_store[sha])

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

    @_exclusive
    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return self._is_ancestor(_oid(ancestor), _oid(descendant))

    @_exclusive
    def same_tree(self, first: str, second: str) -> bool:
        return self._tree_of(_oid(first)) == self._tree_of(_oid(second))

    def _is_ancestor(self, ancestor: ObjectID, descendant: ObjectID) -> bool:
        # A commit we never fetched cannot be in the history of one we have.
        if ancestor != descendant and ancestor not in self.repo.object_store:
            return False
        return self._history.is_ancestor(ancestor, descendant)

    def _merge_bases(self, ours: ObjectID, theirs: ObjectID) -> list[ObjectID]:
        """The best common ancestors, as ``git merge-base --all`` finds them."""
        return self._history.merge_bases(ours, theirs)

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

    @_exclusive
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
