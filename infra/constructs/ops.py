"""Ops: keeping the deployment on schedule, and observable.

The watcher runs on an EventBridge schedule, so a webhook GitLab never delivered only delays
a merge request. CloudWatch alarms on the functions, the state machine, the dead-letter
queues, the API and the custom metrics (``infra.constructs.alarms``) notify one SNS topic,
which mails the ``AlarmEmail`` parameter's address and, when ``ChatWebhookUrl`` is set,
invokes the ``notify`` function that posts to Slack or Teams. Both are optional: an empty
parameter leaves its subscription out (CloudFormation conditions).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import (
    ArnFormat,
    Aws,
    CfnCondition,
    CfnParameter,
    CfnResource,
    Duration,
    Fn,
    RemovalPolicy,
    SecretValue,
    Stack,
)
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.constructs.alarms import alarm_specs, create_alarms, create_dashboard
from infra.nag import acknowledge
from merge_assist.admin.notify import ChatKind
from merge_assist.platform.resources import (
    ENV_PREFIX,
    WATCHER_SCHEDULE_MINUTES,
    ResourceNames,
    alarm_name,
    alarm_topic_name,
    chat_webhook_secret_name,
)

NOTIFY_FUNCTION = "notify"

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
        functions: Mapping[str, lambda_.Function],
        observed: Observed,
        notifications: Notifications,
    ) -> None:
        super().__init__(scope, construct_id)
        self._schedule(names, functions)
        self.topic = self._topic(names)
        self._subscriptions(names, notifications, functions[NOTIFY_FUNCTION])
        dead_letter_queues: dict[str, tuple[sqs.IQueue, str]] = {
            "watcher-dead-letters": (
                self.watcher_dead_letters,
                "The watcher schedule's dead-letter queue (a run EventBridge never delivered)",
            ),
        }
        for key, queue in observed.stream_failure_queues.items():
            dead_letter_queues[f"{key}-stream-failures"] = (
                queue,
                f"The {key} stream's failure queue (table changes the {key} function gave up on)",
            )
        self.alarms = create_alarms(
            self,
            names,
            alarm_specs(
                functions=functions,
                state_machines=observed.state_machines,
                api_stage=observed.api_stage,
                dead_letter_queues=dead_letter_queues,
            ),
        )
        action = cloudwatch_actions.SnsAction(self.topic)
        for alarm in self.alarms.values():
            alarm.add_alarm_action(action)
            # Chat hears the all-clear too.
            alarm.add_ok_action(action)
        self.dashboard = create_dashboard(
            self,
            names,
            functions=functions,
            state_machines=observed.state_machines,
            api_stage=observed.api_stage,
            alarms=self.alarms.values(),
        )

    def _schedule(self, names: ResourceNames, functions: Mapping[str, lambda_.IFunction]) -> None:
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

    def _topic(self, names: ResourceNames) -> sns.Topic:
        # CloudWatch publishes to an encrypted topic only with a customer managed key whose
        # policy lets it use the key; the AWS managed aws/sns key cannot be shared so.
        key = kms.Key(
            self,
            "AlarmTopicKey",
            description=f"Encrypts the alarm notifications of {names.prefix}",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        cloudwatch_principal = iam.ServicePrincipal("cloudwatch.amazonaws.com")
        own_alarms = Stack.of(self).format_arn(
            service="cloudwatch",
            resource="alarm",
            resource_name=alarm_name(names, "*"),
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[cloudwatch_principal],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )
        topic = sns.Topic(
            self,
            "AlarmTopic",
            topic_name=alarm_topic_name(names),
            display_name=f"Merge Assist alarms ({names.prefix})",
            master_key=key,
            enforce_ssl=True,
        )
        # The topic policy that enforces TLS replaces SNS's default one: CloudWatch may
        # publish this deployment's alarms, and nothing else is let in.
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[cloudwatch_principal],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    "ArnLike": {"aws:SourceArn": own_alarms},
                },
            )
        )
        return topic

    def _subscriptions(
        self, names: ResourceNames, notifications: Notifications, notify: lambda_.Function
    ) -> None:
        stack = Stack.of(self)
        self.has_alarm_email = CfnCondition(
            stack,
            "HasAlarmEmail",
            expression=Fn.condition_not(
                Fn.condition_equals(notifications.alarm_email.value_as_string, "")
            ),
        )
        email = sns.Subscription(
            self,
            "AlarmEmail",
            topic=self.topic,
            protocol=sns.SubscriptionProtocol.EMAIL,
            endpoint=notifications.alarm_email.value_as_string,
        )
        _when(email, self.has_alarm_email)

        self.has_chat_webhook = CfnCondition(
            stack,
            "HasChatWebhook",
            expression=Fn.condition_not(
                Fn.condition_equals(notifications.chat_webhook_url.value_as_string, "")
            ),
        )
        # The URL is the webhook's credential: it goes from the NoEcho parameter into a
        # secret, so it is in neither the function's configuration nor the template.
        self.chat_secret = secretsmanager.Secret(
            self,
            "ChatWebhook",
            secret_name=chat_webhook_secret_name(names),
            description="Slack or Teams webhook URL the notify function posts alarms to",
            secret_string_value=SecretValue.cfn_parameter(notifications.chat_webhook_url),
            removal_policy=RemovalPolicy.DESTROY,
        )
        _when(self.chat_secret, self.has_chat_webhook)
        acknowledge(
            self.chat_secret,
            "AwsSolutions-SMG4",
            "The value is a Slack or Teams webhook URL, issued by the chat service: it is "
            "rotated by creating a new webhook there and updating the ChatWebhookUrl "
            "parameter, and no rotation function could do that.",
        )
        # Granted by the secret's resource policy rather than the function's role, so the
        # grant exists exactly when the (conditional) secret does.
        if notify.role is None:
            raise ValueError("the notify function has no role to grant the chat secret to")
        policy = secretsmanager.ResourcePolicy(
            self,
            "ChatWebhookPolicy",
            secret=self.chat_secret,
        )
        policy.document.add_statements(
            iam.PolicyStatement(
                principals=[iam.ArnPrincipal(notify.role.role_arn)],
                actions=["secretsmanager:GetSecretValue"],
                resources=["*"],
            )
        )
        _when(policy, self.has_chat_webhook)
        notify.add_environment(f"{ENV_PREFIX}CHAT_WEBHOOK_SECRET", chat_webhook_secret_name(names))
        notify.add_environment(f"{ENV_PREFIX}CHAT_KIND", notifications.chat_kind.value_as_string)
        # SNS invokes the function only when the webhook is set.
        subscription = sns.CfnSubscription(
            self,
            "ChatForwarder",
            topic_arn=self.topic.topic_arn,
            protocol="lambda",
            endpoint=notify.function_arn,
        )
        subscription.cfn_options.condition = self.has_chat_webhook
        permission = lambda_.CfnPermission(
            self,
            "ChatForwarderInvoke",
            action="lambda:InvokeFunction",
            function_name=notify.function_arn,
            principal="sns.amazonaws.com",
            source_arn=self.topic.topic_arn,
        )
        permission.cfn_options.condition = self.has_chat_webhook


def _when(construct: Construct, condition: CfnCondition) -> None:
    """Deploys a construct's CloudFormation resources only when ``condition`` holds."""
    for child in construct.node.find_all():
        if isinstance(child, CfnResource):
            child.cfn_options.condition = condition


@dataclass(frozen=True)
class Observed:
    """What the alarms and the dashboard watch besides the functions."""

    state_machines: Mapping[str, sfn.IStateMachine]
    api_stage: apigwv2.IHttpStage
    stream_failure_queues: Mapping[str, sqs.IQueue]


@dataclass(frozen=True)
class Notifications:
    """The deploy-time parameters saying where alarms go."""

    alarm_email: CfnParameter
    chat_webhook_url: CfnParameter
    chat_kind: CfnParameter


def notification_parameters(stack: Stack) -> Notifications:
    return Notifications(
        alarm_email=CfnParameter(
            stack,
            "AlarmEmail",
            type="String",
            default="",
            description="Email address that receives the alarms (empty: no email)",
            allowed_pattern=r"^$|^[^\s@]+@[^\s@]+$",
            constraint_description="an email address, or empty",
        ),
        chat_webhook_url=CfnParameter(
            stack,
            "ChatWebhookUrl",
            type="String",
            default="",
            no_echo=True,
            description=(
                "Slack incoming webhook or Teams Workflows webhook URL for the alarms "
                "(empty: no chat); stored in Secrets Manager"
            ),
            allowed_pattern=r"^$|^https://\S+$",
            constraint_description="an https URL, or empty",
        ),
        chat_kind=CfnParameter(
            stack,
            "ChatKind",
            type="String",
            default=ChatKind.SLACK.value,
            allowed_values=[kind.value for kind in ChatKind],
            description="What ChatWebhookUrl is: slack or teams",
        ),
    )
