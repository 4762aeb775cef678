"""Merge request behaviour: creation, updates, GitLab's merge checks, approvals, notes,
asynchronous rebase and the merge itself (merge commit, rebase-merge or fast-forward, with
squash), all as real git operations."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from local.gitlab_sim import gitops
from local.gitlab_sim.errors import ApiError
from local.gitlab_sim.gitops import GitError, Identity
from local.gitlab_sim.models import DEVELOPER, MergeRequest, Note, Project, User
from local.gitlab_sim.pipelines import PipelineService
from local.gitlab_sim.pushes import PushService
from local.gitlab_sim.store import Event, NotFound, Store, now_iso

REBASE_SIMULATED_SECONDS = 2.0


@dataclass(frozen=True)
class MergeChecks:
    detailed_merge_status: str
    has_conflicts: bool
    conflicts: list[str]

    @property
    def merge_status(self) -> str:
        return "cannot_be_merged" if self.has_conflicts else "can_be_merged"


def identity(user: User) -> Identity:
    return Identity(user.name, user.email)


@dataclass
class MergeRequestService:
    store: Store
    pipelines: PipelineService
    pushes: PushService
    _conflict_cache: dict[tuple[int, str, str], list[str]] = field(default_factory=dict)

    # --- lifecycle ------------------------------------------------------------------------

    def create(self, project: Project, author: User, fields: dict[str, Any]) -> MergeRequest:
        store = self.store
        with store.lock:
            source, target = fields.get("source_branch"), fields.get("target_branch")
            title = fields.get("title")
            if not source or not target or not title:
                missing = [
                    n for n in ("source_branch", "target_branch", "title") if not fields.get(n)
                ]
                raise ApiError(400, f"{', '.join(missing)} is missing")
            repo = store.repo(project.id)
            head = gitops.branch_sha(repo, source)
            if head is None:
                raise ApiError(422, ["Source branch does not exist"])
            if gitops.branch_sha(repo, target) is None:
                raise ApiError(422, ["Target branch does not exist"])
            if source == target:
                raise ApiError(422, ["You can't use same project/branch for source and target"])
            for other in store.project_merge_requests(project.id):
                if (
                    other.state == "opened"
                    and other.source_branch == source
                    and other.target_branch == target
                ):
                    raise ApiError(
                        409,
                        [
                            "Another open merge request already exists for this source branch: "
                            f"!{other.iid}"
                        ],
                    )
            stamp = now_iso()
            mr = MergeRequest(
                id=store.next_id("merge_request"),
                iid=project.next_mr_iid,
                project_id=project.id,
                title=str(title),
                description=str(fields.get("description") or ""),
                source_branch=source,
                target_branch=target,
                author_id=author.id,
                sha=head,
                created_at=stamp,
                updated_at=stamp,
                labels=_labels(fields.get("labels")),
                assignee_ids=_ids(fields, "assignee_ids", "assignee_id"),
                reviewer_ids=_ids(fields, "reviewer_ids", None),
                squash=_truthy(fields.get("squash")),
                force_remove_source_branch=_truthy(fields.get("remove_source_branch")),
                sha_history=[head],
            )
            project.next_mr_iid += 1
            self._refresh_diff_refs(project, mr)
            store.merge_requests[(project.id, mr.iid)] = mr
            gitops.set_ref(repo, f"refs/merge-requests/{mr.iid}/head", head)
            if not any(p.sha == head for p in self.pipelines.for_merge_request(project.id, mr.iid)):
                self.pipelines.create(
                    project,
                    head,
                    f"refs/merge-requests/{mr.iid}/head",
                    "merge_request_event",
                    author,
                    mr_iid=mr.iid,
                )
            self._emit(mr, author, "open", {})
            return mr

    def update(
        self, project: Project, mr: MergeRequest, user: User, fields: dict[str, Any]
    ) -> MergeRequest:
        store = self.store
        with store.lock:
            changes: dict[str, Any] = {}

            def change(name: str, new: Any, attr: str | None = None) -> None:
                old = getattr(mr, attr or name)
                if old != new:
                    changes[name] = {"previous": old, "current": new}
                    setattr(mr, attr or name, new)

            if "title" in fields:
                change("title", str(fields["title"]))
            if "description" in fields:
                change("description", str(fields["description"] or ""))
            if "target_branch" in fields:
                if gitops.branch_sha(store.repo(project.id), str(fields["target_branch"])) is None:
                    raise ApiError(422, ["Target branch does not exist"])
                change("target_branch", str(fields["target_branch"]))
            labels = list(mr.labels)
            if "labels" in fields:
                labels = _labels(fields["labels"])
            labels += [lb for lb in _labels(fields.get("add_labels")) if lb not in labels]
            removed = set(_labels(fields.get("remove_labels")))
            change("labels", [lb for lb in labels if lb not in removed])
            if "assignee_ids" in fields or "assignee_id" in fields:
                change("assignees", _ids(fields, "assignee_ids", "assignee_id"), "assignee_ids")
            if "reviewer_ids" in fields:
                change("reviewers", _ids(fields, "reviewer_ids", None), "reviewer_ids")
            if "squash" in fields:
                change("squash", _truthy(fields["squash"]))
            if "remove_source_branch" in fields:
                change("force_remove_source_branch", _truthy(fields["remove_source_branch"]))
            action = "update"
            event = fields.get("state_event")
            if event == "close" and mr.state == "opened":
                change("state", "closed")
                mr.closed_at, mr.closed_by_id, action = now_iso(), user.id, "close"
            elif event == "reopen" and mr.state == "closed":
                change("state", "opened")
                mr.closed_at, mr.closed_by_id, action = None, None, "reopen"
            if changes:
                mr.updated_at = now_iso()
                self._emit(mr, user, action, changes)
            return mr

    def note(
        self,
        mr: MergeRequest,
        author: User,
        body: str,
        *,
        resolvable: bool = False,
        system: bool = False,
        discussion_id: str | None = None,
    ) -> Note:
        store = self.store
        with store.lock:
            if not body.strip():
                raise ApiError(400, {"note": ["can't be blank"]})
            note = Note(
                id=store.next_id("note"),
                body=body,
                author_id=author.id,
                created_at=now_iso(),
                discussion_id=discussion_id or uuid.uuid4().hex,
                system=system,
                resolvable=resolvable,
            )
            mr.notes.append(note)
            mr.updated_at = note.created_at
            if not system:
                store.emit(
                    Event(
                        mr.project_id,
                        "note_events",
                        "Note Hook",
                        {"iid": mr.iid, "note_id": note.id, "user_id": author.id},
                    )
                )
            return note

    def approve(self, project: Project, mr: MergeRequest, user: User, sha: str | None) -> None:
        with self.store.lock:
            if sha and sha != mr.sha:
                raise ApiError(409, "SHA does not match HEAD of source branch")
            if user.id in mr.approved_by or (user.id == mr.author_id and not user.is_admin):
                raise ApiError(401, "401 Unauthorized")
            if self.store.access_level(project, user) < DEVELOPER:
                raise ApiError(401, "401 Unauthorized")
            mr.approved_by.append(user.id)
            self._emit(mr, user, "approved", {})

    def unapprove(self, mr: MergeRequest, user: User) -> None:
        with self.store.lock:
            if user.id not in mr.approved_by:
                raise ApiError(404, "404 Not found")
            mr.approved_by.remove(user.id)
            self._emit(mr, user, "unapproved", {})

    # --- merge checks ---------------------------------------------------------------------

    def conflicts(self, project: Project, mr: MergeRequest) -> list[str]:
        repo = self.store.repo(project.id)
        target = gitops.branch_sha(repo, mr.target_branch)
        if target is None:
            return []
        # A function of the two commits alone: listing a hundred open MRs must not walk
        # their histories again at every request (each walk holds the store's lock).
        key = (project.id, target, mr.sha)
        if key not in self._conflict_cache:
            if gitops.is_ancestor(repo, mr.sha, target) or gitops.is_ancestor(repo, target, mr.sha):
                self._conflict_cache[key] = []
            else:
                base = gitops.merge_base(repo, target, mr.sha)
                merged = gitops.merge_trees(repo, base, target, mr.sha)
                self._conflict_cache[key] = merged.conflicts
        return self._conflict_cache[key]

    def checks(self, project: Project, mr: MergeRequest) -> MergeChecks:
        with self.store.lock:
            conflicts = self.conflicts(project, mr) if mr.state == "opened" else []
            return MergeChecks(self._detailed(project, mr, conflicts), bool(conflicts), conflicts)

    # One return per GitLab merge check, in the order GitLab reports them.
    def _detailed(  # noqa: PLR0911
        self, project: Project, mr: MergeRequest, conflicts: list[str]
    ) -> str:
        if mr.state != "opened":
            return "not_open"
        if mr.rebase_in_progress:
            return "checking"
        if mr.draft:
            return "draft_status"
        repo = self.store.repo(project.id)
        target = gitops.branch_sha(repo, mr.target_branch)
        if target is None or gitops.branch_sha(repo, mr.source_branch) is None:
            return "broken_status"
        if conflicts:
            return "conflict"
        if project.merge_method != "merge" and not gitops.is_ancestor(repo, target, mr.sha):
            return "need_rebase"
        if project.only_allow_merge_if_pipeline_succeeds:
            head = self.pipelines.head_pipeline(project.id, mr.iid)
            if head is not None and head.status in ("created", "pending", "running"):
                return "ci_still_running"
            if head is None or head.status not in ("success", "skipped"):
                return "ci_must_pass"
        if project.only_allow_merge_if_all_discussions_are_resolved and not self.resolved(mr):
            return "discussions_not_resolved"
        if len(mr.approved_by) < project.approvals_before_merge:
            return "not_approved"
        return "mergeable"

    @staticmethod
    def resolved(mr: MergeRequest) -> bool:
        return all(n.resolved for n in mr.notes if n.resolvable)

    def can_merge(self, project: Project, user: User, branch: str) -> bool:
        level = self.store.access_level(project, user)
        rule = project.protected.get(branch)
        return level >= (rule.merge_access_level if rule else DEVELOPER)

    # --- rebase ---------------------------------------------------------------------------

    def start_rebase(self, project: Project, mr: MergeRequest, user: User, skip_ci: bool) -> None:
        store = self.store
        with store.lock:
            if mr.state != "opened":
                raise ApiError(405, "405 Method Not Allowed")
            if not self.pushes.may_push(project, user, mr.source_branch):
                raise ApiError(403, "403 Forbidden")
            if mr.rebase_in_progress:
                raise ApiError(409, "Rebase task already in progress")
            mr.rebase_in_progress, mr.merge_error = True, None
            mr.rebase_skip_ci, mr.rebase_user_id = skip_ci, user.id
            mr.rebase_done_at = store.monotonic() + store.real_seconds(REBASE_SIMULATED_SECONDS)

    def finish_due_rebases(self) -> None:
        store = self.store
        with store.lock:
            now = store.monotonic()
            for mr in list(store.merge_requests.values()):
                if (
                    mr.rebase_in_progress
                    and mr.rebase_done_at is not None
                    and now >= mr.rebase_done_at
                ):
                    self._rebase(mr)

    def _rebase(self, mr: MergeRequest) -> None:
        store = self.store
        project = store.projects[mr.project_id]
        user = store.user(mr.rebase_user_id or mr.author_id)
        repo = store.repo(project.id)
        mr.rebase_in_progress, mr.rebase_done_at = False, None
        target = gitops.branch_sha(repo, mr.target_branch)
        head = gitops.branch_sha(repo, mr.source_branch)
        if target is None or head is None:
            mr.merge_error = "Rebase failed: the source or target branch is missing."
            return
        try:
            rebased = gitops.rebase(repo, target, head, identity(user))
        except GitError as err:
            mr.merge_error = str(err)
            return
        if rebased != head:
            ref = f"refs/heads/{mr.source_branch}"
            if gitops.set_ref(repo, ref, rebased, expected_old=head):
                self.pushes.on_push(
                    project, user, [(head, rebased, ref)], skip_ci=mr.rebase_skip_ci
                )
            else:
                mr.merge_error = "Rebase failed: the source branch moved during the rebase."

    # --- merge ----------------------------------------------------------------------------

    def merge(
        self, project: Project, mr: MergeRequest, user: User, params: dict[str, Any]
    ) -> MergeRequest:
        store = self.store
        with store.lock:
            if mr.state != "opened":
                raise ApiError(405, "405 Method Not Allowed")
            if not self.can_merge(project, user, mr.target_branch):
                raise ApiError(401, "401 Unauthorized")
            sha = params.get("sha")
            if sha and sha != mr.sha:
                raise ApiError(409, "SHA does not match HEAD of source branch: " + mr.sha)
            checks = self.checks(project, mr)
            if checks.detailed_merge_status in ("conflict", "need_rebase", "broken_status"):
                raise ApiError(422, "Branch cannot be merged")
            if checks.detailed_merge_status != "mergeable":
                raise ApiError(405, "405 Method Not Allowed")
            squash = _truthy(params["squash"]) if "squash" in params else mr.squash
            repo = store.repo(project.id)
            target = gitops.branch_sha(repo, mr.target_branch)
            assert target is not None
            new_head, squash_sha = self._landing_commit(
                project, mr, user, target=target, squash=squash, params=params
            )
            if not gitops.set_ref(
                repo, f"refs/heads/{mr.target_branch}", new_head, expected_old=target
            ):
                raise ApiError(422, "Branch cannot be merged")
            stamp = now_iso()
            mr.state, mr.merged_by_id, mr.merged_at, mr.updated_at = "merged", user.id, stamp, stamp
            mr.merge_commit_sha = new_head if project.merge_method != "ff" else None
            mr.squash_commit_sha, mr.squash = squash_sha, squash
            self._emit(mr, user, "merge", {"state_id": {"previous": 1, "current": 3}})
            self.pushes.on_push(
                project, user, [(target, new_head, f"refs/heads/{mr.target_branch}")]
            )
            remove = params.get("should_remove_source_branch")
            if _truthy(remove) or (remove is None and mr.force_remove_source_branch):
                self.pushes.delete_branch(project, user, mr.source_branch)
            return mr

    def _landing_commit(
        self,
        project: Project,
        mr: MergeRequest,
        user: User,
        *,
        target: str,
        squash: bool,
        params: dict[str, Any],
    ) -> tuple[str, str | None]:
        repo = self.store.repo(project.id)
        head, squash_sha = mr.sha, None
        if squash:
            message = params.get("squash_commit_message") or mr.title
            parent = (
                target
                if project.merge_method != "merge"
                else (gitops.merge_base(repo, target, head) or target)
            )
            tree = gitops.get_commit(repo, head).tree.decode()
            author = store_user_identity(self.store, mr.author_id)
            head = squash_sha = gitops.make_commit(
                repo, tree, [parent], str(message), author, committer=identity(user)
            )
        if project.merge_method == "ff":
            return head, squash_sha
        # "merge" and "rebase_merge" (semi-linear history) both record a merge commit.
        merge = self._merge_commit(project, mr, user, target=target, head=head, params=params)
        return merge, squash_sha

    def _merge_commit(
        self,
        project: Project,
        mr: MergeRequest,
        user: User,
        *,
        target: str,
        head: str,
        params: dict[str, Any],
    ) -> str:
        repo = self.store.repo(project.id)
        base = gitops.merge_base(repo, target, head)
        merged = gitops.merge_trees(repo, base, target, head)
        if merged.conflicts:
            raise ApiError(422, "Branch cannot be merged")
        message = params.get("merge_commit_message") or (
            f"Merge branch '{mr.source_branch}' into '{mr.target_branch}'\n\n{mr.title}\n\n"
            f"See merge request {project.path_with_namespace}!{mr.iid}"
        )
        return gitops.make_commit(repo, merged.tree, [target, head], str(message), identity(user))

    # --- helpers --------------------------------------------------------------------------

    def _refresh_diff_refs(self, project: Project, mr: MergeRequest) -> None:
        repo = self.store.repo(project.id)
        target = gitops.branch_sha(repo, mr.target_branch) or mr.sha
        mr.start_sha = target
        mr.base_sha = gitops.merge_base(repo, target, mr.sha) or target

    def on_source_moved(
        self, project: Project, mr: MergeRequest, user: User, old: str, new: str
    ) -> None:
        """The source branch got new commits: new head, new diff, fresh merge checks."""
        mr.sha = new
        mr.sha_history.append(new)
        mr.merge_error = None
        mr.updated_at = now_iso()
        self._refresh_diff_refs(project, mr)
        gitops.set_ref(self.store.repo(project.id), f"refs/merge-requests/{mr.iid}/head", new)
        self._emit(mr, user, "update", {}, oldrev=old)

    def on_landed_by_push(self, mr: MergeRequest, user: User) -> None:
        stamp = now_iso()
        mr.state, mr.merged_by_id, mr.merged_at, mr.updated_at = "merged", user.id, stamp, stamp
        self._emit(mr, user, "merge", {"state_id": {"previous": 1, "current": 3}})

    def _emit(
        self,
        mr: MergeRequest,
        user: User,
        action: str,
        changes: dict[str, Any],
        oldrev: str | None = None,
    ) -> None:
        self.store.emit(
            Event(
                mr.project_id,
                "merge_requests_events",
                "Merge Request Hook",
                {
                    "iid": mr.iid,
                    "action": action,
                    "changes": changes,
                    "user_id": user.id,
                    "oldrev": oldrev,
                },
            )
        )


def store_user_identity(store: Store, user_id: int) -> Identity:
    try:
        return identity(store.user(user_id))
    except NotFound:
        return Identity("Unknown", "unknown@example.com")


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("true", "1", "yes")
    return bool(value)


def _labels(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def _ids(fields: dict[str, Any], plural: str, singular: str | None) -> list[int]:
    value = fields.get(plural)
    if value is None and singular is not None and fields.get(singular) not in (None, ""):
        value = [fields[singular]]
    if value is None or value == "":
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    return [int(i) for i in items if str(i).strip() not in ("", "0")]
