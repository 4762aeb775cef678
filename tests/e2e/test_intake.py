"""A GitLab (simulator) project wired to the local stack end to end: connect it with the
CLI, open an MR in GitLab, and its event reaches the project's queue and the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from local.stack import LocalStack
from merge_assist.adapters.aws import store_from_settings
from merge_assist.audit import AuditAction
from merge_assist.platform.access import Grant, Role
from merge_assist.platform.errors import NotFoundError
from merge_assist.platform.resources import (
    PROJECT_ALARM_SLUGS,
    PROJECT_DEAD_LETTERS_ALARM,
    PROJECT_QUEUE_AGE_ALARM,
    project_alarm_name,
)
from merge_assist.queue.models import MergeRequestState, StatusCategory

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


def _wait_for(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (NotFoundError, AssertionError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("not reached in time")
        time.sleep(0.1)


def _project(stack: LocalStack, name: str) -> Any:
    """A simulator project under ``acme/`` that the bot maintains."""
    gitlab = stack.gitlab
    assert gitlab is not None
    return gitlab.create_project(
        name,
        namespace="acme",
        files={"README.md": f"{name}\n"},
        members={stack.bot_username: MAINTAINER},
    )


def _tracked(project_id: int, iid: int) -> Callable[[], MergeRequestState]:
    return lambda: store_from_settings().get_merge_request(project_id, iid)


def test_connected_project_events_reach_the_store(stack: LocalStack) -> None:
    gitlab = stack.gitlab
    assert gitlab is not None
    project = _project(stack, "shop")

    first = _cli(stack, "add", "acme/shop", "--batch-size", "3")
    again = _cli(stack, "add", str(project.id), "--batch-size", "9")

    assert first["created"] is True
    assert again["created"] is False
    assert again["secret_token"] == first["secret_token"]
    assert again["config"]["batch_size"] == 3  # a connected project keeps its config
    hooks = [h for h in gitlab.store.hooks.values() if h.project_id == project.id]
    assert [h.url for h in hooks] == [first["webhook_url"]]
    assert hooks[0].token == first["secret_token"]
    alarms = stack.client("cloudwatch").describe_alarms(
        AlarmNamePrefix=f"{stack.names.prefix}-project-"
    )["MetricAlarms"]
    by_name = {alarm["AlarmName"]: alarm for alarm in alarms}
    dead_letters = by_name[project_alarm_name(stack.names, PROJECT_DEAD_LETTERS_ALARM, project.id)]
    age = by_name[project_alarm_name(stack.names, PROJECT_QUEUE_AGE_ALARM, project.id)]
    assert dead_letters["Dimensions"] == [
        {"Name": "QueueName", "Value": stack.names.project_dead_letter_queue(project.id)}
    ]
    assert age["Dimensions"] == [
        {"Name": "QueueName", "Value": stack.names.project_queue(project.id)}
    ]

    iid = gitlab.create_merge_request(
        project,
        "feature/cart",
        "Add a cart",
        {"cart.py": "CART = []\n"},
        assignees=[stack.bot_username],
        labels=["backend"],
    )
    state = _wait_for(_tracked(project.id, iid))

    assert state.target_branch == "main"
    assert state.source_branch == "feature/cart"
    assert state.sha == gitlab.branch_sha(project, "feature/cart")
    assert state.labels == ["backend"]
    assert state.gitlab_state == "opened"

    listed = _cli(stack, "list")
    assert [p["project_id"] for p in listed] == [project.id]


def test_watcher_recovers_an_event_whose_webhook_was_lost(stack: LocalStack) -> None:
    gitlab = stack.gitlab
    assert gitlab is not None
    project = _project(stack, "billing")
    _cli(stack, "add", "acme/billing")
    gitlab.drop_webhooks("*")
    try:
        iid = gitlab.create_merge_request(
            project,
            "feature/invoice",
            "Invoices",
            {"invoice.py": "X = 1\n"},
            assignees=[stack.bot_username],
        )
        gitlab.wait_idle()
        time.sleep(0.5)
        with pytest.raises(NotFoundError):
            _tracked(project.id, iid)()

        response = stack.client("lambda").invoke(
            FunctionName=stack.names.function("watcher"), Payload=b"{}"
        )
        assert "FunctionError" not in response, response["Payload"].read()
    finally:
        gitlab.clear_faults()

    state = _wait_for(_tracked(project.id, iid))
    assert state.sha == gitlab.branch_sha(project, "feature/invoice")
    assert state.last_event_kind == "reconcile"


def test_removing_a_project_removes_what_connecting_created(stack: LocalStack) -> None:
    gitlab = stack.gitlab
    assert gitlab is not None
    project = _project(stack, "legacy")
    connected = _cli(stack, "add", "acme/legacy")
    store = store_from_settings()
    store.save_grant(
        Grant(username="dev", project_id=project.id, roles=[Role.VIEWER], granted_by="x")
    )
    logged = [entry.action for entry in store.list_audit(project.id, limit=10)[0]]
    assert AuditAction.PROJECT_CONNECTED in logged

    _cli(stack, "remove", "acme/legacy")
    _cli(stack, "remove", "acme/legacy")  # twice is harmless

    # As the API's disconnect: nobody keeps a role on the project for a later reconnection.
    assert store.list_grants(project.id) == []

    assert [h for h in gitlab.store.hooks.values() if h.project_id == project.id] == []
    sqs = stack.client("sqs")
    queues = sqs.list_queues(QueueNamePrefix=stack.names.project_queue_prefix).get("QueueUrls", [])
    assert not [q for q in queues if f"-{project.id}" in q]
    with pytest.raises(sqs.exceptions.ClientError):
        stack.client("secretsmanager").get_secret_value(
            SecretId=stack.names.webhook_secret(project.id)
        )
    with pytest.raises(NotFoundError):
        store_from_settings().get_project(project.id)
    assert connected["webhook_url"].endswith("/webhook/gitlab")
    alarms = stack.client("cloudwatch").describe_alarms(
        AlarmNames=[
            project_alarm_name(stack.names, slug, project.id) for slug in PROJECT_ALARM_SLUGS
        ]
    )["MetricAlarms"]
    assert alarms == []


def test_resuming_a_paused_project_starts_its_queue(stack: LocalStack) -> None:
    gitlab = stack.gitlab
    assert gitlab is not None
    project = _project(stack, "ledger")
    gitlab.set_pipeline_rules(project, pending_s=1, duration_s=10)
    _cli(stack, "add", "acme/ledger")
    paused = _cli(stack, "config", "acme/ledger", "--pause")
    assert paused["paused"] is True
    iid = gitlab.create_merge_request(
        project,
        "feature/ledger",
        "Add a ledger",
        {"ledger.py": "L = []\n"},
        assignees=[stack.bot_username],
    )
    _wait_for(lambda: _tracked(project.id, iid)().status is StatusCategory.QUEUED)
    time.sleep(1.0)
    assert store_from_settings().get_branch_lock(project.id, "main") is None

    resumed = _cli(stack, "config", "acme/ledger", "--resume")

    assert resumed["paused"] is False
    _wait_for(lambda: _tracked(project.id, iid)().status is StatusCategory.MERGED, timeout=60)
    assert gitlab.merge_request(project, iid)["state"] == "merged"
