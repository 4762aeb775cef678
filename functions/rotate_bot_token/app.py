"""Secrets Manager's rotation function for the bot token: one step of the four per
invocation (``merge_assist.admin.token_rotation``). A step that raises fails the rotation, and
the secret's current version stays what it was."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.rotate_bot_token import wiring
from merge_assist.admin.token_rotation import RotationStep

logger = Logger()
metrics = wiring.metrics

STEPS = ", ".join(step.value for step in RotationStep)


class RotationRequestError(ValueError):
    """The event is not one Secrets Manager sends to a rotation function."""


def parse(event: Any) -> tuple[RotationStep, str, str]:
    """Step, secret id and version id of a rotation event."""
    if not isinstance(event, dict):
        raise RotationRequestError("a rotation event is a JSON object")
    fields = {name: event.get(name) for name in ("Step", "SecretId", "ClientRequestToken")}
    missing = [name for name, value in fields.items() if not isinstance(value, str) or not value]
    if missing:
        raise RotationRequestError(f"the rotation event lacks {', '.join(missing)}")
    try:
        step = RotationStep(str(fields["Step"]))
    except ValueError:
        raise RotationRequestError(f"unknown rotation step; expected one of {STEPS}") from None
    return step, str(fields["SecretId"]), str(fields["ClientRequestToken"])


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> None:
    step, secret_id, version_id = parse(event)
    wiring.rotation().run(step, secret_id, version_id)
    # Names only: the secret's value never reaches a log line.
    logger.info("rotation step done", step=step.value, secret_id=secret_id, version=version_id)
