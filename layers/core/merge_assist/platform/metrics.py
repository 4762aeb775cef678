"""The custom CloudWatch metrics Merge Assist emits (namespace ``MergeAssist``, Embedded
Metric Format through Powertools), one catalogue for the code that emits them, the alarms
and the dashboard that read them, and the runbook that explains them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

NAMESPACE = "MergeAssist"
# Every metric carries the Powertools default dimension ``service``.
SERVICE = "merge-assist"


class Unit(StrEnum):
    COUNT = "Count"
    SECONDS = "Seconds"


class Metric(StrEnum):
    # The webhook receiver: one per delivery, by GitLab event type (dimension EventType).
    EVENTS_RECEIVED = "EventsReceived"
    # Delivered and answered 200 with a reason: an event type or branch the queue does not use.
    EVENTS_IGNORED = "EventsIgnored"
    # Answered 4xx: bad token or signature, unknown project, unreadable body.
    EVENTS_REFUSED = "EventsRefused"
    # Queued although its Idempotency-Key had come with another body before: GitLab never
    # does that, so a sender reuses keys (or something rewrites bodies on the way).
    IDEMPOTENCY_KEY_CONFLICTS = "IdempotencyKeyConflicts"
    # The dispatcher: an event that kept failing, parked in its project's dead-letter queue
    # so its FIFO group goes on (merge_assist.queue.redelivery).
    EVENTS_PARKED = "EventsParked"
    # MR transitions, counted where they happen.
    MERGE_REQUESTS_QUEUED = "MergeRequestsQueued"
    MERGE_REQUESTS_MERGED = "MergeRequestsMerged"
    MERGE_REQUESTS_REJECTED = "MergeRequestsRejected"
    # Per batch when it is selected: how many MRs it took.
    BATCH_SIZE = "BatchSize"
    # Per batch when it ends: how many bisection rounds it needed (0 for a green first run).
    BISECTION_DEPTH = "BisectionDepth"
    # Per merged MR: from ready to merged.
    TIME_TO_MERGE = "TimeToMerge"
    # Per batch when it ends with merged MRs: the batch pipelines it ran over the MRs merged.
    PIPELINES_PER_MERGED_MR = "PipelinesPerMergedMergeRequest"
    # Every GitLab REST call, the ones that failed (5xx, timeout, connection), and the
    # retries python-gitlab made.
    GITLAB_API_CALLS = "GitLabApiCalls"
    GITLAB_API_ERRORS = "GitLabApiErrors"
    GITLAB_API_RETRIES = "GitLabApiRetries"
    # GitLab refused the bot's credentials: a REST answer 401 or 403, a git request 401.
    # Counted even when a re-read token then worked (a rotation shows as a blip).
    GITLAB_AUTH_FAILURES = "GitLabAuthFailures"
    # The watcher, once per run: that it ran, and how many branch locks are held longer than
    # their project's CI timeout allows (a batch stuck or running too long).
    WATCHER_RUNS = "WatcherRuns"
    OVERDUE_BATCHES = "OverdueBatches"


@dataclass(frozen=True)
class MetricSpec:
    metric: Metric
    unit: Unit
    # Dimensions besides ``service``; alarms on a metric use the ones listed here.
    dimensions: tuple[str, ...] = ()


CATALOGUE: tuple[MetricSpec, ...] = (
    MetricSpec(Metric.EVENTS_RECEIVED, Unit.COUNT, ("EventType",)),
    MetricSpec(Metric.EVENTS_IGNORED, Unit.COUNT),
    MetricSpec(Metric.EVENTS_REFUSED, Unit.COUNT),
    MetricSpec(Metric.IDEMPOTENCY_KEY_CONFLICTS, Unit.COUNT),
    MetricSpec(Metric.EVENTS_PARKED, Unit.COUNT),
    MetricSpec(Metric.MERGE_REQUESTS_QUEUED, Unit.COUNT),
    MetricSpec(Metric.MERGE_REQUESTS_MERGED, Unit.COUNT),
    MetricSpec(Metric.MERGE_REQUESTS_REJECTED, Unit.COUNT),
    MetricSpec(Metric.BATCH_SIZE, Unit.COUNT),
    MetricSpec(Metric.BISECTION_DEPTH, Unit.COUNT),
    MetricSpec(Metric.TIME_TO_MERGE, Unit.SECONDS),
    MetricSpec(Metric.PIPELINES_PER_MERGED_MR, Unit.COUNT),
    MetricSpec(Metric.GITLAB_API_CALLS, Unit.COUNT),
    MetricSpec(Metric.GITLAB_API_ERRORS, Unit.COUNT),
    MetricSpec(Metric.GITLAB_API_RETRIES, Unit.COUNT),
    MetricSpec(Metric.GITLAB_AUTH_FAILURES, Unit.COUNT),
    MetricSpec(Metric.WATCHER_RUNS, Unit.COUNT),
    MetricSpec(Metric.OVERDUE_BATCHES, Unit.COUNT),
)


def spec(metric: Metric) -> MetricSpec:
    return next(s for s in CATALOGUE if s.metric is metric)


class NullMeter:
    """Records nothing: the default where no function flushes metrics (the CLI, tests). It
    lives here rather than with the adapters so the core can default to it."""

    def record(self, metric: Metric, value: float = 1, **dimensions: str) -> None:
        pass
