"""What the dispatcher does with one queued event.

1. A finished pipeline resumes the workflow execution waiting for its sha.
2. The event is recorded on the state of the MR it concerns (once per event).
3. If the MR concerns the bot (or did), GitLab's current view of it is triaged: queued or
   not ready, and the author is told when that changes. The state is saved before the
   comment is posted, so a retried event never comments twice. An MR that changed while
   in a batch leaves it, and the batch's wait is interrupted so it rebuilds without it.
4. A queued MR starts its branch's batch if none runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from merge_assist.platform.config import ProjectConfig
from merge_assist.platform.errors import ConflictError, NotFoundError
from merge_assist.platform.events import EventKind, QueueEvent
from merge_assist.platform.metrics import Metric, NullMeter
from merge_assist.platform.ports import Clock, Meter
from merge_assist.platform.settings import PollIntervals
from merge_assist.queue import notices
from merge_assist.queue.models import MergeRequestState, StatusCategory
from merge_assist.queue.pipeline_wait import CHANGED, PipelineOutcome, outcome, resume_waiting
from merge_assist.queue.ports import Executions, GitLabGateway, QueueStore
from merge_assist.queue.queue import queue_order
from merge_assist.queue.readiness import MergeRequestFacts
from merge_assist.queue.recording import MAX_ATTEMPTS, pause, record_event
from merge_assist.queue.triage import Triage, gone, triage
from merge_assist.queue.workflow.start import batch_id_for, start_batch

TRACKED_ONCE_QUEUED = (
    StatusCategory.QUEUED,
    StatusCategory.BATCHING,
    StatusCategory.TESTING,
    StatusCategory.REJECTED,
)


@dataclass(frozen=True)
class Dispatched:
    resumed_wait: bool
    state: MergeRequestState | None
    told: bool
    started_batch: bool = False


def _concerns_bot(state: MergeRequestState, config: ProjectConfig, bot_user_id: int) -> bool:
    if state.status in TRACKED_ONCE_QUEUED or bot_user_id in state.assignee_ids:
        return True
    return config.trigger_label is not None and config.trigger_label in state.labels


def queue_position(store: QueueStore, state: MergeRequestState) -> int:
    """Where the MR stands (1-based) in its branch's queue, counting itself."""
    queued = [
        mr
        for mr in store.list_merge_requests(
            state.project_id, StatusCategory.QUEUED, state.target_branch
        )
        if mr.iid != state.iid
    ]
    if state.ready_since is None:
        return len(queued) + 1
    return 1 + sum(1 for mr in queued if queue_order(mr) < queue_order(state))


@dataclass(frozen=True)
class Dispatcher:
    store: QueueStore
    gitlab: GitLabGateway
    executions: Executions
    clock: Clock
    bot_user_id: int
    polls: PollIntervals = field(default_factory=PollIntervals)
    meter: Meter = field(default_factory=NullMeter)

    def handle(self, event: QueueEvent) -> Dispatched:
        resumed = resume_waiting(self.store, self.executions, event)
        recorded = record_event(self.store, event)
        if recorded is None:
            for waiting in self._waiting_for_branch_pipeline(event):
                self._settle(event, waiting)
            return Dispatched(resumed, None, told=False)
        return self._settle(event, recorded, resumed=resumed)

    def _waiting_for_branch_pipeline(self, event: QueueEvent) -> list[MergeRequestState]:
        """A branch pipeline's webhook names no MR, yet it may be the head pipeline an MR
        waits for: the not-ready MRs whose source branch and head it ran for."""
        pipeline = event.pipeline
        if event.kind is not EventKind.PIPELINE or pipeline is None or pipeline.ref is None:
            return []
        if outcome(pipeline) is None:
            return []
        return [
            state
            for state in self.store.list_merge_requests(event.project_id, StatusCategory.NOT_READY)
            if state.source_branch == pipeline.ref and state.sha == pipeline.sha
        ]

    def _settle(
        self, event: QueueEvent, recorded: MergeRequestState, *, resumed: bool = False
    ) -> Dispatched:
        """Triage the MR on GitLab's facts, save what it decides and tell the author."""
        try:
            config = self.store.get_project(event.project_id)
        except NotFoundError:
            return Dispatched(resumed, recorded, told=False)  # disconnected meanwhile
        if not _concerns_bot(recorded, config, self.bot_user_id):
            return Dispatched(resumed, recorded, told=False)
        facts: MergeRequestFacts | None
        try:
            facts = self.gitlab.merge_request_facts(event.project_id, recorded.iid)
        except NotFoundError:
            facts = None
        for attempt in range(MAX_ATTEMPTS):
            state = self.store.get_merge_request(event.project_id, recorded.iid)
            if facts is None and state.gitlab_state == "deleted":
                return Dispatched(resumed, state, told=False)
            decided = gone(state) if facts is None else self._triage(state, facts, config)
            if decided.state == state and decided.transition is None:
                started = self._start_batch(state, event.idempotency_key)
                return Dispatched(resumed, state, told=False, started_batch=started)
            try:
                saved = self.store.save_merge_request(decided.state)
            except ConflictError:
                pause(attempt)  # another event for this MR won the race: triage again
                continue
            if saved.status is StatusCategory.QUEUED and state.status is not StatusCategory.QUEUED:
                # Counted by the save that made the move, so a replayed event counts nothing.
                self.meter.record(Metric.MERGE_REQUESTS_QUEUED)
            if decided.transition is not None:
                notices.tell(self.gitlab, self.store, saved, decided.transition)
            if decided.left_batch is not None:
                self._interrupt(event.project_id, decided.left_batch)
            started = self._start_batch(saved, event.idempotency_key)
            return Dispatched(
                resumed, saved, told=decided.transition is not None, started_batch=started
            )
        raise ConflictError(f"!{recorded.iid} of project {event.project_id} kept changing")

    def _start_batch(self, state: MergeRequestState, cause: str) -> bool:
        """A queued MR starts its branch's batch unless one runs already; the event that
        queued it names the batch, so a replayed event cannot start a second one."""
        if state.status is not StatusCategory.QUEUED:
            return False
        return start_batch(
            self.store,
            self.executions,
            state.project_id,
            state.target_branch,
            batch_id_for(state.project_id, state.target_branch, cause),
            polls=self.polls,
        )

    def _interrupt(self, project_id: int, batch_id: str) -> None:
        """An MR left a batch that may be waiting for its pipeline: end the wait now, so the
        batch is rebuilt without it instead of landing what its author no longer wants."""
        try:
            batch = self.store.get_batch(batch_id)
        except NotFoundError:
            return
        if batch.testing_sha is None or batch.state.is_final:
            return
        token = self.store.get_task_token(project_id, batch.testing_sha)
        if token is None:
            return
        changed = PipelineOutcome(sha=batch.testing_sha, status=CHANGED)
        self.executions.resume(token, changed.model_dump(mode="json"))
        self.store.delete_task_token(project_id, batch.testing_sha, token)

    def _triage(
        self, state: MergeRequestState, facts: MergeRequestFacts, config: ProjectConfig
    ) -> Triage:
        return triage(
            state,
            facts,
            config,
            self.bot_user_id,
            self.clock.now(),
            head_sha=facts.sha or state.sha,
            queue_position=queue_position(self.store, state),
        )
