"""``GET /health``: what on-call looks at first, per project the caller may see; what is
checked and what counts as healthy is ``merge_assist.admin.health``'s."""

# No "from __future__ import annotations": the resolver reads route signatures at run time.

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from functions.api import caller, wiring
from functions.api.schemas import Health

logger = Logger(child=True)
router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]


@router.get(
    "/health",
    summary="GitLab reachability, queue depths, dead letters and executions per project",
    tags=["health"],
)
def health() -> Health:
    report = wiring.health().check(caller.current())
    for failure in report.failures:
        found: dict[str, object] = {"error": failure.error}
        if failure.project_id is not None:
            found["project_id"] = failure.project_id
        logger.warning(f"{failure.probe} probe failed", extra=found)
    return Health.model_validate(report, from_attributes=True)
