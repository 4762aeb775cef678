"""Injected faults, seen through python-gitlab and plain HTTP."""

from __future__ import annotations

import time

import gitlab
import pytest
import requests

from local.gitlab_sim import GitLabSimulator


def test_error_status_then_recovery(sim: GitLabSimulator) -> None:
    sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
    sim.inject_fault(r"^/projects/g%2Fapp$", method="GET", status=502, times=1)
    client = gitlab.Gitlab(sim.url, private_token=sim.admin_token)
    with pytest.raises(gitlab.GitlabGetError) as err:
        client.projects.get("g/app")
    assert err.value.response_code == 502
    assert client.projects.get("g/app").name == "app"


def test_rate_limit_carries_retry_after_and_clients_retry(sim: GitLabSimulator) -> None:
    sim.inject_fault(r"^/user$", status=429, retry_after=0, times=2)
    raw = requests.get(
        f"{sim.url}/api/v4/user", headers={"PRIVATE-TOKEN": sim.admin_token}, timeout=5
    )
    assert raw.status_code == 429
    assert raw.headers["Retry-After"] == "0"
    client = gitlab.Gitlab(sim.url, private_token=sim.admin_token, retry_transient_errors=True)
    client.auth()
    assert client.user is not None
    assert client.user.username == "root"


def test_latency_and_admin_only_controls(sim: GitLabSimulator) -> None:
    _, token = sim.create_user("dev")
    refused = requests.post(
        f"{sim.url}/api/v4/-/sim/faults",
        json={"status": 500},
        headers={"PRIVATE-TOKEN": token},
        timeout=5,
    )
    assert refused.status_code == 403
    added = requests.post(
        f"{sim.url}/api/v4/-/sim/faults",
        json={"path_pattern": "^/version$", "latency_s": 0.3},
        headers={"PRIVATE-TOKEN": sim.admin_token},
        timeout=5,
    )
    assert added.status_code == 201
    started = time.monotonic()
    assert (
        requests.get(
            f"{sim.url}/api/v4/version", headers={"PRIVATE-TOKEN": token}, timeout=5
        ).status_code
        == 200
    )
    assert time.monotonic() - started >= 0.3
    cleared = requests.delete(
        f"{sim.url}/api/v4/-/sim/faults", headers={"PRIVATE-TOKEN": sim.admin_token}, timeout=5
    )
    assert cleared.status_code == 204
    assert sim.faults.rules() == []


def test_scenario_endpoints(sim: GitLabSimulator) -> None:
    headers = {"PRIVATE-TOKEN": sim.admin_token}
    user = requests.post(
        f"{sim.url}/api/v4/-/sim/users",
        headers=headers,
        timeout=5,
        json={"username": "ooo", "status_message": "Out of office", "status_emoji": "palm_tree"},
    ).json()
    assert user["token"].startswith("glpat-")
    project = requests.post(
        f"{sim.url}/api/v4/-/sim/projects",
        headers=headers,
        timeout=5,
        json={"name": "app", "namespace": "g", "files": {"a.txt": "a\n"}, "members": {"ooo": 30}},
    ).json()
    mr = requests.post(
        f"{sim.url}/api/v4/-/sim/projects/{project['id']}/merge_requests",
        headers=headers,
        timeout=5,
        json={"source_branch": "t", "title": "T", "files": {"b.txt": "b\n"}, "author": "ooo"},
    ).json()
    assert (mr["iid"], mr["author"]["username"]) == (1, "ooo")
    rules = requests.put(
        f"{sim.url}/api/v4/-/sim/projects/{project['id']}/pipeline_rules",
        headers=headers,
        timeout=5,
        json={"fail_paths": ["x"]},
    ).json()
    assert rules["fail_paths"] == ["x"]
    status = requests.get(
        f"{sim.url}/api/v4/users/{user['id']}/status", headers=headers, timeout=5
    ).json()
    assert status["message"] == "Out of office"
