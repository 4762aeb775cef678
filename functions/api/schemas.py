"""What the API accepts and answers, beyond the domain's own records."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from merge_assist.audit.models import AuditEntry
from merge_assist.platform.access import ProjectRole, Role
from merge_assist.platform.config import BranchName, Landing, ProjectConfig, QueueLabels, Strategy
from merge_assist.queue.models import MergeRequestState, Priority, StatusCategory

ProjectId = Annotated[int, Field(gt=0, le=2**53)]
Iid = Annotated[int, Field(gt=0, le=2**53)]


class Problem(BaseModel):
    message: str


class ConfigChange(BaseModel):
    """Only the fields given change; the result is validated as a whole."""

    model_config = ConfigDict(extra="forbid")

    target_branches: list[BranchName] | None = Field(default=None, min_length=1, max_length=20)
    strategy: Strategy | None = None
    batch_size: int | None = Field(default=None, ge=1, le=50)
    landing: Landing | None = None
    ci_timeout_minutes: int | None = Field(default=None, ge=1, le=24 * 60)
    flaky_retries: int | None = Field(default=None, ge=0, le=3)
    labels: QueueLabels | None = None
    trigger_label: str | None = Field(default=None, min_length=1, max_length=255)
    paused: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("name at least one setting to change")
        return self


class NewProject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: ProjectId | Annotated[str, Field(min_length=3, max_length=255, pattern=r"^\S+/\S+$")]
    settings: ConfigChange | None = None


class PriorityChange(BaseModel):
    """Exactly one of: a priority, or the MR to stand right before or right after."""

    model_config = ConfigDict(extra="forbid")

    priority: Priority | None = None
    before: Iid | None = None
    after: Iid | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [
            name for name in ("priority", "before", "after") if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError("give exactly one of priority, before and after")
        return self


class GrantRoles(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: list[ProjectRole] = Field(min_length=1, max_length=3)


class ProjectView(BaseModel):
    config: ProjectConfig
    # What the caller may do on it (their effective roles).
    roles: list[Role]
    counts: dict[StatusCategory, int]
    # The batch running for each target branch, if any.
    running_batches: dict[str, str]


class MergeRequestView(BaseModel):
    merge_request: MergeRequestState
    # 1-based place in its branch's queue, for queued MRs.
    position: int | None = None


class MergeRequestList(BaseModel):
    items: list[MergeRequestView]


class EventPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None = None


class Connected(BaseModel):
    config: ProjectConfig
    webhook_url: str
    hook_id: int
    created: bool


class Me(BaseModel):
    username: str
    groups: list[Role]
    # Project id → the caller's roles on it; admins see "*" for every project.
    projects: dict[str, list[Role]]


class QueueHealth(BaseModel):
    messages: int
    in_flight: int
    dead_letters: int


class ProjectHealth(BaseModel):
    project_id: int
    path: str | None
    paused: bool
    queue: QueueHealth | None
    executions: dict[str, int]
    problems: list[str]


class GitLabHealth(BaseModel):
    reachable: bool
    url: str
    error: str | None = None


class Health(BaseModel):
    status: str
    version: str
    checked_at: datetime
    store: str
    gitlab: GitLabHealth
    projects: list[ProjectHealth]
