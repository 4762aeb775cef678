"""A connected project's configuration: how its queues run, changeable at run time and read
at the start of each batch, and what GitLab's hook for it is configured with."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

from merge_assist.platform.clock import utc_now

BranchName = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\s~^:?*\[\\]+$")]
AUTO = "auto"
MAX_BATCH_SIZE = 50
DEFAULT_BATCH_SIZE = 5
# A batch size: a number of MRs, or ``auto`` (sized from the failure rate seen lately).
BatchSize = Annotated[int, Field(ge=1, le=MAX_BATCH_SIZE)] | Literal["auto"]


class Strategy(StrEnum):
    """How a queue is drained: one MR at a time, or several tested together."""

    SERIAL = "serial"
    BATCH = "batch"
    TRAIN = "train"

    @property
    def builds_batches(self) -> bool:
        """Batch and train both build a batch commit on a branch of their own."""
        return self is not Strategy.SERIAL


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


def _unique_branches(branches: list[str]) -> list[str]:
    if len(set(branches)) != len(branches):
        raise ValueError("target branches must be unique")
    return branches


# A validator in the type rather than on the model, so a value can be checked for this field
# alone (the API's change, the CLI's flag) by the same rule.
TargetBranches = Annotated[list[BranchName], AfterValidator(_unique_branches)]

# Every field of ProjectConfig but these is a setting: changeable at run time through the
# API, the dashboard and the CLI, which derive their fields and flags from its declaration.
# These are the project's identity and the store's bookkeeping.
FIXED_FIELDS = frozenset({"project_id", "path", "version", "updated_at"})


class ProjectConfig(BaseModel):
    """A connected GitLab project; changeable at run time, read at the start of each batch."""

    # Each setting's bounds and description (its help text in the API's schema, the
    # dashboard's types and the CLI's --help) are declared here and nowhere else.
    model_config = ConfigDict(validate_assignment=True)

    project_id: int = Field(gt=0)
    path: str | None = Field(default=None, max_length=512)
    target_branches: TargetBranches = Field(
        default_factory=lambda: ["main"],
        min_length=1,
        max_length=20,
        description="The branches MRs are merged into; each has a queue of its own.",
    )
    strategy: Strategy = Field(
        default=Strategy.BATCH,
        description="serial: one MR at a time, rebased and merged by GitLab; "
        "batch: several MRs tested together in one pipeline; train: batches as cars, each "
        "built and tested on the tested commit of the car ahead while that one's pipeline "
        "runs.",
    )
    train_depth: int = Field(
        default=2,
        ge=1,
        le=8,
        description="With the train strategy: how many batches are tested at once, each on "
        "top of the one ahead.",
    )
    batch_size: BatchSize = Field(
        default=DEFAULT_BATCH_SIZE,
        description="How many MRs a batch tests together (with the batch strategy), from 1 "
        "to 50; or auto: each batch is sized for the failure rate of the branch's recent "
        "batches (fewer pipelines per MR when MRs fail often), up to batch_size_max.",
    )
    batch_size_max: int = Field(
        default=8,
        ge=2,
        le=MAX_BATCH_SIZE,
        description="The largest batch that batch_size auto picks.",
    )
    landing: Landing = Field(
        default=Landing.PUSH,
        description="How a green batch reaches its target branch. push: fast-forwarded to "
        "the tested commit; merge-each: each MR merged through GitLab's merge API.",
    )
    skip_target_pipeline: bool = Field(
        default=False,
        description="With push landing: the push that lands a tested batch carries GitLab's "
        "ci.skip push option, so the target branch runs no second pipeline for a tree that "
        "already passed. Leave it off if you deploy from the target branch's pipeline.",
    )
    ci_timeout_minutes: int = Field(
        default=60,
        ge=1,
        le=24 * 60,
        description="Minutes a pipeline may take before its batch counts as failed.",
    )
    flaky_retries: int = Field(
        default=0,
        ge=0,
        le=3,
        description="How many times the MR a failed batch isolates is tested again "
        "before it is rejected.",
    )
    bisect_ways: int = Field(
        default=3,
        ge=2,
        le=8,
        description="How many parts each bisection round of a failed batch cuts the MRs "
        "under suspicion into; the prefix ending at each cut is tested at once. 2 is binary "
        "search: one pipeline a round, more rounds.",
    )
    labels: QueueLabels = Field(
        default_factory=QueueLabels,
        description="The names of the GitLab labels that mark each step of an MR.",
    )
    trigger_label: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="MRs carrying this label are queued too; MRs assigned to the bot always are.",
    )
    paused: bool = Field(
        default=False,
        description="A paused project starts no batch; its MRs wait in their queues.",
    )
    version: int = Field(default=0, ge=0)
    updated_at: datetime = Field(default_factory=utc_now)

    @classmethod
    def changeable_fields(cls) -> dict[str, FieldInfo]:
        """The settings, in the order they are declared: every field but ``FIXED_FIELDS``."""
        return {name: info for name, info in cls.model_fields.items() if name not in FIXED_FIELDS}

    @property
    def sized_automatically(self) -> bool:
        return self.strategy.builds_batches and self.batch_size == AUTO


def constrained_type(field: FieldInfo) -> Any:
    """``field``'s type with its bounds and validators attached, as a model field or a
    ``TypeAdapter`` that checks a value for that field alone enforces them."""
    if not field.metadata:
        return field.annotation
    return Annotated[(field.annotation, *field.metadata)]
