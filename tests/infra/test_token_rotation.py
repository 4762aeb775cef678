"""The bot token's rotation in the synthesized stack: the rotation function's grants, the
permission Secrets Manager invokes it with, the schedule on the secret the stack creates,
and the alarm on GitLab refusing the bot."""

from __future__ import annotations

from typing import Any

import pytest

from merge_assist.platform.metrics import NAMESPACE, SERVICE, Metric
from merge_assist.platform.resources import BOT_TOKEN_ROTATION_DAYS, FUNCTIONS, alarm_name
from tests.infra.test_synth import NAMES, Synthesized, _bot_token, _role_grants, synthesized

pytestmark = pytest.mark.infra

__all__ = ["synthesized"]  # fixture

ROTATOR = "rotate-bot-token"
WRITES = {"secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"}


def _role(synthesized: Synthesized, key: str) -> str:
    function = synthesized.resources[synthesized.function_id(key)]["Properties"]
    role_id: str = function["Role"]["Fn::GetAtt"][0]
    return role_id


def _created_condition(synthesized: Synthesized) -> str:
    stack = synthesized.stack
    return str(stack.resolve(stack.get_logical_id(stack.storage.bot_token_created)))


def _secret_in_use(synthesized: Synthesized) -> dict[str, Any]:
    created = synthesized.only("AWS::SecretsManager::Secret", {"Name": NAMES.bot_token_secret})
    condition = _created_condition(synthesized)
    return {"Fn::If": [condition, {"Ref": created}, {"Ref": "BotTokenSecretArn"}]}


def test_only_the_rotator_writes_the_bot_token_and_only_that_secret(
    synthesized: Synthesized,
) -> None:
    for spec in FUNCTIONS:
        grants = _role_grants(synthesized, _role(synthesized, spec.key))
        writes = {(action, resource) for action, resource, _ in grants if action in WRITES}
        expected = {(action, _bot_token(synthesized)) for action in WRITES}
        assert writes == (expected if spec.key == ROTATOR else set()), spec.key


def test_secrets_manager_may_invoke_the_rotator_for_the_secret_in_use(
    synthesized: Synthesized,
) -> None:
    permissions = synthesized.template.find_resources(
        "AWS::Lambda::Permission", {"Properties": {"Principal": "secretsmanager.amazonaws.com"}}
    )

    [permission] = permissions.values()
    properties = permission["Properties"]
    assert properties["FunctionName"] == {"Fn::GetAtt": [synthesized.function_id(ROTATOR), "Arn"]}
    assert properties["SourceArn"] == _secret_in_use(synthesized)
    assert properties["SourceAccount"] == {"Ref": "AWS::AccountId"}
    # Also for a secret of the admin's own, whose rotation they turn on themselves.
    assert "Condition" not in permission


def test_the_created_secret_is_rotated_on_schedule_and_not_at_deploy(
    synthesized: Synthesized,
) -> None:
    [schedule] = synthesized.template.find_resources(
        "AWS::SecretsManager::RotationSchedule"
    ).values()
    created = synthesized.only("AWS::SecretsManager::Secret", {"Name": NAMES.bot_token_secret})

    assert schedule["Condition"] == _created_condition(synthesized)
    assert schedule["Properties"] == {
        "SecretId": {"Ref": created},
        "RotationLambdaARN": {"Fn::GetAtt": [synthesized.function_id(ROTATOR), "Arn"]},
        "RotationRules": {"AutomaticallyAfterDays": BOT_TOKEN_ROTATION_DAYS},
        "RotateImmediatelyOnUpdate": False,
    }
    # Set after the permission that lets Secrets Manager invoke the function.
    permission = synthesized.only(
        "AWS::Lambda::Permission", {"Principal": "secretsmanager.amazonaws.com"}
    )
    assert permission in schedule["DependsOn"]


def test_gitlab_refusing_the_bot_alarms_on_its_own_metric(synthesized: Synthesized) -> None:
    [alarm] = [
        resource["Properties"]
        for resource in synthesized.template.find_resources("AWS::CloudWatch::Alarm").values()
        if resource["Properties"]["AlarmName"] == alarm_name(NAMES, "gitlab-auth-failures")
    ]

    assert (alarm["Namespace"], alarm["MetricName"]) == (
        NAMESPACE,
        Metric.GITLAB_AUTH_FAILURES.value,
    )
    assert alarm["Dimensions"] == [{"Name": "service", "Value": SERVICE}]
    assert alarm["Statistic"] == "Sum"
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (3, 2)
    assert "cannot authenticate to GitLab" in alarm["AlarmDescription"]
