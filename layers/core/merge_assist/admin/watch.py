"""The watcher's run, every few minutes: what keeps the queue going when an event was lost,
an execution died or GitLab was down.

In every active project, first what needs only DynamoDB and Step Functions (a batch whose
execution ended while holding its branch is released, and idle queues with MRs start), so
the queue resumes on the first run after an outage even while GitLab is still down; then,
with GitLab, the outbox is delivered and the MRs GitLab and the store disagree about are
reconciled. One project's failure does not stop the others; the run reports each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from merge_assist.admin.ports import QueueStarter, Store
from merge_assist.admin.recovery import BatchExecutions, release_dead_batches
from merge_assist.platform.errors import MergeAssistError
from merge_assist.platform.events import QueueEvent
from merge_assist.platform.metrics import Metric
from merge_assist.platform.ports import Clock, Meter
from merge_assist.queue import GitLabGateway, deliver_pending, overdue_batches, reconcile_project


class GitLabUnreachable(MergeAssistError):
    """GitLab did not say who the bot is: nothing can be reconciled this run."""


@dataclass
class WatchReport:
    started: dict[int, list[str]] = field(default_factory=dict)
    queued: dict[int, int] = field(default_factory=dict)
    # What went wrong, by project; the run has failed when this is not empty.
    failures: dict[int, Exception] = field(default_factory=dict)


@dataclass(frozen=True)
class Watcher:
    store: Store
    executions: BatchExecutions
    clock: Clock
    start_queues: QueueStarter
    # Made for each run, so it starts with the bot token as the secret's cache has it.
    gitlab: Callable[[], GitLabGateway]
    send: Callable[[QueueEvent], object]
    meter: Meter

    def run(self, run_id: str) -> WatchReport:
        """``run_id``: the scheduled run's own id, so a retried run starts nothing twice.
        ``GitLabUnreachable`` once the GitLab-free part is done, if GitLab does not answer."""
        # Counted first, so a run that fails still shows it ran; its failure has its alarm.
        self.meter.record(Metric.WATCHER_RUNS)
        projects = self.store.list_projects()
        # Every project, paused ones too: pausing stops new batches, not a stuck one.
        overdue = overdue_batches(self.store, projects, self.clock.now())
        self.meter.record(Metric.OVERDUE_BATCHES, overdue)
        active = [config for config in projects if not config.paused]
        report = WatchReport()
        for config in active:
            try:
                release_dead_batches(
                    self.store,
                    self.executions,
                    self.clock,
                    config.project_id,
                    config.target_branches,
                )
                report.started[config.project_id] = self.start_queues(
                    config.project_id, f"watch:{run_id}"
                )
            except Exception as error:
                report.failures[config.project_id] = error
        gitlab = self.gitlab()
        try:
            bot_user_id = gitlab.current_user_id()
        except Exception as error:
            raise GitLabUnreachable("GitLab did not say who the bot is") from error
        for config in active:
            try:
                deliver_pending(gitlab, self.store, config.project_id)
                report.queued[config.project_id] = reconcile_project(
                    self.store, gitlab, bot_user_id, config, self.send
                )
            except Exception as error:
                report.failures.setdefault(config.project_id, error)
        return report
