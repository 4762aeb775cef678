"""Alarm notifications as Slack and Teams messages (``merge_assist.admin.notify``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from merge_assist.admin.notify import (
    ADAPTIVE_CARD_CONTENT_TYPE,
    ADAPTIVE_CARD_VERSION,
    AlarmNotice,
    AlarmState,
    ChatKind,
    chat_payload,
    runbook_reference,
    runbook_section,
    slack_payload,
    teams_payload,
)

REASON = (
    "Threshold Crossed: 1 datapoint [3.0 (23/11/26 15:40:00)] was greater than or equal to "
    "the threshold (1.0)."
)


def alarm_message(state: str = "ALARM", **overrides: Any) -> dict[str, Any]:
    """A CloudWatch alarm notification as SNS delivers it (the Message, parsed)."""
    message = {
        "AlarmName": "merge-assist-lambda-errors-dispatcher",
        "AlarmDescription": (
            f"The dispatcher function failed.\n{runbook_reference('lambda-errors-dispatcher')}"
        ),
        "AWSAccountId": "123456789012",
        "NewStateValue": state,
        "OldStateValue": "OK" if state == "ALARM" else "ALARM",
        "NewStateReason": REASON,
        "StateChangeTime": "2026-11-23T15:40:12.345+0000",
        "Region": "EU (Ireland)",
        "AlarmArn": (
            "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:merge-assist-lambda-errors-dispatcher"
        ),
    }
    message.update(overrides)
    return message


def notice(state: str = "ALARM", **overrides: Any) -> AlarmNotice:
    return AlarmNotice.from_sns_message(json.dumps(alarm_message(state, **overrides)))


def test_reads_a_cloudwatch_alarm_notification() -> None:
    read = notice()

    assert read.name == "merge-assist-lambda-errors-dispatcher"
    assert read.state is AlarmState.ALARM
    assert read.previous_state == "OK"
    assert read.reason == REASON
    assert read.summary == "The dispatcher function failed."
    assert read.runbook() == "docs/runbook.md#lambda-errors-dispatcher"
    assert read.where == "EU (Ireland), account 123456789012"


def test_runbook_link_joins_the_base_url() -> None:
    base = "https://gitlab.example.com/tools/merge-assist/-/blob/main/docs/"

    assert notice().runbook(base) == f"{base}runbook.md#lambda-errors-dispatcher"
    assert notice(AlarmDescription="no runbook line").runbook(base) == ""


def test_runbook_section_is_the_name_without_the_prefix() -> None:
    assert runbook_section("acme-api-5xx", "acme") == "api-5xx"


@pytest.mark.parametrize("message", ["{}", json.dumps({"AlarmName": "x", "NewStateValue": "?"})])
def test_refuses_what_is_not_an_alarm_notification(message: str) -> None:
    with pytest.raises(ValueError, match="not a CloudWatch alarm notification"):
        AlarmNotice.from_sns_message(message)


def test_slack_payload_for_an_alarm() -> None:
    payload = slack_payload(notice())
    text = json.dumps(payload["blocks"], ensure_ascii=False)

    assert payload["text"] == ":rotating_light: ALARM: merge-assist-lambda-errors-dispatcher"
    assert payload["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "ALARM: merge-assist-lambda-errors-dispatcher"},
    }
    assert "OK → ALARM" in text
    assert "EU (Ireland), account 123456789012" in text
    assert "The dispatcher function failed." in text
    assert REASON in text
    assert "Runbook: docs/runbook.md#lambda-errors-dispatcher" in text
    assert all(block["type"] in {"header", "section", "context"} for block in payload["blocks"])


def test_slack_payload_for_ok_links_the_runbook() -> None:
    payload = slack_payload(notice("OK"), runbook_base_url="https://docs.example.com/")

    assert payload["text"].startswith(":white_check_mark: OK: ")
    assert payload["blocks"][-1]["text"]["text"] == (
        "<https://docs.example.com/runbook.md#lambda-errors-dispatcher|Runbook>"
    )


def test_teams_payload_is_an_adaptive_card_message() -> None:
    payload = teams_payload(notice())
    [attachment] = payload["attachments"]
    card = attachment["content"]

    assert payload["type"] == "message"
    assert attachment["contentType"] == ADAPTIVE_CARD_CONTENT_TYPE
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == ADAPTIVE_CARD_VERSION == "1.4"
    title = card["body"][0]
    assert title["text"] == "ALARM: merge-assist-lambda-errors-dispatcher"
    assert title["color"] == "Attention"
    facts = {fact["title"]: fact["value"] for fact in card["body"][1]["facts"]}
    assert facts == {
        "State": "OK → ALARM",
        "Where": "EU (Ireland), account 123456789012",
        "Changed": "2026-11-23T15:40:12.345+0000",
    }
    assert card["body"][-1]["text"] == "Runbook: docs/runbook.md#lambda-errors-dispatcher"
    assert "actions" not in card


def test_teams_payload_for_ok_opens_the_runbook() -> None:
    payload = teams_payload(notice("OK"), runbook_base_url="https://docs.example.com")
    card = payload["attachments"][0]["content"]

    assert card["body"][0]["color"] == "Good"
    assert card["actions"] == [
        {
            "type": "Action.OpenUrl",
            "title": "Runbook",
            "url": "https://docs.example.com/runbook.md#lambda-errors-dispatcher",
        }
    ]


def test_chat_payload_picks_the_format() -> None:
    assert "blocks" in chat_payload(ChatKind.SLACK, notice())
    assert "attachments" in chat_payload("teams", notice())
    with pytest.raises(ValueError, match="discord"):
        chat_payload("discord", notice())
