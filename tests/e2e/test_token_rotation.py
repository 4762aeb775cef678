"""The bot token's rotation end to end: Secrets Manager (moto) invokes the real rotation
function in the local stack, which rotates the token in the GitLab simulator."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from local.stack import LocalStack
from merge_assist.adapters.gitlab_gateway import gateway_from_settings
from merge_assist.admin.token_rotation import RotationStep
from merge_assist.platform.resources import BOT_TOKEN_LIFETIME_DAYS, BOT_TOKEN_ROTATION_DAYS

pytestmark = pytest.mark.e2e

FUNCTION = "rotate-bot-token"


def _token_self(stack: LocalStack, token: str) -> requests.Response:
    return requests.get(
        f"{stack.gitlab_url}/api/v4/personal_access_tokens/self",
        headers={"PRIVATE-TOKEN": token},
        timeout=10,
    )


def _current(stack: LocalStack) -> str:
    secret = stack.client("secretsmanager").get_secret_value(SecretId=stack.names.bot_token_secret)
    return str(secret["SecretString"])


def _versions(stack: LocalStack) -> dict[str, list[str]]:
    described = stack.client("secretsmanager").describe_secret(
        SecretId=stack.names.bot_token_secret
    )
    return {version: sorted(stages) for version, stages in described["VersionIdsToStages"].items()}


def _rotate(stack: LocalStack) -> str:
    """Starts a rotation as the stack's schedule would, and returns its version id."""
    function_arn = stack.runtime.arn(stack.names.function(FUNCTION))
    started = stack.client("secretsmanager").rotate_secret(
        SecretId=stack.names.bot_token_secret,
        RotationLambdaARN=function_arn,
        RotationRules={"AutomaticallyAfterDays": BOT_TOKEN_ROTATION_DAYS},
    )
    return str(started["VersionId"])


def _invoke(stack: LocalStack, event: dict[str, Any]) -> dict[str, Any]:
    answer = stack.client("lambda").invoke(
        FunctionName=stack.names.function(FUNCTION), Payload=json.dumps(event).encode()
    )
    return {"error": answer.get("FunctionError"), "payload": json.loads(answer["Payload"].read())}


def test_rotation_replaces_the_token_in_gitlab_and_in_the_secret(stack: LocalStack) -> None:
    old = _current(stack)
    # A warm function's gateway, holding the old token from the cache.
    gateway = gateway_from_settings()
    bot_id = gateway.current_user_id()

    version = _rotate(stack)

    new = _current(stack)
    assert new != old
    assert _token_self(stack, old).status_code == 401
    answered = _token_self(stack, new)
    assert answered.status_code == 200
    assert answered.json()["user_id"] == bot_id
    expected_expiry = datetime.now(UTC).date() + timedelta(days=BOT_TOKEN_LIFETIME_DAYS)
    assert answered.json()["expires_at"] == expected_expiry.isoformat()
    assert "AWSCURRENT" in _versions(stack)[version]
    # The gateway is refused its cached token once, reads the secret again and goes on.
    assert gateway.current_user_id() == bot_id
    assert gateway_from_settings().current_user_id() == bot_id


def test_each_step_run_again_changes_nothing(stack: LocalStack) -> None:
    version = _rotate(stack)
    token, versions = _current(stack), _versions(stack)

    for step in RotationStep:
        answer = _invoke(
            stack,
            {
                "Step": step.value,
                "SecretId": stack.names.bot_token_secret,
                "ClientRequestToken": version,
            },
        )
        assert answer["error"] is None, answer["payload"]

    assert _current(stack) == token
    assert _versions(stack) == versions
    assert _token_self(stack, token).status_code == 200


def test_a_malformed_event_is_refused_and_changes_nothing(stack: LocalStack) -> None:
    token, versions = _current(stack), _versions(stack)

    answer = _invoke(stack, {"Step": "dropSecret", "SecretId": stack.names.bot_token_secret})

    assert answer["error"] == "Unhandled"
    assert "ClientRequestToken" in answer["payload"]["errorMessage"]
    assert _current(stack) == token
    assert _versions(stack) == versions
