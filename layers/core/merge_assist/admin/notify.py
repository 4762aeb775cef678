"""Alarm notifications for chat: a CloudWatch alarm's SNS message turned into a Slack incoming
webhook payload or a Microsoft Teams (Workflows) Adaptive Card message.

Pure: no HTTP, no AWS. ``functions/notify/app.py`` reads the SNS event, asks this module for
the payload and posts it.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from typing import Any

# Every alarm's description ends with this line (infra.constructs.alarms), naming the
# runbook section of the alarm: ``Runbook: docs/runbook.md#<slug>``.
RUNBOOK_MARKER = "Runbook:"
RUNBOOK_PATH = "docs/runbook.md"
_RUNBOOK_LINE = re.compile(r"Runbook:\s*(\S+)")

ADAPTIVE_CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
ADAPTIVE_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
ADAPTIVE_CARD_VERSION = "1.4"


class ChatKind(enum.StrEnum):
    SLACK = "slack"
    TEAMS = "teams"


class AlarmState(enum.StrEnum):
    OK = "OK"
    ALARM = "ALARM"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


_STATE_EMOJI = {
    AlarmState.ALARM: ":rotating_light:",
    AlarmState.OK: ":white_check_mark:",
    AlarmState.INSUFFICIENT_DATA: ":grey_question:",
}
# Adaptive Card text colours.
_STATE_COLOUR = {
    AlarmState.ALARM: "Attention",
    AlarmState.OK: "Good",
    AlarmState.INSUFFICIENT_DATA: "Warning",
}


def runbook_section(alarm_name: str, prefix: str) -> str:
    """The runbook heading (and anchor) of an alarm: its name without the deployment prefix."""
    return alarm_name.removeprefix(f"{prefix}-")


def runbook_reference(slug: str) -> str:
    """The line an alarm's description ends with."""
    return f"{RUNBOOK_MARKER} {RUNBOOK_PATH}#{slug}"


@dataclass(frozen=True)
class AlarmNotice:
    name: str
    state: AlarmState
    previous_state: str
    reason: str
    description: str
    region: str
    account: str
    changed_at: str

    @classmethod
    def from_sns_message(cls, message: str | dict[str, Any]) -> AlarmNotice:
        """A CloudWatch alarm's notification, as SNS delivers it (a JSON string)."""
        body: dict[str, Any] = json.loads(message) if isinstance(message, str) else message
        try:
            state = AlarmState(str(body["NewStateValue"]))
            name = str(body["AlarmName"])
        except (KeyError, ValueError) as error:
            raise ValueError(f"not a CloudWatch alarm notification: {error}") from error
        return cls(
            name=name,
            state=state,
            previous_state=str(body.get("OldStateValue") or ""),
            reason=str(body.get("NewStateReason") or ""),
            description=str(body.get("AlarmDescription") or ""),
            region=str(body.get("Region") or ""),
            account=str(body.get("AWSAccountId") or ""),
            changed_at=str(body.get("StateChangeTime") or ""),
        )

    @property
    def summary(self) -> str:
        """The description without its runbook line."""
        lines = [line for line in self.description.splitlines() if RUNBOOK_MARKER not in line]
        text = " ".join(line.strip() for line in lines if line.strip())
        return _RUNBOOK_LINE.sub("", text).strip()

    def runbook(self, base_url: str = "") -> str:
        """Where the alarm's runbook section is: ``base_url`` (the repository's docs/ folder
        as the team browses it) joined with the description's reference, or the reference."""
        match = _RUNBOOK_LINE.search(self.description)
        if match is None:
            return ""
        reference = match.group(1)
        if not base_url:
            return reference
        return f"{base_url.rstrip('/')}/{reference.removeprefix('docs/')}"

    @property
    def title(self) -> str:
        return f"{self.state.value}: {self.name}"

    @property
    def where(self) -> str:
        return ", ".join(part for part in (self.region, f"account {self.account}") if part)


def slack_payload(notice: AlarmNotice, *, runbook_base_url: str = "") -> dict[str, Any]:
    """An incoming webhook's message: ``text`` for notifications, ``blocks`` for the channel."""
    emoji = _STATE_EMOJI[notice.state]
    runbook = notice.runbook(runbook_base_url)
    fields = [
        {"type": "mrkdwn", "text": f"*State*\n{notice.previous_state or '?'} → {notice.state}"},
        {"type": "mrkdwn", "text": f"*Where*\n{notice.where or '?'}"},
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{notice.title}"[:150]}},
        {"type": "section", "fields": fields},
    ]
    if notice.summary:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": notice.summary}})
    if notice.reason:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": notice.reason[:2000]}]}
        )
    if runbook:
        link = f"<{runbook}|Runbook>" if runbook.startswith("https://") else f"Runbook: {runbook}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": link}})
    return {"text": f"{emoji} {notice.title}", "blocks": blocks}


def teams_payload(notice: AlarmNotice, *, runbook_base_url: str = "") -> dict[str, Any]:
    """A message for a Teams Workflows webhook ("post to a channel when a webhook request is
    received"): one Adaptive Card 1.4 attachment."""
    runbook = notice.runbook(runbook_base_url)
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": notice.title,
            "weight": "Bolder",
            "size": "Medium",
            "color": _STATE_COLOUR[notice.state],
            "wrap": True,
        },
        {
            "type": "FactSet",
            "facts": [
                {"title": "State", "value": f"{notice.previous_state or '?'} → {notice.state}"},
                {"title": "Where", "value": notice.where or "?"},
                {"title": "Changed", "value": notice.changed_at or "?"},
            ],
        },
    ]
    if notice.summary:
        body.append({"type": "TextBlock", "text": notice.summary, "wrap": True})
    if notice.reason:
        body.append({"type": "TextBlock", "text": notice.reason, "wrap": True, "isSubtle": True})
    content: dict[str, Any] = {
        "$schema": ADAPTIVE_CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": ADAPTIVE_CARD_VERSION,
        "body": body,
    }
    if runbook.startswith("https://"):
        content["actions"] = [{"type": "Action.OpenUrl", "title": "Runbook", "url": runbook}]
    elif runbook:
        body.append({"type": "TextBlock", "text": f"Runbook: {runbook}", "wrap": True})
    return {
        "type": "message",
        "attachments": [{"contentType": ADAPTIVE_CARD_CONTENT_TYPE, "content": content}],
    }


def chat_payload(
    kind: ChatKind | str, notice: AlarmNotice, *, runbook_base_url: str = ""
) -> dict[str, Any]:
    if ChatKind(kind) is ChatKind.SLACK:
        return slack_payload(notice, runbook_base_url=runbook_base_url)
    return teams_payload(notice, runbook_base_url=runbook_base_url)
