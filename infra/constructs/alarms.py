"""The deployment's CloudWatch alarms and its dashboard.

Every alarm is named ``<prefix>-<slug>``
(``merge_assist.platform.resources.alarm_name``); the slug is
its section heading in docs/runbook.md, and its description ends with the line pointing
there, which the chat forwarder turns into a link (``merge_assist.admin.notify``). Custom metrics
are named from ``merge_assist.platform.metrics``, never by string, so renaming one breaks the synth.

The project queues and their dead-letter queues are created at run time, when a project is
connected, so the stack cannot name them. CloudWatch does not evaluate alarms on SEARCH
expressions (CDK's ``MathExpression`` documents it: "When an expression contains a SEARCH
function, it cannot be used within an Alarm"), and a Metrics Insights query, which alarms do
accept, filters dimensions by equality only (no prefix or LIKE). Neither can select
"``<prefix>-project-*-dlq.fifo``", so each project's two queue alarms are created when it is
connected (``AwsProjectInfrastructure.ensure_alarms``), and the dashboard graphs all project
queues with SEARCH.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from merge_assist.admin.notify import runbook_reference
from merge_assist.platform.metrics import NAMESPACE, SERVICE, Metric, spec
from merge_assist.platform.resources import (
    MERGE_WORKFLOW,
    WATCHER_SCHEDULE_MINUTES,
    ResourceNames,
    alarm_name,
    dashboard_name,
)

PERIOD = Duration.minutes(5)
# Any message in a dead-letter queue is an event the queue lost: one is enough.
DEAD_LETTER_THRESHOLD = 1
# Project queues: a message waiting this long means the dispatcher is not consuming them
# (the graph on the dashboard; per-project alarms use the same threshold).
QUEUE_AGE_THRESHOLD = Duration.minutes(15)
# Failed or timed-out merge workflow executions in five minutes.
EXECUTIONS_FAILED_THRESHOLD = 1
# Lambda errors and throttles per function in five minutes. Errors are retried (by the
# state machine, by SQS, by the stream), but every one is worth a look.
LAMBDA_ERRORS_THRESHOLD = 1
LAMBDA_THROTTLES_THRESHOLD = 1
# HTTP API answers in five minutes: 5xx are ours; 4xx are the callers' (a bad webhook token,
# an expired dashboard session), so only a spike over two periods in a row is alarming.
API_5XX_THRESHOLD = 5
API_4XX_SPIKE_THRESHOLD = 100
API_4XX_SPIKE_PERIODS = 2
# GitLab REST calls that failed, in percent of all calls, in two of three periods; below
# the minimum number of calls a period does not count (one failure in three is noise).
GITLAB_ERROR_RATE_PERCENT = 10
GITLAB_MINIMUM_CALLS = 10
GITLAB_ERROR_PERIODS = 3
GITLAB_ERROR_DATAPOINTS = 2
# GitLab refusing the bot's credentials (401/403) in two of three periods. A rotation shows
# as a few refusals in one period (each function re-reads the secret once); a revoked or
# expired token as refusals in every period the bot calls GitLab, the watcher's included.
GITLAB_AUTH_FAILURES_THRESHOLD = 1
GITLAB_AUTH_FAILURE_PERIODS = 3
GITLAB_AUTH_FAILURE_DATAPOINTS = 2
# A branch lock held longer than the project's CI timeout allows, in any watcher run.
OVERDUE_BATCHES_THRESHOLD = 1
# The watcher runs every WATCHER_SCHEDULE_MINUTES; none in this window means the schedule or
# the function is broken. No data counts as no run.
WATCHER_SILENCE = Duration.minutes(15)


@dataclass(frozen=True)
class AlarmSpec:
    slug: str
    summary: str
    metric: cloudwatch.IMetric
    threshold: float
    comparison: cloudwatch.ComparisonOperator = (
        cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
    )
    evaluation_periods: int = 1
    datapoints_to_alarm: int | None = None
    missing_data: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING
    # The custom metrics it reads (merge_assist.platform.metrics), for the tests and the runbook.
    custom_metrics: tuple[Metric, ...] = ()


def custom_metric(
    metric: Metric, *, statistic: str = "Sum", period: Duration = PERIOD
) -> cloudwatch.Metric:
    """A Merge Assist metric with the ``service`` dimension every one carries; metrics with
    further dimensions (EventType) are graphed with SEARCH instead."""
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=spec(metric).metric.value,
        dimensions_map={"service": SERVICE},
        statistic=statistic,
        period=period,
    )


def _queue_alarm(slug: str, queue: sqs.IQueue, what: str) -> AlarmSpec:
    return AlarmSpec(
        slug=slug,
        summary=f"{what} holds a message.",
        metric=queue.metric_approximate_number_of_messages_visible(
            statistic="Maximum", period=PERIOD
        ),
        threshold=DEAD_LETTER_THRESHOLD,
    )


def alarm_specs(
    *,
    functions: Mapping[str, lambda_.IFunction],
    state_machines: Mapping[str, sfn.IStateMachine],
    api_stage: apigwv2.IHttpStage,
    dead_letter_queues: Mapping[str, tuple[sqs.IQueue, str]],
) -> list[AlarmSpec]:
    """Every alarm of the stack. ``dead_letter_queues``: slug -> (queue, what it is)."""
    specs = [_queue_alarm(slug, queue, what) for slug, (queue, what) in dead_letter_queues.items()]
    merge_batch = state_machines[MERGE_WORKFLOW]
    specs += [
        AlarmSpec(
            slug=f"{MERGE_WORKFLOW}-executions-failed",
            summary="A merge batch execution failed: its branch may stay locked.",
            metric=merge_batch.metric_failed(statistic="Sum", period=PERIOD),
            threshold=EXECUTIONS_FAILED_THRESHOLD,
        ),
        AlarmSpec(
            slug=f"{MERGE_WORKFLOW}-executions-timed-out",
            summary="A merge batch execution timed out: its branch may stay locked.",
            metric=merge_batch.metric_timed_out(statistic="Sum", period=PERIOD),
            threshold=EXECUTIONS_FAILED_THRESHOLD,
        ),
    ]
    for key, function in functions.items():
        specs += [
            AlarmSpec(
                slug=f"lambda-errors-{key}",
                summary=f"The {key} function failed.",
                metric=function.metric_errors(statistic="Sum", period=PERIOD),
                threshold=LAMBDA_ERRORS_THRESHOLD,
            ),
            AlarmSpec(
                slug=f"lambda-throttles-{key}",
                summary=f"The {key} function was throttled.",
                metric=function.metric_throttles(statistic="Sum", period=PERIOD),
                threshold=LAMBDA_THROTTLES_THRESHOLD,
            ),
        ]
    specs += [
        AlarmSpec(
            slug="api-5xx",
            summary="The HTTP API answered 5xx (webhooks or dashboard).",
            metric=api_stage.metric_server_error(statistic="Sum", period=PERIOD),
            threshold=API_5XX_THRESHOLD,
        ),
        AlarmSpec(
            slug="api-4xx-spike",
            summary="A spike of 4xx answers: refused webhooks or dashboard sessions.",
            metric=api_stage.metric_client_error(statistic="Sum", period=PERIOD),
            threshold=API_4XX_SPIKE_THRESHOLD,
            evaluation_periods=API_4XX_SPIKE_PERIODS,
        ),
        AlarmSpec(
            slug="gitlab-api-errors",
            summary="GitLab API calls fail (5xx, timeouts, connection errors).",
            metric=cloudwatch.MathExpression(
                expression=f"IF(calls >= {GITLAB_MINIMUM_CALLS}, 100 * errors / calls, 0)",
                using_metrics={
                    "errors": custom_metric(Metric.GITLAB_API_ERRORS),
                    "calls": custom_metric(Metric.GITLAB_API_CALLS),
                },
                label="GitLab API error rate (%)",
                period=PERIOD,
            ),
            threshold=GITLAB_ERROR_RATE_PERCENT,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=GITLAB_ERROR_PERIODS,
            datapoints_to_alarm=GITLAB_ERROR_DATAPOINTS,
            custom_metrics=(Metric.GITLAB_API_ERRORS, Metric.GITLAB_API_CALLS),
        ),
        AlarmSpec(
            slug="gitlab-auth-failures",
            summary="The bot cannot authenticate to GitLab: its token is refused (401/403).",
            metric=custom_metric(Metric.GITLAB_AUTH_FAILURES),
            threshold=GITLAB_AUTH_FAILURES_THRESHOLD,
            evaluation_periods=GITLAB_AUTH_FAILURE_PERIODS,
            datapoints_to_alarm=GITLAB_AUTH_FAILURE_DATAPOINTS,
            custom_metrics=(Metric.GITLAB_AUTH_FAILURES,),
        ),
        AlarmSpec(
            slug="overdue-batches",
            summary="A batch runs longer than its project's CI timeout allows.",
            metric=custom_metric(Metric.OVERDUE_BATCHES, statistic="Maximum"),
            threshold=OVERDUE_BATCHES_THRESHOLD,
            custom_metrics=(Metric.OVERDUE_BATCHES,),
        ),
        AlarmSpec(
            slug="watcher-not-running",
            summary=(
                f"The watcher (every {WATCHER_SCHEDULE_MINUTES} min) has not run for "
                f"{WATCHER_SILENCE.to_minutes()} min: missed webhooks are not caught up."
            ),
            metric=custom_metric(Metric.WATCHER_RUNS, period=WATCHER_SILENCE),
            threshold=1,
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            missing_data=cloudwatch.TreatMissingData.BREACHING,
            custom_metrics=(Metric.WATCHER_RUNS,),
        ),
    ]
    return specs


def create_alarms(
    scope: Construct, names: ResourceNames, specs: Iterable[AlarmSpec]
) -> dict[str, cloudwatch.Alarm]:
    alarms: dict[str, cloudwatch.Alarm] = {}
    for alarm_spec in specs:
        if alarm_spec.slug in alarms:
            raise ValueError(f"two alarms with the slug {alarm_spec.slug!r}")
        alarms[alarm_spec.slug] = cloudwatch.Alarm(
            scope,
            f"Alarm-{alarm_spec.slug}",
            alarm_name=alarm_name(names, alarm_spec.slug),
            alarm_description=f"{alarm_spec.summary}\n{runbook_reference(alarm_spec.slug)}",
            metric=alarm_spec.metric,
            threshold=alarm_spec.threshold,
            comparison_operator=alarm_spec.comparison,
            evaluation_periods=alarm_spec.evaluation_periods,
            datapoints_to_alarm=alarm_spec.datapoints_to_alarm,
            treat_missing_data=alarm_spec.missing_data,
        )
    return alarms


# -- the dashboard ---------------------------------------------------------------------


def _search(schema: str, term: str, statistic: str) -> cloudwatch.SearchExpression:
    # An empty label keeps each time series' own (the queue's name).
    return cloudwatch.SearchExpression(
        expression=f"SEARCH('{schema} {term}', '{statistic}')", label="", period=PERIOD
    )


def project_queue_searches(names: ResourceNames) -> dict[str, cloudwatch.SearchExpression]:
    """The project queues and dead-letter queues, found by name at run time (graphs only).

    SEARCH matches unquoted terms as parts of a dimension value, split at its hyphens: the
    prefix's words and "project" select this deployment's queues, "dlq" the dead letters."""
    words = " ".join(names.project_queue_prefix.strip("-").split("-"))
    schema = "{AWS/SQS,QueueName}"
    visible = 'MetricName="ApproximateNumberOfMessagesVisible"'
    age = 'MetricName="ApproximateAgeOfOldestMessage"'
    return {
        "depth": _search(schema, f"{visible} {words} NOT dlq", "Maximum"),
        "dead-letters": _search(schema, f"{visible} {words} dlq", "Maximum"),
        "age": _search(schema, f"{age} {words} NOT dlq", "Maximum"),
    }


def _graph(
    title: str,
    metrics: list[cloudwatch.IMetric],
    *,
    annotations: list[cloudwatch.HorizontalAnnotation] | None = None,
) -> cloudwatch.IWidget:
    return cloudwatch.GraphWidget(
        title=title, left=metrics, left_annotations=annotations, width=8, height=6
    )


def create_dashboard(
    scope: Construct,
    names: ResourceNames,
    *,
    functions: Mapping[str, lambda_.IFunction],
    state_machines: Mapping[str, sfn.IStateMachine],
    api_stage: apigwv2.IHttpStage,
    alarms: Iterable[cloudwatch.Alarm],
) -> cloudwatch.Dashboard:
    merge_batch = state_machines[MERGE_WORKFLOW]
    searches = project_queue_searches(names)
    received = _search(
        "{" + f"{NAMESPACE},EventType,service" + "}",
        f'MetricName="{spec(Metric.EVENTS_RECEIVED).metric.value}"',
        "Sum",
    )
    dashboard = cloudwatch.Dashboard(
        scope,
        "Dashboard",
        dashboard_name=dashboard_name(names),
        default_interval=Duration.hours(24),
    )
    dashboard.add_widgets(
        _graph(
            "Webhook events",
            [
                received,
                custom_metric(Metric.EVENTS_IGNORED),
                custom_metric(Metric.EVENTS_REFUSED),
                custom_metric(Metric.IDEMPOTENCY_KEY_CONFLICTS),
                custom_metric(Metric.EVENTS_PARKED),
            ],
        ),
        _graph(
            "Project queues: depth and dead letters", [searches["depth"], searches["dead-letters"]]
        ),
        _graph(
            "Project queues: age of oldest message (s)",
            [searches["age"]],
            annotations=[
                cloudwatch.HorizontalAnnotation(
                    value=QUEUE_AGE_THRESHOLD.to_seconds(), label="alarm threshold"
                )
            ],
        ),
    )
    dashboard.add_widgets(
        _graph(
            "Merge requests",
            [
                custom_metric(Metric.MERGE_REQUESTS_QUEUED),
                custom_metric(Metric.MERGE_REQUESTS_MERGED),
                custom_metric(Metric.MERGE_REQUESTS_REJECTED),
            ],
        ),
        _graph(
            "Batches: size and bisection depth",
            [
                custom_metric(Metric.BATCH_SIZE, statistic="Average"),
                custom_metric(Metric.BATCH_SIZE, statistic="Maximum"),
                custom_metric(Metric.BISECTION_DEPTH, statistic="Maximum"),
            ],
        ),
        _graph(
            "Time to merge (s)",
            [
                custom_metric(Metric.TIME_TO_MERGE, statistic="p50"),
                custom_metric(Metric.TIME_TO_MERGE, statistic="p95"),
            ],
        ),
    )
    dashboard.add_widgets(
        _graph(
            "Pipelines per merged MR",
            [
                custom_metric(Metric.PIPELINES_PER_MERGED_MR, statistic="Average"),
                custom_metric(Metric.PIPELINES_PER_MERGED_MR, statistic="Maximum"),
            ],
        ),
        _graph(
            "Merge batch executions",
            [
                merge_batch.metric_started(statistic="Sum", period=PERIOD),
                merge_batch.metric_succeeded(statistic="Sum", period=PERIOD),
                merge_batch.metric_failed(statistic="Sum", period=PERIOD),
                merge_batch.metric_timed_out(statistic="Sum", period=PERIOD),
            ],
        ),
        _graph(
            "Lambda errors",
            [
                function.metric_errors(statistic="Sum", period=PERIOD, label=key)
                for key, function in functions.items()
            ],
        ),
    )
    dashboard.add_widgets(
        _graph(
            "HTTP API 4xx / 5xx",
            [
                api_stage.metric_client_error(statistic="Sum", period=PERIOD),
                api_stage.metric_server_error(statistic="Sum", period=PERIOD),
            ],
        ),
        _graph(
            "GitLab API calls and errors",
            [
                custom_metric(Metric.GITLAB_API_CALLS),
                custom_metric(Metric.GITLAB_API_ERRORS),
                custom_metric(Metric.GITLAB_API_RETRIES),
                custom_metric(Metric.GITLAB_AUTH_FAILURES),
            ],
        ),
        _graph(
            "Watcher runs and overdue batches",
            [
                custom_metric(Metric.WATCHER_RUNS),
                custom_metric(Metric.OVERDUE_BATCHES, statistic="Maximum"),
            ],
        ),
    )
    dashboard.add_widgets(
        cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(alarms), width=24, height=6)
    )
    return dashboard
