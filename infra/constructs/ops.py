"""Ops: keeping the deployment on schedule, and (to come) observable.

The watcher runs on an EventBridge schedule, so a webhook GitLab never delivered only delays
a merge request. CloudWatch alarms on the functions, the state machines, the dead-letter
queues and the API, and the SNS topic routing them to people, belong here too.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.nag import acknowledge
from merge_assist.resources import WATCHER_SCHEDULE_MINUTES, ResourceNames

# EventBridge retries only failed deliveries (throttling, a missing permission), not errors of
# the function, which runs asynchronously.
WATCHER_DELIVERY_RETRIES = 2
# A delivery still pending when the next run is due is dropped to the dead-letter queue rather
# than run late, next to that run.
WATCHER_DELIVERY_MAX_AGE = Duration.minutes(WATCHER_SCHEDULE_MINUTES)
DEAD_LETTER_RETENTION = Duration.days(14)


class Ops(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        functions: Mapping[str, lambda_.IFunction],
    ) -> None:
        super().__init__(scope, construct_id)
        # Undelivered schedule events: each one is a watcher run that never happened.
        self.watcher_dead_letters = sqs.Queue(
            self,
            "WatcherDeadLetters",
            queue_name=f"{names.watcher_schedule}-dlq",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DEAD_LETTER_RETENTION,
        )
        acknowledge(
            self.watcher_dead_letters,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter queue of the watcher schedule's target; "
            "EventBridge puts the events it failed to deliver here and nothing consumes it.",
        )
        # A failed run is followed by the next scheduled one; Lambda's own async retries
        # would only crowd it.
        functions["watcher"].configure_async_invoke(retry_attempts=0)
        self.watcher_schedule = events.Rule(
            self,
            "WatcherSchedule",
            rule_name=names.watcher_schedule,
            description="Runs the watcher, which queues what missed webhooks left out",
            schedule=events.Schedule.rate(Duration.minutes(WATCHER_SCHEDULE_MINUTES)),
            targets=[
                targets.LambdaFunction(
                    functions["watcher"],
                    retry_attempts=WATCHER_DELIVERY_RETRIES,
                    max_event_age=WATCHER_DELIVERY_MAX_AGE,
                    dead_letter_queue=self.watcher_dead_letters,
                )
            ],
        )
