"""The dashboard's live-update WebSocket (API Gateway WebSocket API, routes ``$connect``,
``$disconnect`` and ``$default``).

Browsers cannot set headers on a WebSocket, so the Cognito access token comes in the query
string (``?token=...``, optionally ``&project=<id>`` to follow one project). ``$connect``
verifies it, works out which projects its user may view and stores the connection until the
token expires; a missing or bad token is refused with 401, a project the user may not view
with 403. The token is never logged: the event is not, and refusals log only the reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.websocket import wiring
from merge_assist.live.feed import open_connection
from merge_assist.platform.errors import Forbidden, Unauthenticated, Unavailable

logger = Logger()
tracer = Tracer()

PONG = json.dumps({"type": "pong"})


def _answer(status: int, message: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"statusCode": status}
    if message is not None:
        answer["body"] = json.dumps({"message": message})
    return answer


class Refused(Exception):
    """Ends a ``$connect`` with this status: API Gateway then fails the handshake with it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.answer = _answer(status, message)


def _project(query: Mapping[str, str]) -> int | None:
    raw = query.get("project")
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or int(raw) <= 0:
        raise Refused(400, "project must be a project id")
    return int(raw)


def _claims(query: Mapping[str, str]) -> dict[str, Any]:
    token = query.get("token")
    if not token:
        logger.info("refused: no token")
        raise Refused(401, "Unauthorized")
    try:
        return wiring.verifier().verify(token)
    except Unauthenticated as error:
        logger.info("refused: bad token", reason=str(error))
        raise Refused(401, "Unauthorized") from None
    except Unavailable:
        logger.exception("the user pool's keys are unavailable")
        raise Refused(503, "Service Unavailable") from None


@tracer.capture_method
def connect(connection_id: str, query: Mapping[str, str]) -> dict[str, Any]:
    try:
        project = _project(query)
        claims = _claims(query)
        username = str(claims["username"])
        try:
            connection = open_connection(
                connection_id,
                claims,
                wiring.store().grants_of_user(username),
                project=project,
                now=wiring.clock.now(),
            )
        except Unauthenticated as error:
            logger.info("refused: bad token", reason=str(error))
            raise Refused(401, "Unauthorized") from None
        except Forbidden:
            logger.info("refused: project not visible", username=username, project=project)
            raise Refused(403, "Forbidden") from None
    except Refused as refusal:
        return refusal.answer
    wiring.connections().add(connection)
    logger.info(
        "connected",
        connection_id=connection_id,
        username=username,
        admin=connection.admin,
        projects=connection.project_ids,
        project=project,
        expires_at=connection.expires_at.isoformat(),
    )
    return _answer(200)


def disconnect(connection_id: str) -> dict[str, Any]:
    wiring.connections().remove(connection_id)
    logger.info("disconnected", connection_id=connection_id)
    return _answer(200)


def message(body: str | None) -> dict[str, Any]:
    try:
        document = json.loads(body or "")
    except json.JSONDecodeError:
        document = None
    if isinstance(document, dict) and document.get("action") == "ping":
        return {"statusCode": 200, "body": PONG}
    # The dashboard only listens; anything else it might send is ignored.
    return _answer(200)


# log_event=False whatever POWERTOOLS_LOGGER_LOG_EVENT says: the event holds the token.
@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = event.get("requestContext") or {}
    route = request.get("routeKey")
    connection_id = str(request.get("connectionId") or "")
    if not connection_id:
        return _answer(400, "no connection id")
    if route == "$connect":
        return connect(connection_id, event.get("queryStringParameters") or {})
    if route == "$disconnect":
        return disconnect(connection_id)
    return message(event.get("body"))
