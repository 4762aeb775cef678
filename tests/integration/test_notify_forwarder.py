"""The notify function end to end: an SNS event in, a chat message posted to a local HTTP
server standing in for Slack or Teams, the webhook URL read from Secrets Manager (moto)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.notify import app, wiring
from local.runtime import make_context
from merge_assist.admin.notify import ChatKind, runbook_reference

SECRET = "merge-assist/chat-webhook-url"
# The path carries the webhook's credential, as Slack's and Teams' URLs do.
HOOK_PATH = "/services/T000/B000/s3cr3t-t0ken"


class ChatServer:
    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.status = 200
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                server.received.append((self.path, body))
                self.send_response(server.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}{HOOK_PATH}"

    def __enter__(self) -> ChatServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def chat(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[ChatServer]:
    with ChatServer() as server, mock_aws():
        boto3.client("secretsmanager").create_secret(Name=SECRET, SecretString=server.url)
        monkeypatch.setenv(wiring.WEBHOOK_SECRET_ENV, SECRET)
        wiring.webhook_url.cache_clear()
        yield server
    wiring.webhook_url.cache_clear()


def sns_event(*states: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "Sns": {
                    "Type": "Notification",
                    "Subject": f'{state}: "merge-assist-overdue-batches" in EU (Ireland)',
                    "Message": json.dumps(
                        {
                            "AlarmName": "merge-assist-overdue-batches",
                            "AlarmDescription": "A batch runs longer than its project's CI "
                            f"timeout allows.\n{runbook_reference('overdue-batches')}",
                            "AWSAccountId": "123456789012",
                            "NewStateValue": state,
                            "OldStateValue": "OK",
                            "NewStateReason": "Threshold Crossed",
                            "StateChangeTime": "2026-11-23T15:40:12.345+0000",
                            "Region": "EU (Ireland)",
                        }
                    ),
                },
            }
            for state in states
        ]
    }


@pytest.mark.parametrize("kind", list(ChatKind))
def test_posts_each_alarm_to_the_webhook(
    chat: ChatServer, monkeypatch: pytest.MonkeyPatch, kind: ChatKind
) -> None:
    monkeypatch.setenv(wiring.CHAT_KIND_ENV, kind.value)

    answer = app.handler(sns_event("ALARM", "OK"), make_context("test-notify"))

    assert answer == {"posted": 2}
    assert [path for path, _ in chat.received] == [HOOK_PATH, HOOK_PATH]
    first = json.dumps(chat.received[0][1])
    assert "ALARM: merge-assist-overdue-batches" in first
    assert "docs/runbook.md#overdue-batches" in first
    if kind is ChatKind.SLACK:
        assert set(chat.received[0][1]) == {"text", "blocks"}
    else:
        assert chat.received[1][1]["type"] == "message"


def test_a_refused_post_fails_without_logging_the_url(
    chat: ChatServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(wiring.CHAT_KIND_ENV, "slack")
    chat.status = 403

    with pytest.raises(app.ChatPostError, match="HTTP 403") as raised:
        app.handler(sns_event("ALARM"), make_context("test-notify"))

    assert HOOK_PATH not in str(raised.value)
    assert "s3cr3t" not in capsys.readouterr().out


def test_an_unreachable_webhook_fails_without_quoting_the_url() -> None:
    with pytest.raises(app.ChatPostError) as raised:
        app.post(f"http://127.0.0.1:9{HOOK_PATH}", {"text": "x"})

    assert "s3cr3t" not in str(raised.value)
    assert raised.value.__cause__ is None
