"""What the merge queue speaks to: its store, GitLab, the project's repository and the
workflow's executions. Adapters implement them; tests may fake them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from merge_assist.platform.config import ProjectRef
from merge_assist.platform.events import MergeRequestSnapshot, PipelineSnapshot
from merge_assist.platform.ports import ProjectStore
from merge_assist.queue.batch_plan import BatchBuild, BatchMember, GitIdentity, MergeMethod
from merge_assist.queue.comments import Transition
from merge_assist.queue.models import Batch, BranchLock, MergeRequestState, Notice, StatusCategory
from merge_assist.queue.readiness import MergeRequestFacts


class QueueStore(ProjectStore, Protocol):
    """The queue's durable state: MRs' places, batches, branch locks, pipeline waits and
    the outbox, with the projects' configurations (``ProjectStore``'s compare-and-set)."""

    def get_merge_request(self, project_id: int, iid: int) -> MergeRequestState: ...

    def save_merge_request(self, mr: MergeRequestState) -> MergeRequestState: ...

    def list_merge_requests(
        self,
        project_id: int,
        status: StatusCategory,
        target_branch: str | None = None,
    ) -> list[MergeRequestState]:
        """In queue order: target branch, then priority (highest first), then ready time."""
        ...

    def get_batch(self, batch_id: str) -> Batch: ...

    def save_batch(self, batch: Batch) -> Batch: ...

    def list_batches(self, project_id: int, limit: int = 50) -> list[Batch]:
        """Newest first."""
        ...

    def acquire_branch_lock(
        self,
        project_id: int,
        target_branch: str,
        batch_id: str,
        ttl: timedelta,
        *,
        cars: int = 1,
    ) -> BranchLock:
        """Take the lock, or take over one that expired; with ``cars`` > 1 (a train) join the
        batches holding it, at the end, while they are fewer than ``cars``.
        ``LockHeldError`` otherwise. Taking it again for a batch that holds it renews it (a
        retried step is harmless)."""
        ...

    def renew_branch_lock(
        self, project_id: int, target_branch: str, batch_id: str, ttl: timedelta
    ) -> BranchLock:
        """Renew the lock for a batch holding it, or take it if it is free or expired;
        ``LockHeldError`` if others hold it without this batch (a train car cancelled by
        the car ahead, or a batch whose lock expired and was taken)."""
        ...

    def release_branch_lock(self, project_id: int, target_branch: str, batch_id: str) -> None:
        """``batch_id`` leaves the lock (the others holding it keep it); releasing a lock not
        held is a no-op."""
        ...

    def get_branch_lock(self, project_id: int, target_branch: str) -> BranchLock | None: ...

    def put_task_token(self, project_id: int, sha: str, token: str, ttl: timedelta) -> None:
        """The Step Functions task token of the execution waiting for the pipeline of
        ``sha``; a retried wait replaces it. It expires with the wait's timeout."""
        ...

    def get_task_token(self, project_id: int, sha: str) -> str | None: ...

    def delete_task_token(self, project_id: int, sha: str, token: str) -> None:
        """Deletes only if ``token`` is still the stored one, so a late resume of an old
        wait cannot remove a newer wait's token."""
        ...

    def put_notice(self, notice: Notice) -> None:
        """Keep the notice until it is delivered (a second put of its key changes
        nothing); notices expire after a day, when what they say is stale."""
        ...

    def hand_over_notice(self, project_id: int, key: str) -> None:
        """The step telling the notice gave up: it is no longer in flight, the watcher
        delivers it (a notice no longer kept is left alone)."""
        ...

    def list_notices(self, project_id: int, limit: int = 100) -> list[Notice]:
        """The project's undelivered notices, oldest first."""
        ...

    def delete_notice(self, project_id: int, key: str) -> None: ...


class GitLabGateway(Protocol):
    """The GitLab calls the core needs; ``merge_assist.adapters.gitlab_gateway`` makes them
    with python-gitlab."""

    def current_user_id(self) -> int: ...

    def find_project(self, ref: int | str) -> ProjectRef:
        """By numeric id or ``group/path``; ``NotFoundError`` if the bot cannot see it."""
        ...

    def open_merge_requests(
        self, project_id: int, *, assignee_id: int | None = None, labels: list[str] | None = None
    ) -> list[MergeRequestSnapshot]: ...

    def merge_request(self, project_id: int, iid: int) -> MergeRequestSnapshot: ...

    def merge_requests(
        self, project_id: int, iids: Sequence[int]
    ) -> dict[int, MergeRequestSnapshot]:
        """Several MRs in one call, by iid; ``NotFoundError`` if one of them is not found."""
        ...

    def ensure_hook(self, project_id: int, url: str, token: str) -> int:
        """Create the project hook for ``url`` or bring the existing one up to date; returns
        its id. Calling it again changes nothing."""
        ...

    def remove_hook(self, project_id: int, url: str) -> bool: ...

    def merge_request_facts(self, project_id: int, iid: int) -> MergeRequestFacts:
        """What ``readiness`` judges: the MR (with its head pipeline's status) and whether
        it is approved as the project requires."""
        ...

    def apply_transition(
        self,
        project_id: int,
        iid: int,
        transition: Transition,
        *,
        key: str,
        may_exist: bool = False,
    ) -> None:
        """Post the transition's comment as a note marked with ``key``, then add and remove
        its labels in one update; labels it does not name are left as they are. A note
        whose post may have reached GitLab unanswered (a timeout, a 5xx) is looked for by
        its marker before it is posted again, as it is first when ``may_exist``.
        ``GitLabUnavailable`` if GitLab still does not answer after retries."""
        ...

    def rebase(self, project_id: int, iid: int, skip_ci: bool) -> None:
        """Start GitLab's rebase of the MR's source branch onto its target; it finishes
        later (see ``rebase_status``). ``ConflictError`` if a rebase is already running,
        ``GitLabRefused`` (403) if the bot may not push to the source branch."""
        ...

    def rebase_status(self, project_id: int, iid: int) -> tuple[bool, str | None]:
        """``(rebase_in_progress, merge_error)``: done when the first is False; the second
        says why the last rebase failed (a conflict), else None."""
        ...

    def merge(
        self,
        project_id: int,
        iid: int,
        sha: str,
        *,
        squash: bool | None = None,
        message: str | None = None,
    ) -> str:
        """Merge only if the MR's head is still ``sha``; returns the target branch's new
        head (the merge commit, or for fast-forward the squash commit or ``sha``).
        ``ConflictError`` if the head moved, ``NotMergeableError`` if GitLab refuses (closed,
        draft, a merge check, a conflict, a needed rebase) with GitLab's reason."""
        ...

    def pipeline(self, project_id: int, pipeline_id: int) -> PipelineSnapshot: ...

    def pipelines_for_sha(
        self, project_id: int, sha: str, ref: str | None = None
    ) -> list[PipelineSnapshot]:
        """Every pipeline of ``sha`` (on ``ref`` if given), newest first."""
        ...

    def create_pipeline(self, project_id: int, ref: str) -> PipelineSnapshot:
        """Run the project's CI for the head of ``ref`` (a branch)."""
        ...

    def cancel_pipeline(self, project_id: int, pipeline_id: int) -> None:
        """Stop a pipeline nobody waits for any more (a train car cancelled behind a red
        one); a pipeline that already finished stays as it is."""
        ...

    def ensure_merge_request(
        self,
        project_id: int,
        source_branch: str,
        target_branch: str,
        *,
        title: str,
        description: str,
        labels: list[str],
    ) -> int:
        """The open MR from ``source_branch`` into ``target_branch``, created if missing and
        brought to this title, description and exact label set otherwise; its iid. Calling
        it again changes nothing."""
        ...

    def close_merge_request(self, project_id: int, iid: int) -> None:
        """Close the MR; closing a closed one changes nothing."""
        ...

    def branch_sha(self, project_id: int, branch: str) -> str | None:
        """The branch's head commit; None if there is no such branch."""
        ...

    def project_merge_method(self, project_id: int) -> str:
        """``merge``, ``rebase_merge`` or ``ff``, as set on the project."""
        ...

    def project_http_url(self, project_id: int) -> str:
        """The repository's clone URL over HTTP(S) (``http_url_to_repo``)."""
        ...


class Repository(Protocol):
    """A project's git repository, worked on locally and pushed back
    (``merge_assist.adapters.git_engine`` does it with dulwich). Push failures raise
    ``RemoteMoved`` (the branch was not where expected) or ``PushRejected``."""

    def fetch(self, refs: Sequence[str]) -> dict[str, str]:
        """Fetch these full ref names; their shas. ``RefNotFound`` if one is missing."""
        ...

    def build_batch(
        self,
        target_sha: str,
        members: Sequence[BatchMember],
        *,
        method: MergeMethod,
        identity: GitIdentity,
        target_branch: str,
        when: datetime | None = None,
    ) -> BatchBuild: ...

    def push(
        self,
        branch: str,
        sha: str,
        *,
        expected_old_sha: str | None,
        force: bool,
        skip_pipeline: bool = False,
    ) -> None:
        """Move the remote ``branch`` to ``sha``; a compare-and-set when ``expected_old_sha``
        is given; pushing where the branch already is succeeds. ``skip_pipeline``: GitLab
        starts no pipeline for the push (the ``ci.skip`` push option)."""
        ...

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether ``ancestor`` is in the history of ``descendant`` (both fetched)."""
        ...

    def same_tree(self, first: str, second: str) -> bool:
        """Whether two fetched commits hold exactly the same tree."""
        ...


class Executions(Protocol):
    """Step Functions executions of the merge workflow."""

    def start(self, name: str, execution_input: dict[str, Any]) -> bool:
        """Start the merge workflow under this name. True if it now runs (started now, or
        already running under that name); False if an execution of that name has ended,
        so the name cannot run again."""
        ...

    def resume(self, task_token: str, output: dict[str, Any]) -> bool:
        """Complete a waiting task; False if the wait is already over (timed out, or the
        execution ended), which is not an error for the caller."""
        ...
