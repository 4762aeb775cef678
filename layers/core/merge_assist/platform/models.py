"""The domain's typed records: a project's configuration, a merge request's place in the
queue, and a batch. These are what the store persists and what the API shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from merge_assist.queue.batch_plan import BatchBuild, Bisection, MergeMethod

BranchName = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\s~^:?*\[\\]+$")]
Priority = Annotated[int, Field(ge=-1000, le=1000)]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Strategy(StrEnum):
    """How a queue is drained: one MR at a time, or several tested together."""

    SERIAL = "serial"
    BATCH = "batch"


class Landing(StrEnum):
    """How a green batch reaches the target branch (see DESIGN.md, "Landing a green batch")."""

    PUSH = "push"
    MERGE_EACH = "merge-each"


class StatusCategory(StrEnum):
    NOT_READY = "not_ready"
    QUEUED = "queued"
    BATCHING = "batching"
    TESTING = "testing"
    MERGED = "merged"
    REJECTED = "rejected"

    @property
    def is_final(self) -> bool:
        return self in (StatusCategory.MERGED, StatusCategory.REJECTED)


class ReasonCode(StrEnum):
    """Why an MR is not ready, or why it was rejected."""

    DRAFT = "draft"
    NOT_ASSIGNED = "not_assigned"
    PIPELINE = "pipeline"
    APPROVALS = "approvals"
    DISCUSSIONS = "discussions"
    CONFLICTS = "conflicts"
    CLOSED = "closed"
    CI_FAILED = "ci_failed"
    CI_TIMEOUT = "ci_timeout"
    TARGET_BRANCH = "target_branch"
    TOO_MANY_STRIKES = "too_many_strikes"
    CHANGED = "changed"
    PIPELINE_SKIPPED = "pipeline_skipped"


class Reason(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: ReasonCode
    message: str = Field(max_length=2000)


class QueueLabels(BaseModel):
    """The GitLab labels that mark each transition; names are configurable per project."""

    model_config = ConfigDict(frozen=True)

    recognised: str = "Merge Assist: Recognised for Merge"
    not_ready: str = "Merge Assist: Not Ready"
    rejected: str = "Merge Assist: Rejected"
    ready_to_merge: str = "Merge Assist: Ready to Merge"
    batch_merge_request: str = "Merge Assist: Batch Merge Request"


class WebhookSecret(BaseModel):
    """What GitLab's hook for a project is configured with. After a rotation the token it
    replaced stays acceptable until ``previous_valid_until``: receivers that cached the old
    secret, and deliveries GitLab sent before its hook was updated, are not refused."""

    secret_token: str = Field(min_length=16)
    signing_token: str | None = None
    previous_secret_token: str | None = None
    previous_valid_until: datetime | None = None

    def previous_accepted(self, now: datetime) -> bool:
        return bool(
            self.previous_secret_token
            and self.previous_valid_until is not None
            and now < self.previous_valid_until
        )

    def rotated(self, new_token: str, *, now: datetime, grace: timedelta) -> WebhookSecret:
        """``new_token`` becomes the token; the current one is accepted for ``grace`` more."""
        return WebhookSecret(
            secret_token=new_token,
            signing_token=self.signing_token,
            previous_secret_token=self.secret_token,
            previous_valid_until=now + grace,
        )

    def __repr__(self) -> str:  # never print a token by accident
        return "WebhookSecret(***)"

    __str__ = __repr__


class ProjectRef(BaseModel):
    """A GitLab project as GitLab names it."""

    model_config = ConfigDict(frozen=True)

    id: int = Field(gt=0)
    path_with_namespace: str
    web_url: str = ""


class ProjectConfig(BaseModel):
    """A connected GitLab project; changeable at run time, read at the start of each batch."""

    model_config = ConfigDict(validate_assignment=True)

    project_id: int = Field(gt=0)
    path: str | None = Field(default=None, max_length=512)
    target_branches: list[BranchName] = Field(default_factory=lambda: ["main"], min_length=1)
    strategy: Strategy = Strategy.BATCH
    batch_size: int = Field(default=5, ge=1, le=50)
    landing: Landing = Landing.PUSH
    ci_timeout_minutes: int = Field(default=60, ge=1, le=24 * 60)
    flaky_retries: int = Field(default=0, ge=0, le=3)
    labels: QueueLabels = Field(default_factory=QueueLabels)
    # MRs assigned to the bot are queued; so are MRs carrying this label, when set.
    trigger_label: str | None = Field(default=None, min_length=1, max_length=255)
    paused: bool = False
    version: int = Field(default=0, ge=0)
    updated_at: datetime = Field(default_factory=utc_now)

    @field_validator("target_branches")
    @classmethod
    def _unique_branches(cls, branches: list[str]) -> list[str]:
        if len(set(branches)) != len(branches):
            raise ValueError("target branches must be unique")
        return branches

    @property
    def effective_batch_size(self) -> int:
        return 1 if self.strategy is Strategy.SERIAL else self.batch_size


class MergeRequestState(BaseModel):
    """Where one MR stands in its target branch's queue."""

    project_id: int = Field(gt=0)
    iid: int = Field(gt=0)
    sha: str = Field(min_length=7, max_length=64)
    source_branch: BranchName
    target_branch: BranchName
    title: str = ""
    web_url: str | None = None
    status: StatusCategory = StatusCategory.NOT_READY
    reasons: list[Reason] = Field(default_factory=list)
    priority: Priority = 0
    ready_since: datetime | None = None
    # Where it stands among queued MRs of equal priority when moved there by hand; else
    # ``ready_since`` orders it. Cleared whenever it leaves the line.
    placed_at: datetime | None = None
    # Taken before every other MR, alone, until it merges or the hotfix is withdrawn.
    hotfix: bool = False
    strikes: int = Field(default=0, ge=0)
    batch_id: str | None = None
    # The serial workflow asked GitLab to rebase it: its next new head is expected.
    rebasing: bool = False
    # What the queue last judged: the head it saw and whether the bot was assigned then.
    # Events record what GitLab says as it comes (``sha``, ``assignee_ids``); comparing
    # GitLab's view with these tells a push or a reassignment apart.
    judged_sha: str | None = None
    bot_assigned: bool = False
    # What GitLab last told us, by webhook or by the watcher.
    gitlab_state: str | None = None
    draft: bool = False
    labels: list[str] = Field(default_factory=list)
    assignee_ids: list[int] = Field(default_factory=list)
    last_event_kind: str | None = None
    last_event_key: str | None = None
    last_event_at: datetime | None = None
    version: int = Field(default=0, ge=0)
    updated_at: datetime = Field(default_factory=utc_now)

    @model_validator(mode="after")
    def _queued_needs_ready_since(self) -> Self:
        if self.status is StatusCategory.QUEUED and self.ready_since is None:
            raise ValueError("a queued merge request needs ready_since")
        return self


class BatchState(StrEnum):
    BUILDING = "building"
    TESTING = "testing"
    LANDING = "landing"
    LANDED = "landed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (BatchState.LANDED, BatchState.FAILED, BatchState.CANCELLED)


class BatchStepKind(StrEnum):
    """What happened to a batch, as the dashboard's batch view lists it."""

    SELECTED = "selected"
    BUILT = "built"
    REBASED = "rebased"
    TESTED = "tested"
    RETRIED = "retried"
    BISECTED = "bisected"
    REJECTED = "rejected"
    DROPPED = "dropped"
    REBUILT = "rebuilt"
    LANDED = "landed"
    RELEASED = "released"


class BatchStep(BaseModel):
    kind: BatchStepKind
    at: datetime = Field(default_factory=utc_now)
    sha: str | None = None
    merge_requests: list[int] = Field(default_factory=list)
    pipeline_id: int | None = None
    pipeline_url: str | None = None
    status: str | None = None
    note: str = Field(default="", max_length=2000)


class Batch(BaseModel):
    """A set of MRs tested together on one batch commit, and how far its run has got.

    ``build`` holds the batch commit and the commit after each MR, so a bisection step
    tests a prefix of it without building again; ``testing_sha`` is the commit whose
    pipeline the run waits for."""

    id: str = Field(min_length=1, max_length=128)
    project_id: int = Field(gt=0)
    target_branch: BranchName
    strategy: Strategy
    landing: Landing = Landing.PUSH
    merge_requests: list[int] = Field(min_length=1, max_length=50)
    dropped: list[int] = Field(default_factory=list)
    batch_branch: str | None = None
    # The branch whose pipeline tests ``testing_sha``: the batch branch, or for a serial
    # batch the MR's source branch.
    test_ref: str | None = None
    batch_merge_request: int | None = None
    target_sha: str | None = None
    sha: str | None = None
    build: BatchBuild | None = None
    merge_method: MergeMethod | None = None
    testing_sha: str | None = None
    tested_length: int | None = None
    bisection: Bisection | None = None
    retries_left: int = Field(default=0, ge=0)
    rebuilds: int = Field(default=0, ge=0)
    # MRs whose part of the batch passed and may land: a prefix of ``build.included``.
    land_length: int = Field(default=0, ge=0)
    landed: list[int] = Field(default_factory=list)
    rejected: list[int] = Field(default_factory=list)
    requeued: list[int] = Field(default_factory=list)
    # The pipeline now awaited reruns the last one (a flaky retry) ...
    retrying: bool = False
    # ... so an answer from a pipeline of ``testing_sha`` older than this one is stale.
    pipeline_floor: int | None = None
    pipeline_id: int | None = None
    pipeline_url: str | None = None
    # The pipeline of the shortest prefix seen failing (the culprit's evidence) and of the
    # longest seen passing (what lands).
    red_pipeline_url: str | None = None
    green_pipeline_url: str | None = None
    parent_id: str | None = None
    state: BatchState = BatchState.BUILDING
    execution_name: str | None = None
    steps: list[BatchStep] = Field(default_factory=list)
    version: int = Field(default=0, ge=0)
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)

    @field_validator("merge_requests")
    @classmethod
    def _unique_iids(cls, iids: list[int]) -> list[int]:
        if len(set(iids)) != len(iids):
            raise ValueError("a merge request appears twice in the batch")
        return iids

    @property
    def members(self) -> list[int]:
        """The MRs still in the batch, in merge order."""
        gone = {*self.dropped, *self.rejected, *self.requeued}
        return [iid for iid in self.merge_requests if iid not in gone]

    @property
    def order(self) -> list[int]:
        """The MRs in the order the tested commits hold them: the built batch's, or the one
        MR a serial batch tests."""
        if self.strategy is Strategy.SERIAL:
            return self.members[:1]
        return list(self.build.included_iids) if self.build is not None else self.members

    @property
    def tested(self) -> list[int]:
        """The MRs the awaited pipeline tests: a prefix of ``order``."""
        return self.order[: self.tested_length or 0]


class Role(StrEnum):
    """A dashboard user's role; the Cognito group of the same name grants it."""

    ADMIN = "admin"
    PROJECT_OWNER = "project_owner"
    PRIORITY_MANAGER = "priority_manager"
    VIEWER = "viewer"


# Cognito usernames: up to 128 characters without whitespace; "/", "#" and "%" are refused
# because they would be taken for parts of a path or a key.
Username = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\s/#%]+$")]
ProjectRole = Annotated[Role, Field(description="admin is a group, never a grant")]


class Grant(BaseModel):
    """What a user may be on one project: the roles among these that the user also holds as
    Cognito groups."""

    username: Username
    project_id: int = Field(gt=0)
    roles: list[ProjectRole] = Field(min_length=1, max_length=3)
    granted_by: str
    granted_at: datetime = Field(default_factory=utc_now)

    @field_validator("roles")
    @classmethod
    def _project_roles(cls, roles: list[Role]) -> list[Role]:
        if Role.ADMIN in roles:
            raise ValueError("admin is granted by the Cognito group, not per project")
        if len(set(roles)) != len(roles):
            raise ValueError("a role appears twice")
        return sorted(roles)


class AuditAction(StrEnum):
    """What an entry of a project's event log records."""

    PROJECT_CONNECTED = "project_connected"
    PROJECT_DISCONNECTED = "project_disconnected"
    CONFIG_CHANGED = "config_changed"
    PRIORITY_CHANGED = "priority_changed"
    HOTFIX = "hotfix"
    GRANT_CHANGED = "grant_changed"
    STATUS_CHANGED = "status_changed"
    BATCH_STEP = "batch_step"


# Who changed something: a dashboard user's username, or the queue itself.
QUEUE_ACTOR = "merge-assist"


class AuditEntry(BaseModel):
    """One line of a project's event log. ``id`` is derived from what caused it, so writing
    the same entry twice (a retried Lambda, a replayed stream record) stores it once."""

    project_id: int = Field(gt=0)
    id: str = Field(min_length=1, max_length=256)
    at: datetime
    action: AuditAction
    actor: str = Field(min_length=1, max_length=256)
    summary: str = Field(max_length=2000)
    merge_request: int | None = None
    batch_id: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class BranchLock(BaseModel):
    """Held by the one batch that runs for a project's target branch."""

    project_id: int = Field(gt=0)
    target_branch: BranchName
    batch_id: str
    acquired_at: datetime
    expires_at: datetime


class Notice(BaseModel):
    """A comment and label change owed to an MR that GitLab could not take when it was due
    (the outbox): kept until it is delivered, so a GitLab outage delays what authors are
    told but never blocks the queue nor loses the message. ``key`` names the state change
    it tells of, once, and is the hidden marker on the note."""

    project_id: int = Field(gt=0)
    iid: int = Field(gt=0)
    key: str = Field(min_length=1, max_length=120)
    comment: str
    add_label: str | None = None
    remove_labels: list[str] = Field(default_factory=list)
    # The MR's status when the notice was due: once the MR has moved on, what it says is
    # stale (a "back in line" after "merged") and it is dropped, not delivered.
    status: StatusCategory | None = None
    created_at: datetime = Field(default_factory=utc_now)
