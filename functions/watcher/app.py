"""Scheduled by EventBridge: the watcher's run (``merge_assist.admin.watch``) in every
active project. One project's failure does not stop the rest; the run fails (and alarms)
only after all were tried."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.watcher import wiring
from merge_assist.admin.watch import GitLabUnreachable

logger = Logger()
tracer = Tracer()
metrics = wiring.metrics


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # EventBridge gives each scheduled run its own id.
    run_id = str(event.get("id") or context.aws_request_id)
    try:
        report = wiring.watcher().run(run_id)
    except GitLabUnreachable:
        logger.exception("GitLab did not say who the bot is; reconciling waits for the next run")
        raise RuntimeError("the watcher could not reach GitLab") from None
    for project_id, error in report.failures.items():
        logger.error("watching project failed", project_id=project_id, exc_info=error)
    logger.info(
        "watch done", queued=report.queued, started=report.started, failed=sorted(report.failures)
    )
    if report.failures:
        raise RuntimeError(f"watching failed for projects {sorted(report.failures)}")
    return {"queued": report.queued}
