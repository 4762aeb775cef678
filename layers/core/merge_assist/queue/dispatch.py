"""What the dispatcher does with one queued event.

1. A finished pipeline resumes the workflow execution waiting for its sha.
2. The event is recorded on the state of the MR it concerns (once per event).
3. If the event can change a decision (below) and the MR concerns the bot (or did),
   GitLab's current view of it is triaged: queued or not ready, and the author is told
   when that changes. The state is saved before the comment is posted, so a retried event
   never comments twice. An MR that changed while in a batch leaves it, and the batch's
   wait is interrupted so it rebuilds without it.
4. A queued MR starts its branch's batch if none runs.

**Which events can change a decision.** Most events are echoes of the queue's own work;
judging one costs GitLab reads and changes nothing. An event is only recorded, without
reading GitLab and without triage, when it is

- a pipeline event whose pipeline has not finished: a pending or running pipeline
  decides nothing; its finished event will (and only that one resumes a wait);
- a note by the bot itself: its own comment, or the system note of its own label change;
- an update of an MR by the bot itself that changed nothing but labels and the MR's
  timestamps: the queue labels it sets with each transition;
- any event by the bot on its batch MR (the MR of the batch branch), which the queue
  tracks through the batch record, never through triage.

Everything else can: whatever a person does (a push, a note, which may be a command or
open a discussion, an approval, a label, an assignment, a draft flag), any event whose
actor is unknown, a merge or close by the bot (the MR leaves the queue), the bot's own
rebase (a new head), a finished pipeline, and the watcher's reconciliation.

**Coalescing.** A receive may hold several events for one MR. Each is recorded, in order;
the MR is judged once, at the last of them that can change a decision, against GitLab's
current view, which already holds what the earlier ones said. Should that event fail, it
is retried with the rest of its group, and it still judges when it comes back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from merge_assist.platform.config import ProjectConfig
from merge_assist.platform.errors import ConflictError, NotFoundError
from merge_assist.platform.events import EventKind, QueueEvent
from merge_assist.platform.metrics import Metric, NullMeter
from merge_assist.platform.ports import Clock, Meter
from merge_assist.platform.settings import PollIntervals
from merge_assist.queue import notices
from merge_assist.queue.models import MergeRequestState, StatusCategory
from merge_assist.queue.pipeline_wait import (
    CHANGED,
    PipelineOutcome,
    answer_wait,
    outcome,
    resume_waiting,
)
from merge_assist.queue.ports import Executions, GitLabGateway, QueueStore
from merge_assist.queue.queue import queue_order
from merge_assist.queue.readiness import MergeRequestFacts
from merge_assist.queue.recording import MAX_ATTEMPTS, pause, record_event
from merge_assist.queue.train import ahead_key
from merge_assist.queue.triage import Triage, gone, triage
from merge_assist.queue.workflow.context import batch_branch
from merge_assist.queue.workflow.start import batch_id_for, start_batch

TRACKED_ONCE_QUEUED = (
    StatusCategory.QUEUED,
    StatusCategory.BATCHING,
    StatusCategory.TESTING,
    StatusCategory.REJECTED,
)


# What an update by the bot can change and still be its echo: its labels, and with them
# when and by whom the MR was last updated.
ECHO_CHANGES = frozenset({"labels", "updated_at", "updated_by_id"})


def can_change_decision(event: QueueEvent, bot_user_id: int) -> bool:
    """The rule in the module's docstring."""
    if event.kind is EventKind.PIPELINE:
        return event.pipeline is not None and outcome(event.pipeline) is not None
    if event.actor_id is None or event.actor_id != bot_user_id:
        return True
    if event.kind is EventKind.NOTE:
        return False
    snapshot = event.merge_request
    if event.kind is not EventKind.MERGE_REQUEST or snapshot is None:
        return True
    if snapshot.target_branch and snapshot.source_branch == batch_branch(snapshot.target_branch):
        return False
    return not (snapshot.action == "update" and ECHO_CHANGES.issuperset(snapshot.changed))


def judged_later(events: Sequence[QueueEvent | None], bot_user_id: int) -> list[bool]:
    """For each event of one receive (None: one that could not be read), whether a later
    event of the receive judges its MR, so this one is only recorded."""
    later: list[bool] = []
    judging: set[tuple[int, int]] = set()
    for event in reversed(events):
        iid = event.mr_iid if event is not None else None
        if event is None or iid is None:
            later.append(False)
            continue
        key = (event.project_id, iid)
        later.append(key in judging)
        if can_change_decision(event, bot_user_id):
            judging.add(key)
    return later[::-1]


@dataclass(frozen=True)
class Dispatched:
    resumed_wait: bool
    state: MergeRequestState | None
    told: bool
    started_batch: bool = False
    # False when the event was only recorded: an echo, or left to a later event.
    judged: bool = True


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

    def handle(self, event: QueueEvent, *, judged_later: bool = False) -> Dispatched:
        """``judged_later``: a later event of the same receive judges this one's MR."""
        resumed = resume_waiting(self.store, self.executions, event)
        recorded = record_event(self.store, event)
        if recorded is None:
            for waiting in self._waiting_for_branch_pipeline(event):
                self._settle(event, waiting)
            return Dispatched(resumed, None, told=False)
        if judged_later or not can_change_decision(event, self.bot_user_id):
            return Dispatched(resumed, recorded, told=False, judged=False)
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
        changed = PipelineOutcome(sha=batch.testing_sha, status=CHANGED)
        # Waiting for its pipeline, or (a green train car) for the car ahead to land.
        waits = [batch.testing_sha]
        if batch.ahead_id is not None:
            waits.append(ahead_key(batch.ahead_id))
        for key in waits:
            answer_wait(self.store, self.executions, project_id, key, changed)

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
