"""Where the notify function posts, read from its configuration: the chat service's kind,
the runbook's address and the webhook URL, kept in a Secrets Manager secret and read once
per warm container (the composition root)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

import boto3

from merge_assist.adapters.aws import register_cache
from merge_assist.admin.notify import ChatKind
from merge_assist.platform.resources import ENV_PREFIX

CHAT_KIND_ENV = f"{ENV_PREFIX}CHAT_KIND"
WEBHOOK_SECRET_ENV = f"{ENV_PREFIX}CHAT_WEBHOOK_SECRET"
RUNBOOK_URL_ENV = f"{ENV_PREFIX}RUNBOOK_URL"


@dataclass(frozen=True)
class Chat:
    # A credential (whoever has it can post to the channel): never logged.
    url: str
    kind: str
    runbook_base_url: str

    def __repr__(self) -> str:
        return f"Chat(kind={self.kind!r}, runbook_base_url={self.runbook_base_url!r})"


@cache
def webhook_url(secret_id: str) -> str:
    value = boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)
    return str(value["SecretString"]).strip()


def chat() -> Chat:
    """``KeyError`` when the function is not given its webhook's secret."""
    return Chat(
        url=webhook_url(os.environ[WEBHOOK_SECRET_ENV]),
        kind=os.environ.get(CHAT_KIND_ENV, ChatKind.SLACK.value),
        runbook_base_url=os.environ.get(RUNBOOK_URL_ENV, ""),
    )


register_cache(webhook_url.cache_clear)
