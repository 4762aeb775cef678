"""Rotating a connected project's webhook secret with the CLI, against the local stack and
the GitLab simulator: GitLab's hook gets the new token, the receiver takes its deliveries,
and running the command again finishes the same rotation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from typing import Any

import pytest

from local.stack import LocalStack
from merge_assist.adapters.aws import store_from_settings
from merge_assist.platform.errors import NotFoundError

pytestmark = pytest.mark.e2e

MAINTAINER = 40


def _cli(stack: LocalStack, *args: str) -> Any:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "project",
            *args,
            "--local",
            str(stack.config.data_dir),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _tracked(project_id: int, iid: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            store_from_settings().get_merge_request(project_id, iid)
        except NotFoundError:
            time.sleep(0.1)
            continue
        return True
    return False


def test_rotate_secret_moves_the_hook_to_a_new_token_without_refusals(stack: LocalStack) -> None:
    gitlab = stack.gitlab
    assert gitlab is not None
    project = gitlab.create_project(
        "ledger",
        namespace="acme",
        files={"README.md": "ledger\n"},
        members={stack.bot_username: MAINTAINER},
    )
    connected = _cli(stack, "add", "acme/ledger")

    rotated = _cli(stack, "rotate-secret", "acme/ledger")
    again = _cli(stack, "rotate-secret", str(project.id))

    [hook] = [h for h in gitlab.store.hooks.values() if h.project_id == project.id]
    assert rotated["secret_token"] != connected["secret_token"]
    assert hook.token == rotated["secret_token"]
    assert rotated["hook_id"] == connected["hook_id"]
    assert (rotated["resumed"], again["resumed"]) == (False, True)
    assert again["secret_token"] == rotated["secret_token"]
    stored = json.loads(
        stack.client("secretsmanager").get_secret_value(
            SecretId=stack.names.webhook_secret(project.id)
        )["SecretString"]
    )
    assert stored["previous_secret_token"] == connected["secret_token"]
    until = datetime.fromisoformat(stored["previous_valid_until"]).replace(microsecond=0)
    assert until == datetime.fromisoformat(rotated["previous_valid_until"])

    iid = gitlab.create_merge_request(
        project,
        "feature/entries",
        "Add entries",
        {"entries.py": "ENTRIES = []\n"},
        assignees=[stack.bot_username],
    )
    assert _tracked(project.id, iid)
    # Every delivery answered (a pipeline's may still be on its way when the MR is tracked).
    assert gitlab.wait_idle()
    deliveries = [d for d in gitlab.store.deliveries.values() if d.hook_id == hook.id]
    assert deliveries
    assert all(d.status_code is not None and d.status_code < 400 for d in deliveries)
