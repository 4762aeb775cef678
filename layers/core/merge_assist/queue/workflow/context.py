"""What the workflow's steps work with, and what they hand the state machine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from merge_assist.platform.config import BranchName, ProjectConfig
from merge_assist.platform.metrics import NullMeter
from merge_assist.platform.ports import Clock, Meter
from merge_assist.platform.settings import PollIntervals
from merge_assist.queue.batch_plan import GitIdentity
from merge_assist.queue.ports import Executions, GitLabGateway, QueueStore, Repository


@dataclass(frozen=True)
class WorkflowContext:
    store: QueueStore
    gitlab: GitLabGateway
    executions: Executions
    clock: Clock
    identity: GitIdentity
    # The project's repository, fetched into a work directory the Lambda keeps while warm.
    repository: Callable[[ProjectConfig], Repository]
    meter: Meter = field(default_factory=NullMeter)


class WorkflowInput(PollIntervals):
    """An execution's input: its batch, and the poll intervals of the process that started
    it (the state machine reads them by these names)."""

    project_id: int = Field(gt=0)
    target_branch: BranchName
    batch_id: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_-]+$")
    failed: bool = False

    @property
    def polls(self) -> PollIntervals:
        return PollIntervals(
            pipeline_poll_seconds=self.pipeline_poll_seconds,
            rebase_poll_seconds=self.rebase_poll_seconds,
        )


class BatchRef(BaseModel):
    project_id: int = Field(gt=0)
    batch_id: str = Field(min_length=1, max_length=80)


class Next(StrEnum):
    """What the state machine does after a step (its ``AfterStep`` choice)."""

    TEST = "test"  # wait for the pipeline of ``sha``
    LAND = "land"
    REBUILD = "rebuild"  # build the batch again from the target's head
    REBASE = "rebase"  # serial: rebase the MR again
    WAIT_REBASE = "wait_rebase"  # serial: GitLab's rebase is still running
    WAIT_AHEAD = "wait_ahead"  # train: green, but the car ahead has not landed yet
    RELEASE = "release"  # end the batch


class StepResult(BaseModel):
    """Every key is always present: the state machine's ``ResultSelector`` names them all."""

    next: Next
    sha: str | None = None
    ref: str | None = None
    deadline: datetime | None = None


def batch_branch(target_branch: str) -> str:
    return f"merge-assist/batch/{target_branch}"
