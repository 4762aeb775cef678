"""What the API accepts and answers, beyond the domain's own records."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from merge_assist.audit.models import AuditEntry
from merge_assist.platform.access import ProjectRole, Role
from merge_assist.platform.config import ProjectConfig, constrained_type
from merge_assist.queue.models import MergeRequestState, Priority, StatusCategory

ProjectId = Annotated[int, Field(gt=0, le=2**53)]
Iid = Annotated[int, Field(gt=0, le=2**53)]


class Problem(BaseModel):
    message: str


class ConfigChangeBase(BaseModel):
    """Only the fields given change; the result is validated as a whole."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("name at least one setting to change")
        return self


def change_model(config: type[ProjectConfig] = ProjectConfig) -> type[ConfigChangeBase]:
    """The API's change of ``config``'s settings: each one an optional field (default None)
    with its bounds, validators and description, so a setting declared in the config is
    accepted by the API and shown in its schema without being declared again."""
    fields: dict[str, Any] = {
        name: (
            constrained_type(field) | None,
            Field(default=None, description=field.description),
        )
        for name, field in config.changeable_fields().items()
    }
    return create_model(
        "ConfigChange",
        __base__=ConfigChangeBase,
        __doc__=ConfigChangeBase.__doc__,
        __module__=__name__,
        **fields,
    )


if TYPE_CHECKING:
    # A model built at run time is no type to the checker; callers use only the base's API.
    ConfigChange = ConfigChangeBase
else:
    ConfigChange = change_model()


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
    # The batch running for each target branch, if any: the head car of a train.
    running_batches: dict[str, str]
    # Every batch running for each target branch, in train order (one unless the
    # strategy is train): the cars, the head car first.
    running_cars: dict[str, list[str]]


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
