"""What happens when refs move, whether by a git push over smart HTTP or by the API:
branch protection decides who may move them; afterwards pipelines start, push hooks fire,
open MRs of the branch get their new head, and MRs whose head reached their target are
marked merged (as GitLab does).

A git push is answered once its refs are updated; what follows runs in the background, as
GitLab's ``PostReceive`` Sidekiq job does after Gitaly's post-receive hook queued it. The
API's own ref updates (commits, branches, merges) keep running it at once."""

from __future__ import annotations

import logging
import threading
import weakref
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dulwich.objects import Commit, ObjectID
from dulwich.repo import Repo

from local.gitlab_sim import gitops
from local.gitlab_sim.gitops import ZERO_SHA
from local.gitlab_sim.models import DEVELOPER, Project, User
from local.gitlab_sim.pipelines import PipelineService
from local.gitlab_sim.store import Event, Store

if TYPE_CHECKING:
    from local.gitlab_sim.merge_requests import MergeRequestService

log = logging.getLogger(__name__)

BRANCH_PREFIX = "refs/heads/"

RefUpdate = tuple[str, str, str]


class CommitGraph:
    """Parents and generation numbers (git's commit-graph "topological levels") of a
    repository's commits, remembered as they are met: commits never change. An ancestry
    question then walks only the commits newer, by generation, than the ancestor asked
    about, where a plain walk goes down to the root commit for every "no"."""

    def __init__(self, repo: Repo) -> None:
        self._repo = repo
        self._parents: dict[ObjectID, tuple[ObjectID, ...]] = {}
        self._generation: dict[ObjectID, int] = {}

    def parents(self, sha: ObjectID) -> tuple[ObjectID, ...]:
        found = self._parents.get(sha)
        if found is None:
            commit = self._repo[sha]
            if not isinstance(commit, Commit):
                raise KeyError(sha)
            found = self._parents[sha] = tuple(commit.parents)
        return found

    def get_parents(self, sha: ObjectID) -> list[ObjectID] | None:
        """dulwich's commit-graph lookup: None for what is not a commit of the repository,
        which dulwich then reads itself."""
        try:
            return list(self.parents(sha))
        except KeyError:
            return None

    def knows(self, sha: ObjectID) -> bool:
        """Met already, as a commit."""
        return sha in self._parents

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
            self._generation[top] = 1 + max(
                (self._generation[p] for p in self.parents(top)), default=0
            )
            pending.pop()
        return self._generation[sha]

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Exact, like ``gitops.is_ancestor``: a commit of generation at most the
        ancestor's, other than the ancestor itself, cannot lead to it."""
        if ancestor == descendant:
            return True
        target, start = ObjectID(ancestor.encode()), ObjectID(descendant.encode())
        if target not in self._repo.object_store:
            return False
        floor = self.generation(target)
        pending, seen = [start], {start}
        while pending:
            sha = pending.pop()
            if sha == target:
                return True
            if self.generation(sha) <= floor:
                continue
            for parent in self.parents(sha):
                if parent not in seen:
                    seen.add(parent)
                    pending.append(parent)
        return False


_graphs: weakref.WeakKeyDictionary[Repo, CommitGraph] = weakref.WeakKeyDictionary()
_graphs_lock = threading.Lock()


def commit_graph(repo: Repo) -> CommitGraph:
    with _graphs_lock:
        graph = _graphs.get(repo)
        if graph is None:
            graph = _graphs[repo] = CommitGraph(repo)
        return graph


@dataclass(frozen=True)
class PushOptions:
    """The GitLab push options the simulator honours (``git push -o ...``; GitLab's "Push
    options" page): ``ci.skip`` records the push's branch pipeline as skipped, and each
    ``ci.variable="<name>=<value>"`` is a CI/CD variable of that pipeline. Branch
    pipelines only, as on GitLab; options GitLab does not know are ignored."""

    skip_ci: bool = False
    variables: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, options: Iterable[str]) -> PushOptions:
        skip, variables = False, []
        for option in options:
            if option == "ci.skip":
                skip = True
            elif option.startswith("ci.variable="):
                key, sep, value = option[len("ci.variable=") :].partition("=")
                if key and sep:
                    variables.append((key, value))
        return cls(skip, tuple(variables))


@dataclass(frozen=True)
class _PostReceive:
    project: Project
    user: User
    updates: list[RefUpdate]
    # The project's MRs when the push was answered: see ``_run_post_receive``.
    merge_requests_before: frozenset[int]
    options: PushOptions


@dataclass
class PushService:
    store: Store
    pipelines: PipelineService
    merge_requests: MergeRequestService | None = None
    # Post-receive work of git pushes, in the order the pushes were answered, and whether
    # a worker is taking them (one at a time: each push sees the effects of the previous).
    _queued: deque[_PostReceive] = field(default_factory=deque)
    _working: bool = False
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def may_push(self, project: Project, user: User, branch: str) -> bool:
        level = self.store.access_level(project, user)
        rule = project.protected.get(branch)
        return level >= (rule.push_access_level if rule else DEVELOPER)

    # One return per GitLab push rule, each with GitLab's own message.
    def refuse_update(  # noqa: PLR0911
        self, project: Project, user: User, ref: str, old: str, new: str
    ) -> str | None:
        """Why moving ``ref`` from ``old`` to ``new`` is refused, or None (pre-receive check)."""
        with self.store.lock:
            if ref.startswith("refs/merge-requests/"):
                return "deny updating a hidden ref"
            if not ref.startswith(BRANCH_PREFIX):
                return (
                    None
                    if self.store.access_level(project, user) >= DEVELOPER
                    else "You are not allowed to push code to this project."
                )
            branch = ref[len(BRANCH_PREFIX) :]
            rule = project.protected.get(branch)
            if not self.may_push(project, user, branch):
                if rule is not None:
                    return (
                        "You are not allowed to push code to protected branches "
                        f"on this project. ({branch})"
                    )
                return "You are not allowed to push code to this project."
            if rule is not None and new == ZERO_SHA:
                return "You can only delete protected branches using the web interface."
            if (
                rule is not None
                and old != ZERO_SHA
                and not rule.allow_force_push
                and not commit_graph(self.store.repo(project.id)).is_ancestor(old, new)
            ):
                return (
                    "You are not allowed to force push code to a protected branch on this project."
                )
            return None

    def after_push(
        self,
        project: Project,
        user: User,
        updates: list[RefUpdate],
        options: PushOptions | None = None,
    ) -> None:
        """A git push's refs are updated: its effects follow in the background."""
        with self.store.lock:
            opened = frozenset(mr.iid for mr in self.store.project_merge_requests(project.id))
        with self._changed:
            self._queued.append(
                _PostReceive(project, user, updates, opened, options or PushOptions())
            )
            if not self._working:
                self._working = True
                threading.Thread(
                    target=self._work, name="gitlab-sim-post-receive", daemon=True
                ).start()

    def idle(self) -> bool:
        """No push waits for its post-receive work."""
        with self._changed:
            return not self._working

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: not self._working, timeout)

    def _work(self) -> None:
        while True:
            with self._changed:
                if not self._queued:
                    self._working = False
                    self._changed.notify_all()
                    return
                job = self._queued.popleft()
            try:
                self._run_post_receive(job)
            except Exception:
                # As a failed Sidekiq job: logged, and the next push is still handled.
                log.exception("post-receive of a push to project %s failed", job.project.id)

    def _run_post_receive(self, job: _PostReceive) -> None:
        self.on_push(
            job.project,
            job.user,
            job.updates,
            opened_before=job.merge_requests_before,
            options=job.options,
        )

    def on_push(
        self,
        project: Project,
        user: User,
        updates: list[RefUpdate],
        skip_ci: bool = False,
        *,
        opened_before: frozenset[int] | None = None,
        options: PushOptions | None = None,
    ) -> None:
        """The effects of ``updates``; ``opened_before``: the project's MRs when the push
        was answered, for the work of a git push that ran after its answer. ``skip_ci``
        creates no pipeline at all (the rebase API's ``skip_ci``); push ``options`` as
        ``PushOptions`` says."""
        options = options or PushOptions()
        store = self.store
        assert self.merge_requests is not None
        with store.lock:
            # An MR opened on the pushed commit before this ran has started its own
            # pipeline for it (the simulator's MRs do when their head has none): one is
            # enough, as it was when this work ran inside the push.
            already_tested = (
                set()
                if opened_before is None
                else {
                    p.sha
                    for p in store.pipelines.values()
                    if p.project_id == project.id
                    and p.mr_iid is not None
                    and p.mr_iid not in opened_before
                }
            )
            for old, new, ref in updates:
                if not ref.startswith(BRANCH_PREFIX):
                    continue
                branch = ref[len(BRANCH_PREFIX) :]
                store.emit(
                    Event(
                        project.id,
                        "push_events",
                        "Push Hook",
                        {
                            "before": old,
                            "after": new,
                            "ref": ref,
                            "user_id": user.id,
                        },
                    )
                )
                if new == ZERO_SHA:
                    continue
                if not skip_ci and new not in already_tested:
                    self.pipelines.create(
                        project,
                        new,
                        branch,
                        "push",
                        user,
                        variables=options.variables,
                        skipped=options.skip_ci,
                    )
                self._follow_branch(project, user, branch, new)

    def _follow_branch(self, project: Project, user: User, branch: str, new: str) -> None:
        assert self.merge_requests is not None
        graph = commit_graph(self.store.repo(project.id))
        for mr in self.store.project_merge_requests(project.id):
            if mr.state != "opened":
                continue
            if mr.source_branch == branch and mr.sha != new:
                self.merge_requests.on_source_moved(project, mr, user, mr.sha, new)
        for mr in self.store.project_merge_requests(project.id):
            if (
                mr.state == "opened"
                and mr.target_branch == branch
                and graph.is_ancestor(mr.sha, new)
            ):
                self.merge_requests.on_landed_by_push(mr, user)

    def create_branch(self, project: Project, user: User, branch: str, sha: str) -> None:
        with self.store.lock:
            ref = BRANCH_PREFIX + branch
            if not gitops.set_ref(self.store.repo(project.id), ref, sha, expected_old=ZERO_SHA):
                raise ValueError("Branch already exists")
            self.on_push(project, user, [(ZERO_SHA, sha, ref)])

    def delete_branch(self, project: Project, user: User, branch: str) -> bool:
        with self.store.lock:
            repo = self.store.repo(project.id)
            old = gitops.branch_sha(repo, branch)
            if old is None or branch in project.protected:
                return False
            gitops.delete_ref(repo, BRANCH_PREFIX + branch)
            self.on_push(project, user, [(old, ZERO_SHA, BRANCH_PREFIX + branch)])
            return True

    def commit(self, project: Project, user: User, branch: str, new: str, old: str | None) -> bool:
        """Moves ``branch`` from ``old`` to ``new`` (compare-and-swap) and runs the push effects."""
        with self.store.lock:
            ref = BRANCH_PREFIX + branch
            if not gitops.set_ref(
                self.store.repo(project.id), ref, new, expected_old=old or ZERO_SHA
            ):
                return False
            self.on_push(project, user, [(old or ZERO_SHA, new, ref)])
            return True
