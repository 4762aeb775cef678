"""A connected project's configuration: how its queues run, changeable at run time and read
at the start of each batch, and what GitLab's hook for it is configured with."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from merge_assist.platform.clock import utc_now

BranchName = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\s~^:?*\[\\]+$")]


class Strategy(StrEnum):
    """How a queue is drained: one MR at a time, or several tested together."""

    SERIAL = "serial"
    BATCH = "batch"


class Landing(StrEnum):
    """How a green batch reaches the target branch (see DESIGN.md, "Landing a green batch")."""

    PUSH = "push"
    MERGE_EACH = "merge-each"


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
