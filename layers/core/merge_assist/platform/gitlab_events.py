"""GitLab webhook payloads, as GitLab sends them.

Only the fields Merge Assist reads are declared; everything else is accepted and ignored,
and every field GitLab has added over the years is optional, so payloads from old and new
GitLab versions both parse (``draft`` replaced ``work_in_progress`` in 13.x;
``detailed_merge_status`` and ``event_type`` are newer still; timestamps changed format).
Shapes: GitLab's "Webhook events" documentation.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class User(_Payload):
    id: int | None = None
    username: str | None = None
    name: str | None = None


class Project(_Payload):
    id: int
    path_with_namespace: str | None = None
    web_url: str | None = None
    default_branch: str | None = None


class Label(_Payload):
    title: str


class LastCommit(_Payload):
    id: str


class MergeRequestAttributes(_Payload):
    """``object_attributes`` of a Merge Request Hook, and the ``merge_request`` of note and
    pipeline hooks (which carry fewer fields)."""

    iid: int
    id: int | None = None
    title: str = ""
    state: str | None = None
    source_branch: str | None = None
    target_branch: str | None = None
    source_project_id: int | None = None
    target_project_id: int | None = None
    draft: bool | None = None
    work_in_progress: bool | None = None
    merge_status: str | None = None
    detailed_merge_status: str | None = None
    blocking_discussions_resolved: bool | None = None
    head_pipeline_id: int | None = None
    assignee_ids: list[int] = Field(default_factory=list)
    assignee_id: int | None = None
    reviewer_ids: list[int] = Field(default_factory=list)
    url: str | None = None
    action: str | None = None
    oldrev: str | None = None
    last_commit: LastCommit | None = None
    updated_at: str | None = None

    @field_validator("assignee_ids", "reviewer_ids", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def is_draft(self) -> bool:
        return bool(self.draft if self.draft is not None else self.work_in_progress)

    @property
    def sha(self) -> str | None:
        return self.last_commit.id if self.last_commit else None

    @property
    def all_assignee_ids(self) -> list[int]:
        if self.assignee_ids:
            return self.assignee_ids
        return [self.assignee_id] if self.assignee_id else []


class MergeRequestHook(_Payload):
    object_kind: Literal["merge_request"]
    user: User | None = None
    project: Project
    object_attributes: MergeRequestAttributes
    labels: list[Label] = Field(default_factory=list)
    assignees: list[User] = Field(default_factory=list)
    changes: dict[str, Any] = Field(default_factory=dict)

    @property
    def assignee_ids(self) -> list[int]:
        """GitLab before 12.x sent only ``assignee_id``; the top-level ``assignees`` list
        is the fullest answer when present."""
        listed = [user.id for user in self.assignees if user.id is not None]
        return listed or self.object_attributes.all_assignee_ids


class NoteAttributes(_Payload):
    id: int
    note: str = ""
    noteable_type: str
    system: bool | None = None
    url: str | None = None


class NoteHook(_Payload):
    object_kind: Literal["note"]
    user: User | None = None
    project: Project
    object_attributes: NoteAttributes
    merge_request: MergeRequestAttributes | None = None


class PipelineAttributes(_Payload):
    id: int
    ref: str | None = None
    tag: bool | None = None
    sha: str
    before_sha: str | None = None
    source: str | None = None
    status: str
    detailed_status: str | None = None
    url: str | None = None
    finished_at: str | None = None
    duration: float | None = None


class PipelineMergeRequest(_Payload):
    iid: int
    target_branch: str | None = None
    source_branch: str | None = None
    url: str | None = None


class PipelineHook(_Payload):
    object_kind: Literal["pipeline"]
    user: User | None = None
    project: Project
    object_attributes: PipelineAttributes
    merge_request: PipelineMergeRequest | None = None


class PushHook(_Payload):
    object_kind: Literal["push", "tag_push"]
    ref: str
    before: str | None = None
    after: str | None = None
    checkout_sha: str | None = None
    user_id: int | None = None
    user_username: str | None = None
    project_id: int | None = None
    project: Project
    total_commits_count: int | None = None


class JobHook(_Payload):
    object_kind: Literal["build"]
    ref: str | None = None
    tag: bool | None = None
    sha: str | None = None
    build_id: int
    build_name: str | None = None
    build_stage: str | None = None
    build_status: str
    build_allow_failure: bool | None = None
    pipeline_id: int | None = None
    project_id: int
    user: User | None = None


GitLabHook = MergeRequestHook | NoteHook | PipelineHook | PushHook | JobHook


class _Envelope(BaseModel):
    hook: Annotated[GitLabHook, Field(discriminator="object_kind")]


def parse_hook(
    payload: dict[str, Any],
) -> MergeRequestHook | NoteHook | PipelineHook | PushHook | JobHook:
    """Raise ``pydantic.ValidationError`` for anything that is not one of the five hooks."""
    return _Envelope.model_validate({"hook": payload}).hook


# X-Gitlab-Event header → the object_kind its body must carry.
EVENT_HEADERS: dict[str, str] = {
    "Merge Request Hook": "merge_request",
    "Note Hook": "note",
    "Pipeline Hook": "pipeline",
    "Push Hook": "push",
    "Tag Push Hook": "tag_push",
    "Job Hook": "build",
}
