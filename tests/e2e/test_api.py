"""The dashboard API end to end: Cognito tokens from the local user pool, the HTTP front's
JWT authorizer, the real handler, onboarding against the GitLab simulator and the queue."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from local.stack import LocalStack
from tests.e2e.merge_queue import DEVELOPER, MAINTAINER

pytestmark = pytest.mark.e2e

STACK_SETTINGS = {"schedule_scale": 0.01}


class Client:
    def __init__(self, stack: LocalStack, group: str) -> None:
        assert stack.provisioned is not None
        user = next(u for u in stack.provisioned.demo_users if u.group == group)
        self.username = user.username
        self._base = f"{stack.url}/api/v1"
        self._token = stack.sign_in(user.username, user.password)["access_token"]

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method,
            f"{self._base}{path}",
            headers={"Authorization": f"Bearer {self._token}"},
            timeout=30,
            **kwargs,
        )


def _wait(condition: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError("timed out")


def test_admin_connects_grants_and_the_roles_apply(stack: LocalStack) -> None:
    gitlab = stack.gitlab
    assert gitlab is not None
    gitlab.create_user("dev", name="Developer")
    project = gitlab.create_project(
        "dashboard",
        namespace="e2e",
        files={"README.md": "# app\n"},
        members={stack.bot_username: MAINTAINER, "dev": DEVELOPER},
    )
    gitlab.set_pipeline_rules(project, pending_s=1, duration_s=10, flaky_rate=0.0)
    admin = Client(stack, "admin")
    manager = Client(stack, "priority_manager")
    owner = Client(stack, "project_owner")
    viewer = Client(stack, "viewer")

    connected = admin(
        "POST", "/projects", json={"project": "e2e/dashboard", "settings": {"paused": True}}
    )
    again = admin("POST", "/projects", json={"project": "e2e/dashboard"})
    refused = owner("POST", "/projects", json={"project": "e2e/dashboard"})
    unknown = admin("POST", "/projects", json={"project": "e2e/nowhere"})

    assert connected.status_code == 201, connected.text
    assert again.status_code == 200
    assert refused.status_code == 403
    assert unknown.status_code == 404
    assert "secret_token" not in connected.text
    hooks = [h for h in gitlab.store.hooks.values() if h.project_id == project.id]
    assert [hook.url for hook in hooks] == [f"{stack.url}/webhook/gitlab"]
    pid = project.id

    # Not granted yet: nothing to see.
    assert viewer("GET", "/projects").json() == []
    assert viewer("GET", f"/projects/{pid}").status_code == 403
    for client, role in (
        (manager, "priority_manager"),
        (owner, "project_owner"),
        (viewer, "viewer"),
    ):
        granted = admin("PUT", f"/projects/{pid}/grants/{client.username}", json={"roles": [role]})
        assert granted.status_code == 200, granted.text
    assert [p["config"]["project_id"] for p in viewer("GET", "/projects").json()] == [pid]

    for n in range(3):
        gitlab.create_merge_request(
            project,
            f"feature-{n}",
            f"Feature {n}",
            {f"f{n}.txt": f"{n}\n"},
            author="dev",
            assignees=[stack.bot_username],
        )

    def queued() -> list[int]:
        answer = viewer("GET", f"/projects/{pid}/mrs", params={"category": "queued"})
        assert answer.status_code == 200
        items = sorted(answer.json()["items"], key=lambda v: v["position"])
        return [v["merge_request"]["iid"] for v in items]

    _wait(lambda: len(queued()) == 3)
    # They queue in the order their pipelines finished; the last one is moved to the front.
    first_mr, second_mr, last_mr = queued()
    refused_move = viewer(
        "POST", f"/projects/{pid}/mrs/{last_mr}/priority", json={"before": first_mr}
    )
    assert refused_move.status_code == 403
    moved = manager("POST", f"/projects/{pid}/mrs/{last_mr}/priority", json={"before": first_mr})
    assert moved.status_code == 200, moved.text
    assert queued() == [last_mr, first_mr, second_mr]

    assert manager("PUT", f"/projects/{pid}/config", json={"batch_size": 2}).status_code == 403
    resumed = owner("PUT", f"/projects/{pid}/config", json={"batch_size": 2, "paused": False})
    assert resumed.status_code == 200, resumed.text

    def merged() -> list[int]:
        answer = viewer("GET", f"/projects/{pid}/mrs", params={"category": "merged"})
        return [v["merge_request"]["iid"] for v in answer.json()["items"]]

    _wait(lambda: len(merged()) == 3, timeout=120)
    batches = viewer("GET", f"/projects/{pid}/batches").json()
    assert len(batches) == 2
    # Oldest batch: the moved MR first, and only two (the new batch size).
    first = batches[-1]
    assert first["merge_requests"] == [last_mr, first_mr]
    detail = viewer("GET", f"/batches/{first['id']}").json()
    assert detail["steps"][0]["kind"] == "selected"
    assert detail["steps"][-1]["kind"] in ("landed", "released")

    actions = [
        e["action"]
        for e in viewer("GET", f"/projects/{pid}/events", params={"limit": 200}).json()["items"]
    ]
    assert {"project_connected", "grant_changed", "priority_changed", "config_changed"} <= set(
        actions
    )

    health = viewer("GET", "/health").json()
    [mine] = health["projects"]
    assert mine["project_id"] == pid
    assert mine["queue"]["dead_letters"] == 0
    assert health["gitlab"]["reachable"] is True

    assert owner("DELETE", f"/projects/{pid}").status_code == 403
    assert admin("DELETE", f"/projects/{pid}").status_code == 204
    assert [h for h in gitlab.store.hooks.values() if h.project_id == project.id] == []
    assert admin("GET", f"/projects/{pid}").status_code == 404
    assert viewer("GET", "/projects").json() == []
