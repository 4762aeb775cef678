"""Waiting for a pipeline with Step Functions' callback pattern (DESIGN.md, "Waiting for CI").

The workflow's wait task stores its task token keyed by (project, sha) and pauses; the
dispatcher, on the pipeline webhook for that sha, resumes it with the pipeline's outcome.
Every finished status resumes the wait (success included): the state machine decides what
a failed, canceled or skipped pipeline means, so no outcome can leave it waiting."""

from __future__ import annotations

from pydantic import BaseModel

from merge_assist.platform.events import EventKind, PipelineSnapshot, QueueEvent
from merge_assist.queue.ports import Executions, QueueStore

FINISHED_STATUSES = frozenset({"success", "failed", "canceled", "skipped"})


class PipelineOutcome(BaseModel):
    """What a resumed wait task returns to the state machine."""

    pipeline_id: int | None = None
    sha: str
    status: str
    web_url: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == "success"


def outcome(pipeline: PipelineSnapshot) -> PipelineOutcome | None:
    """The outcome of a finished pipeline; None while it may still change."""
    if pipeline.status not in FINISHED_STATUSES:
        return None
    return PipelineOutcome(
        pipeline_id=pipeline.id, sha=pipeline.sha, status=pipeline.status, web_url=pipeline.web_url
    )


def resume_waiting(store: QueueStore, executions: Executions, event: QueueEvent) -> bool:
    """Resume the execution waiting for this pipeline's sha, if any; True if one was."""
    if event.kind is not EventKind.PIPELINE or event.pipeline is None:
        return False
    finished = outcome(event.pipeline)
    if finished is None:
        return False
    token = store.get_task_token(event.project_id, finished.sha)
    if token is None:
        return False
    resumed = executions.resume(token, finished.model_dump(mode="json"))
    # Gone or not, this token has had its answer; a newer wait keeps its own.
    store.delete_task_token(event.project_id, finished.sha, token)
    return resumed
