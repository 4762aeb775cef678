"""Operations in the synthesized stack: the alarms, the topic they notify, its optional email
and chat subscriptions, the dashboard, and the runbook every alarm points to."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from infra import REPO_ROOT
from infra.constructs.alarms import QUEUE_AGE_THRESHOLD
from infra.constructs.ops import NOTIFY_FUNCTION
from merge_assist.admin.notify import ChatKind, runbook_reference, runbook_section
from merge_assist.platform.metrics import CATALOGUE, NAMESPACE, SERVICE
from merge_assist.platform.resources import (
    ENV_PREFIX,
    FUNCTIONS,
    MERGE_WORKFLOW,
    PROJECT_ALARM_SLUGS,
    STREAM_SUBSCRIPTIONS,
    alarm_name,
    alarm_topic_name,
    chat_webhook_secret_name,
    dashboard_name,
)
from tests.infra.test_synth import NAMES, Synthesized, synthesized

pytestmark = pytest.mark.infra

__all__ = ["synthesized"]  # fixture

RUNBOOK = REPO_ROOT / "docs" / "runbook.md"
CATALOGUED = frozenset(spec.metric.value for spec in CATALOGUE)

EXPECTED_SLUGS = frozenset(
    {
        "watcher-dead-letters",
        *(f"{subscription.function}-stream-failures" for subscription in STREAM_SUBSCRIPTIONS),
        f"{MERGE_WORKFLOW}-executions-failed",
        f"{MERGE_WORKFLOW}-executions-timed-out",
        *(f"lambda-errors-{spec.key}" for spec in FUNCTIONS),
        *(f"lambda-throttles-{spec.key}" for spec in FUNCTIONS),
        "api-5xx",
        "api-4xx-spike",
        "gitlab-api-errors",
        "gitlab-auth-failures",
        "overdue-batches",
        "watcher-not-running",
    }
)


def _alarms(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    """Alarm name -> properties."""
    return {
        alarm["Properties"]["AlarmName"]: alarm["Properties"]
        for alarm in synthesized.template.find_resources("AWS::CloudWatch::Alarm").values()
    }


def _topic(synthesized: Synthesized) -> str:
    return synthesized.only("AWS::SNS::Topic", {"TopicName": alarm_topic_name(NAMES)})


def _metric_stats(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics an alarm reads: its single metric, or those of its math expression."""
    if "MetricName" in alarm:
        return [
            {
                "Namespace": alarm["Namespace"],
                "MetricName": alarm["MetricName"],
                "Dimensions": alarm.get("Dimensions", []),
            }
        ]
    return [query["MetricStat"]["Metric"] for query in alarm["Metrics"] if "MetricStat" in query]


def _runbook_headings() -> set[str]:
    return {
        match.group(1).strip()
        for match in re.finditer(r"^#{2,4}\s+(.+)$", RUNBOOK.read_text(), re.MULTILINE)
    }


def test_the_stack_has_every_alarm(synthesized: Synthesized) -> None:
    assert set(_alarms(synthesized)) == {alarm_name(NAMES, slug) for slug in EXPECTED_SLUGS}


def test_every_alarm_notifies_the_topic_on_alarm_and_on_ok(synthesized: Synthesized) -> None:
    topic = {"Ref": _topic(synthesized)}
    for name, alarm in _alarms(synthesized).items():
        assert alarm["AlarmActions"] == [topic], name
        assert alarm["OKActions"] == [topic], name


def test_project_alarms_have_runbook_sections() -> None:
    # Created at run time when a project is connected, so not in the template.
    assert set(PROJECT_ALARM_SLUGS) <= _runbook_headings()


def test_every_alarm_has_a_runbook_section(synthesized: Synthesized) -> None:
    headings = _runbook_headings()
    for name, alarm in _alarms(synthesized).items():
        slug = runbook_section(name, NAMES.prefix)
        assert slug in headings, f"docs/runbook.md has no heading {slug!r}"
        assert alarm["AlarmDescription"].endswith(runbook_reference(slug)), name


def test_custom_metric_alarms_read_catalogued_metrics(synthesized: Synthesized) -> None:
    custom = 0
    for name, alarm in _alarms(synthesized).items():
        for metric in _metric_stats(alarm):
            if metric["Namespace"] != NAMESPACE:
                continue
            custom += 1
            assert metric["MetricName"] in CATALOGUED, name
            assert metric["Dimensions"] == [{"Name": "service", "Value": SERVICE}], name
    # GitLab errors, calls and auth failures, overdue batches, watcher runs.
    assert custom == 5


def test_watcher_silence_counts_as_breaching(synthesized: Synthesized) -> None:
    alarm = _alarms(synthesized)[alarm_name(NAMES, "watcher-not-running")]

    assert alarm["TreatMissingData"] == "breaching"
    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    assert alarm["Threshold"] == 1
    assert alarm["Period"] == 900


def test_merge_batch_alarms_watch_the_state_machine(synthesized: Synthesized) -> None:
    machine = synthesized.only("AWS::StepFunctions::StateMachine")
    alarms = _alarms(synthesized)
    for slug, metric in (
        ("executions-failed", "ExecutionsFailed"),
        ("executions-timed-out", "ExecutionsTimedOut"),
    ):
        alarm = alarms[alarm_name(NAMES, f"{MERGE_WORKFLOW}-{slug}")]
        assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/States", metric)
        assert alarm["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": machine}}]


def test_api_alarms_watch_the_default_stage(synthesized: Synthesized) -> None:
    alarms = _alarms(synthesized)
    for slug, metric in (("api-5xx", "5xx"), ("api-4xx-spike", "4xx")):
        alarm = alarms[alarm_name(NAMES, slug)]
        assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/ApiGateway", metric)
        dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        assert dimensions["Stage"] == "$default"
    assert alarms[alarm_name(NAMES, "api-4xx-spike")]["EvaluationPeriods"] > 1


def test_lambda_alarms_cover_every_function(synthesized: Synthesized) -> None:
    alarms = _alarms(synthesized)
    for spec in FUNCTIONS:
        function = {"Ref": synthesized.function_id(spec.key)}
        for kind, metric in (("errors", "Errors"), ("throttles", "Throttles")):
            alarm = alarms[alarm_name(NAMES, f"lambda-{kind}-{spec.key}")]
            assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", metric)
            assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": function}]


def test_alarm_topic_is_encrypted_and_enforces_tls(synthesized: Synthesized) -> None:
    topic = synthesized.resources[_topic(synthesized)]["Properties"]
    key = topic["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key_policy = synthesized.resources[key]["Properties"]["KeyPolicy"]["Statement"]
    policies = synthesized.template.find_resources("AWS::SNS::TopicPolicy")
    [policy] = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in policies.values()
        if {"Ref": _topic(synthesized)} in p["Properties"]["Topics"]
    ]

    assert synthesized.resources[key]["Properties"]["EnableKeyRotation"] is True
    assert any(
        statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
        for statement in key_policy
    )
    assert any(
        statement["Effect"] == "Deny"
        and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for statement in policy
    )
    assert any(
        statement["Effect"] == "Allow"
        and statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
        and statement["Action"] == "sns:Publish"
        for statement in policy
    )


def test_email_subscription_is_optional(synthesized: Synthesized) -> None:
    conditions = synthesized.template.to_json()["Conditions"]
    [(logical_id, subscription)] = synthesized.template.find_resources(
        "AWS::SNS::Subscription", {"Properties": {"Protocol": "email"}}
    ).items()

    synthesized.template.has_parameter("AlarmEmail", {"Type": "String", "Default": ""})
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}
    assert conditions["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    assert logical_id


def test_chat_forwarder_is_optional(synthesized: Synthesized) -> None:
    conditions = synthesized.template.to_json()["Conditions"]
    notify = synthesized.function_id(NOTIFY_FUNCTION)
    [subscription] = synthesized.template.find_resources(
        "AWS::SNS::Subscription", {"Properties": {"Protocol": "lambda"}}
    ).values()
    [permission] = synthesized.template.find_resources(
        "AWS::Lambda::Permission", {"Properties": {"Principal": "sns.amazonaws.com"}}
    ).values()
    secret_id = synthesized.only(
        "AWS::SecretsManager::Secret", {"Name": chat_webhook_secret_name(NAMES)}
    )
    secret = synthesized.resources[secret_id]
    [secret_policy] = synthesized.template.find_resources(
        "AWS::SecretsManager::ResourcePolicy", {"Properties": {"SecretId": {"Ref": secret_id}}}
    ).values()

    synthesized.template.has_parameter("ChatWebhookUrl", {"NoEcho": True, "Default": ""})
    synthesized.template.has_parameter(
        "ChatKind", {"AllowedValues": [kind.value for kind in ChatKind]}
    )
    assert conditions["HasChatWebhook"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ChatWebhookUrl"}, ""]}]
    }
    for resource in (subscription, permission, secret, secret_policy):
        assert resource["Condition"] == "HasChatWebhook"
    assert subscription["Properties"]["Endpoint"] == {"Fn::GetAtt": [notify, "Arn"]}
    assert subscription["Properties"]["TopicArn"] == {"Ref": _topic(synthesized)}
    assert permission["Properties"]["SourceArn"] == {"Ref": _topic(synthesized)}
    assert secret["Properties"]["SecretString"] == {"Ref": "ChatWebhookUrl"}
    [statement] = secret_policy["Properties"]["ResourcePolicy"]["Statement"]
    role = synthesized.resources[notify]["Properties"]["Role"]
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert statement["Principal"] == {"AWS": role}


def test_notify_function_never_holds_the_webhook_url(synthesized: Synthesized) -> None:
    function = synthesized.resources[synthesized.function_id(NOTIFY_FUNCTION)]["Properties"]
    variables = function["Environment"]["Variables"]

    assert variables[f"{ENV_PREFIX}CHAT_WEBHOOK_SECRET"] == chat_webhook_secret_name(NAMES)
    assert variables[f"{ENV_PREFIX}CHAT_KIND"] == {"Ref": "ChatKind"}
    assert "ChatWebhookUrl" not in json.dumps(function)


def _dashboard_body(synthesized: Synthesized) -> str:
    dashboard = synthesized.only(
        "AWS::CloudWatch::Dashboard", {"DashboardName": dashboard_name(NAMES)}
    )
    body = synthesized.resources[dashboard]["Properties"]["DashboardBody"]
    if isinstance(body, str):
        return body
    return "".join(
        part if isinstance(part, str) else json.dumps(part) for part in body["Fn::Join"][1]
    )


def test_dashboard_graphs_the_metrics_and_the_project_queues(synthesized: Synthesized) -> None:
    body = _dashboard_body(synthesized)

    for metric in CATALOGUE:
        assert f'"{metric.metric.value}"' in body or metric.metric.value in body, metric
    for wanted in (
        "ApproximateNumberOfMessagesVisible",
        "ApproximateAgeOfOldestMessage",
        "NOT dlq",
        "ExecutionsStarted",
        "ExecutionsFailed",
        '"Errors"',
        '"4xx"',
        '"5xx"',
        "p50",
        "p95",
    ):
        assert wanted in body, wanted
    assert body.count("SEARCH(") == 4
    assert str(int(QUEUE_AGE_THRESHOLD.to_seconds())) in body


def test_outputs_name_the_topic_and_the_dashboard(synthesized: Synthesized) -> None:
    outputs = synthesized.template.to_json()["Outputs"]

    assert outputs["AlarmTopicArn"]["Value"] == {"Ref": _topic(synthesized)}
    assert "DashboardName" in outputs
