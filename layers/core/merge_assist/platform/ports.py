"""The interfaces the core speaks to. Adapters implement them; tests may fake them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from merge_assist.platform.events import MergeRequestSnapshot, PipelineSnapshot
from merge_assist.platform.metrics import Metric
from merge_assist.platform.models import (
    AuditEntry,
    Batch,
    BranchLock,
    Grant,
    MergeRequestState,
    Notice,
    ProjectConfig,
    ProjectRef,
    StatusCategory,
    WebhookSecret,
)
from merge_assist.queue.batch_plan import BatchBuild, BatchMember, GitIdentity, MergeMethod
from merge_assist.queue.comments import Transition
from merge_assist.queue.readiness import MergeRequestFacts


class Meter(Protocol):
    """Where the core counts and measures what it does (``merge_assist.platform.metrics``); the
    functions flush it as CloudWatch metrics."""

    def record(self, metric: Metric, value: float = 1, **dimensions: str) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class Store(Protocol):
    """Durable state. Every ``save_*`` is a compare-and-set on the item's ``version``:
    version 0 means "must not exist yet"; the stored copy comes back with version + 1.
    A lost race raises ``ConflictError``; a missing item ``NotFoundError``."""

    def get_project(self, project_id: int) -> ProjectConfig: ...

    def list_projects(self) -> list[ProjectConfig]: ...

    def save_project(self, config: ProjectConfig) -> ProjectConfig: ...

    def delete_project(self, project_id: int) -> None: ...

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
        self, project_id: int, target_branch: str, batch_id: str, ttl: timedelta
    ) -> BranchLock:
        """Take the lock, or take over one that expired; ``LockHeldError`` if another batch
        holds it. Taking it again for the same batch renews it (a retried step is harmless)."""
        ...

    def release_branch_lock(self, project_id: int, target_branch: str, batch_id: str) -> None:
        """Release only if ``batch_id`` holds it; releasing a lock not held is a no-op."""
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

    def save_grant(self, grant: Grant) -> Grant:
        """Creates or replaces the user's grant on the project."""
        ...

    def delete_grant(self, username: str, project_id: int) -> bool:
        """False if there was none."""
        ...

    def grants_of_user(self, username: str) -> list[Grant]: ...

    def list_grants(self, project_id: int | None = None) -> list[Grant]:
        """Every grant, or a project's; by project, then username."""
        ...

    def append_audit(self, entry: AuditEntry) -> bool:
        """Adds the entry unless one with its id is there already (then False)."""
        ...

    def list_audit(
        self,
        project_id: int,
        *,
        limit: int,
        cursor: str | None = None,
        merge_request: int | None = None,
    ) -> tuple[list[AuditEntry], str | None]:
        """Newest first, only one merge request's when ``merge_request`` is given; the
        cursor to pass for the next (older) page, None at the end. ``ValueError`` for a
        cursor this store did not hand out."""
        ...

    def put_notice(self, notice: Notice) -> None:
        """Keep the notice until it is delivered (a second put of its key changes
        nothing); notices expire after a day, when what they say is stale."""
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


class ProjectInfrastructure(Protocol):
    """The AWS resources each connected project has: webhook secret, FIFO queue with its
    dead-letter queue, the event source mapping that feeds the dispatcher, and the queues'
    alarms. Every
    ``ensure_*`` creates what is missing and otherwise changes nothing."""

    def ensure_webhook_secret(self, project_id: int) -> WebhookSecret: ...

    def ensure_queues(self, project_id: int) -> str:
        """Returns the project queue's ARN."""
        ...

    def ensure_event_source(self, queue_arn: str) -> None: ...

    def ensure_alarms(self, project_id: int) -> None:
        """The project queues' alarms: a message in its dead-letter queue, an event waiting
        too long in its queue."""
        ...

    def remove(self, project_id: int) -> None:
        """Removes whatever of the above exists."""
        ...


class WebhookSecrets(Protocol):
    """Each connected project's stored webhook secret, as rotating it reads and writes it."""

    def read_webhook_secret(self, project_id: int) -> WebhookSecret:
        """``NotFoundError`` if the project has none (it is not connected)."""
        ...

    def write_webhook_secret(self, project_id: int, secret: WebhookSecret) -> None:
        """Replaces the stored secret; ``NotFoundError`` if there is none."""
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

    def push(self, branch: str, sha: str, *, expected_old_sha: str | None, force: bool) -> None:
        """Move the remote ``branch`` to ``sha``; a compare-and-set when ``expected_old_sha``
        is given; pushing where the branch already is succeeds."""
        ...

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether ``ancestor`` is in the history of ``descendant`` (both fetched)."""
        ...

    def same_tree(self, first: str, second: str) -> bool:
        """Whether two fetched commits hold exactly the same tree."""
        ...


class QueueDepth(Protocol):
    messages: int
    in_flight: int
    dead_letters: int


class Operations(Protocol):
    """What the health page shows of the AWS side of each project."""

    def queue_depth(self, project_id: int) -> QueueDepth:
        """``NotFoundError`` if the project's queues do not exist."""
        ...

    def executions(self, project_id: int, since: datetime) -> dict[str, int]:
        """The project's merge workflow executions by status (``RUNNING``, ``FAILED``,
        ``TIMED_OUT``, ``ABORTED``): every running one, the others started since ``since``."""
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
