"""The queue's records: a merge request's place in its queue, a batch and its steps, the
branch lock and the outbox. These are what the store persists and what the API shows."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from merge_assist.platform.clock import utc_now
from merge_assist.platform.config import BranchName, Landing, Strategy
from merge_assist.queue.batch_plan import BatchBuild, Bisection, MergeMethod

Priority = Annotated[int, Field(ge=-1000, le=1000)]


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


class BatchSizing(BaseModel):
    """How ``batch_size: auto`` sized a batch: the size, and the per-MR failure rate it was
    chosen for, estimated from the first pipelines of ``batches`` recent batches."""

    size: int = Field(ge=1)
    failure_rate: float = Field(ge=0, le=1)
    batches: int = Field(ge=0)


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
    # Taken from the project when the batch starts, as ``landing`` is: a retried landing
    # pushes as the first try did.
    skip_target_pipeline: bool = False
    # Set when the project sizes batches automatically.
    sizing: BatchSizing | None = None
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
    # With the train strategy: the car this batch was built on, whose tested commit is its
    # base (``target_sha``); None when it was built on the target branch's head.
    ahead_id: str | None = None
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

    @property
    def under_test(self) -> list[str]:
        """Every commit whose pipeline the run still waits for: the awaited one, and while a
        bisection round goes on, the round's other prefixes, tested at once."""
        shas = [self.testing_sha] if self.testing_sha is not None else []
        if self.bisection is not None and self.build is not None:
            for length in self.bisection.pending:
                sha = self.build.prefix_sha(length)
                if sha not in shas:
                    shas.append(sha)
        return shas

    def prefix_ref(self, length: int) -> str:
        """The branch whose pipeline tests the prefix of ``length``: the test branch, but
        each other prefix of a bisection round on a branch of its own beside it, since a
        branch runs one pipeline at a time (GitLab cancels redundant ones)."""
        assert self.test_ref is not None
        cuts = self.bisection.round if self.bisection is not None else ()
        way = cuts.index(length) if length in cuts else 0
        return self.test_ref if way == 0 else f"{self.test_ref}-bisect-{way}"


class BranchLock(BaseModel):
    """Held by the batches that run for a project's target branch: one, or with the train
    strategy the train's cars, in order (``cars``; the first is the head car, the one that
    lands next)."""

    project_id: int = Field(gt=0)
    target_branch: BranchName
    cars: list[str] = Field(min_length=1, max_length=8)
    acquired_at: datetime
    expires_at: datetime
    # Every change is a conditional write on the version read.
    version: int = Field(default=0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _one_car(cls, data: object) -> object:
        # A lock written before trains names its one batch.
        if isinstance(data, dict) and "cars" not in data and "batch_id" in data:
            return {**data, "cars": [data["batch_id"]]}
        return data

    @property
    def batch_id(self) -> str:
        """The head car: the batch that lands next."""
        return self.cars[0]

    def holds(self, batch_id: str) -> bool:
        return batch_id in self.cars

    def behind(self, batch_id: str) -> list[str]:
        """The cars after ``batch_id``: built on it, directly or not."""
        if batch_id not in self.cars:
            return []
        return self.cars[self.cars.index(batch_id) + 1 :]

    def ahead(self, batch_id: str) -> str | None:
        """The car ``batch_id`` is built on; None for the head car."""
        if batch_id not in self.cars:
            return None
        place = self.cars.index(batch_id)
        return self.cars[place - 1] if place else None


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
    # Being told right now, by the step that made the change: the watcher leaves it alone
    # until then, or it would post it a second time before the first post lands.
    in_flight_until: datetime | None = None
    created_at: datetime = Field(default_factory=utc_now)
