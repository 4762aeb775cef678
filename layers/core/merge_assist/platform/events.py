"""The normalized event: what the webhook receiver (and the watcher) put on a project's
queue. Small and self-contained: a GitLab payload can reach 25 MB, an SQS message 256 KiB."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from merge_assist.platform.clock import utc_now

NOTE_EXCERPT_CHARS = 4000


class EventKind(StrEnum):
    MERGE_REQUEST = "merge_request"
    NOTE = "note"
    PIPELINE = "pipeline"
    PUSH = "push"
    JOB = "job"
    RECONCILE = "reconcile"


class MergeRequestSnapshot(BaseModel):
    """An MR as the event saw it."""

    model_config = ConfigDict(frozen=True)

    iid: int
    title: str = ""
    state: str | None = None
    sha: str | None = None
    source_branch: str | None = None
    target_branch: str | None = None
    draft: bool = False
    labels: list[str] = Field(default_factory=list)
    assignee_ids: list[int] = Field(default_factory=list)
    reviewer_ids: list[int] = Field(default_factory=list)
    detailed_merge_status: str | None = None
    merge_status: str | None = None
    blocking_discussions_resolved: bool | None = None
    head_pipeline_id: int | None = None
    web_url: str | None = None
    action: str | None = None
    # The attributes an update changed (the keys of the hook's ``changes``).
    changed: tuple[str, ...] = ()


class PipelineSnapshot(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    sha: str
    ref: str | None = None
    status: str
    source: str | None = None
    web_url: str | None = None


class NoteSnapshot(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    body: str = Field(max_length=NOTE_EXCERPT_CHARS)
    system: bool = False


class PushSnapshot(BaseModel):
    model_config = ConfigDict(frozen=True)

    branch: str
    before: str | None = None
    after: str | None = None


class JobSnapshot(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    name: str | None = None
    stage: str | None = None
    status: str
    pipeline_id: int | None = None
    sha: str | None = None
    ref: str | None = None
    allow_failure: bool = False


class QueueEvent(BaseModel):
    """One event for the dispatcher, keyed for idempotency end to end."""

    kind: EventKind
    idempotency_key: str = Field(min_length=1, max_length=128)
    project_id: int = Field(gt=0)
    target_branch: str | None = None
    merge_request: MergeRequestSnapshot | None = None
    pipeline: PipelineSnapshot | None = None
    note: NoteSnapshot | None = None
    push: PushSnapshot | None = None
    job: JobSnapshot | None = None
    actor: str | None = None
    actor_id: int | None = None
    received_at: datetime = Field(default_factory=utc_now)

    @property
    def mr_iid(self) -> int | None:
        return self.merge_request.iid if self.merge_request else None

    @property
    def message_group_id(self) -> str:
        """The FIFO group the event is handled in: in order with the rest of its group, in
        parallel with other groups. One group per branch the work happens on: an MR's
        events go with its source branch, and so do that branch's pipelines, so an MR's
        readiness and the end of its own pipeline are judged in the order they happened
        (in groups of their own, the MR could be judged on a running pipeline while the
        finished one found it not yet recorded, and wait for the watcher). A batch's
        pipeline runs on the batch branch, never behind other MRs' events; pushes and the
        target's own pipelines go with the target. Nothing needs an order across
        branches: the dispatcher judges an MR on GitLab's current view, and racing writes
        are conditional."""
        branch = self._work_branch()
        if branch is not None:
            return fifo_token(f"{self.project_id}:branch:{branch}")
        if self.merge_request is not None:
            return fifo_token(f"{self.project_id}:mr:{self.merge_request.iid}")
        return fifo_token(f"{self.project_id}:{self.target_branch or '*'}")

    def _work_branch(self) -> str | None:
        if self.merge_request is not None:
            return self.merge_request.source_branch
        if self.pipeline is not None:
            return self.pipeline.ref
        if self.job is not None:
            return self.job.ref
        if self.push is not None:
            return self.push.branch
        return None


# SQS accepts 1..128 characters of ASCII letters, digits and punctuation in group and
# deduplication ids; a branch name may hold anything git allows.
_FIFO_SAFE = re.compile(r"^[!-~]{1,128}$")


def fifo_token(value: str) -> str:
    if _FIFO_SAFE.match(value):
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()
