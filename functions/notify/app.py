"""Subscribed to the alarm topic when a chat webhook is configured: posts each CloudWatch
alarm's state change to Slack or Microsoft Teams (formatting in ``merge_assist.admin.notify``).

The webhook URL is a credential (whoever has it can post to the channel), so it lives in a
Secrets Manager secret and is never logged; only the HTTP status of a failed post is."""

from __future__ import annotations

from typing import Any

import requests
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.notify import wiring
from merge_assist.admin.notify import AlarmNotice, ChatKind, chat_payload

logger = Logger()

# Slack and Teams answer in well under a second; the function's own timeout is longer.
POST_TIMEOUT_SECONDS = 10


class ChatPostError(RuntimeError):
    """The chat service refused a message; SNS retries the delivery."""


def post(url: str, payload: dict[str, Any], *, session: requests.Session | None = None) -> None:
    sender = session or requests.Session()
    try:
        response = sender.post(url, json=payload, timeout=POST_TIMEOUT_SECONDS)
    except requests.RequestException as error:
        # The exception's text may quote the URL, which carries the webhook's credential.
        raise ChatPostError(f"posting to the chat webhook failed: {type(error).__name__}") from None
    if response.status_code >= 300:
        raise ChatPostError(f"the chat webhook answered HTTP {response.status_code}")


def notify(
    event: dict[str, Any], *, url: str, kind: ChatKind | str, runbook_base_url: str = ""
) -> int:
    """Posts every alarm notification of an SNS event; returns how many were posted."""
    posted = 0
    for record in event.get("Records", []):
        notice = AlarmNotice.from_sns_message(record["Sns"]["Message"])
        post(url, chat_payload(kind, notice, runbook_base_url=runbook_base_url))
        logger.info("alarm posted", extra={"alarm": notice.name, "state": notice.state.value})
        posted += 1
    return posted


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    chat = wiring.chat()
    posted = notify(event, url=chat.url, kind=chat.kind, runbook_base_url=chat.runbook_base_url)
    return {"posted": posted}
