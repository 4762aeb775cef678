"""What happens when refs move, whether by a git push over smart HTTP or by the API:
branch protection decides who may move them; afterwards pipelines start, push hooks fire,
open MRs of the branch get their new head, and MRs whose head reached their target are
marked merged (as GitLab does)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from local.gitlab_sim import gitops
from local.gitlab_sim.gitops import ZERO_SHA
from local.gitlab_sim.models import DEVELOPER, Project, User
from local.gitlab_sim.pipelines import PipelineService
from local.gitlab_sim.store import Event, Store

if TYPE_CHECKING:
    from local.gitlab_sim.merge_requests import MergeRequestService

BRANCH_PREFIX = "refs/heads/"

RefUpdate = tuple[str, str, str]


@dataclass
class PushService:
    store: Store
    pipelines: PipelineService
    merge_requests: MergeRequestService | None = None

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
                and not gitops.is_ancestor(self.store.repo(project.id), old, new)
            ):
                return (
                    "You are not allowed to force push code to a protected branch on this project."
                )
            return None

    def on_push(
        self, project: Project, user: User, updates: list[RefUpdate], skip_ci: bool = False
    ) -> None:
        store = self.store
        assert self.merge_requests is not None
        with store.lock:
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
                if not skip_ci:
                    self.pipelines.create(project, new, branch, "push", user)
                self._follow_branch(project, user, branch, new)

    def _follow_branch(self, project: Project, user: User, branch: str, new: str) -> None:
        assert self.merge_requests is not None
        repo = self.store.repo(project.id)
        for mr in self.store.project_merge_requests(project.id):
            if mr.state != "opened":
                continue
            if mr.source_branch == branch and mr.sha != new:
                self.merge_requests.on_source_moved(project, mr, user, mr.sha, new)
        for mr in self.store.project_merge_requests(project.id):
            if (
                mr.state == "opened"
                and mr.target_branch == branch
                and gitops.is_ancestor(repo, mr.sha, new)
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
