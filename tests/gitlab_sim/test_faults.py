"""Injected faults, seen through python-gitlab, plain HTTP and the git CLI, and the local
Lambda runtime's crash after a side effect."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import gitlab
import pytest
import requests

from local.gitlab_sim import GitLabSimulator
from local.runtime import LambdaRuntime, SandboxCrash, SideEffectCrashes
from merge_assist.platform.resources import FunctionSpec
from tests.gitlab_sim.conftest import HookReceiver


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


# -- probabilistic faults, git faults, webhooks, outages, lost answers ------------------------


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _clone_url(sim: GitLabSimulator, path: str = "g/app") -> str:
    return sim.url.replace("http://", f"http://oauth2:{sim.admin_token}@") + f"/{path}.git"


def _statuses(sim: GitLabSimulator, count: int) -> list[int]:
    headers = {"PRIVATE-TOKEN": sim.admin_token}
    with requests.Session() as session:
        return [
            session.get(f"{sim.url}/api/v4/version", headers=headers, timeout=5).status_code
            for _ in range(count)
        ]


def test_a_rate_fails_about_that_share_of_requests_the_same_way_every_run(
    sim: GitLabSimulator,
) -> None:
    sim.inject_fault(r"^/version$", status=503, rate=0.2, seed=7)
    first = _statuses(sim, 200)
    sim.clear_faults()
    sim.inject_fault(r"^/version$", status=503, rate=0.2, seed=7)
    again = _statuses(sim, 200)
    sim.clear_faults()
    sim.inject_fault(r"^/version$", status=503, rate=0.2, seed=8)
    other_seed = _statuses(sim, 200)

    assert set(first) == {200, 503}
    assert 20 <= first.count(503) <= 60
    assert again == first
    assert other_seed != first
    assert sim.faults.rules()[0].fired == other_seed.count(503)


def test_git_faults_apply_to_smart_http_and_rest_faults_do_not(
    sim: GitLabSimulator, tmp_path: Path
) -> None:
    sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
    sim.inject_fault(".*", status=503)  # the REST API only
    assert _git(tmp_path, "clone", _clone_url(sim), str(tmp_path / "one")).returncode == 0
    sim.clear_faults()

    sim.inject_fault(r"/info/refs$", status=429, retry_after=0, scope="git", times=1)
    refused = _git(tmp_path, "clone", _clone_url(sim), str(tmp_path / "two"))
    assert refused.returncode != 0
    assert "429" in refused.stderr
    assert _git(tmp_path, "clone", _clone_url(sim), str(tmp_path / "two")).returncode == 0
    client = gitlab.Gitlab(sim.url, private_token=sim.admin_token)
    assert client.projects.get("g/app").name == "app"


def test_a_push_carried_out_whose_answer_is_lost(sim: GitLabSimulator, tmp_path: Path) -> None:
    sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
    work = tmp_path / "work"
    assert _git(tmp_path, "clone", _clone_url(sim), str(work)).returncode == 0
    _git(work, "checkout", "-b", "topic")
    (work / "b.txt").write_text("b\n")
    _git(work, "add", "b.txt")
    _git(work, "commit", "-m", "Add b")
    head = _git(work, "rev-parse", "HEAD").stdout.strip()
    sim.inject_fault(r"git-receive-pack$", status=502, scope="git", after_effect=True, times=1)

    pushed = _git(work, "push", "origin", "topic")

    assert pushed.returncode != 0, pushed.stderr
    assert sim.branch_sha("g/app", "topic") == head  # GitLab took the push all the same
    assert sim.faults.rules()[0].fired == 1


def test_a_note_posted_whose_answer_is_lost_exists_once(sim: GitLabSimulator) -> None:
    project = sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
    iid = sim.create_merge_request(project, "topic", "Topic", {"b.txt": "b\n"})
    client = gitlab.Gitlab(sim.url, private_token=sim.admin_token)
    mr = client.projects.get(project.id).mergerequests.get(iid)
    sim.inject_fault(r"/notes$", status=502, after_effect=True, times=1)
    with pytest.raises(gitlab.GitlabCreateError) as err:
        mr.notes.create({"body": "first"})
    assert err.value.response_code == 502
    sim.inject_fault(r"/notes$", drop_connection=True, after_effect=True, times=1)
    with pytest.raises(requests.ConnectionError):
        mr.notes.create({"body": "second"})
    # Reads and failed writes are never "carried out then lost".
    sim.inject_fault(".*", status=502, after_effect=True)
    assert mr.notes.list(get_all=True)
    with pytest.raises(gitlab.GitlabCreateError) as refused:
        mr.notes.create({"body": ""})
    assert refused.value.response_code == 400

    bodies = [n.body for n in sim.store.merge_request(project.id, iid).notes if not n.system]
    assert bodies == ["first", "second"]


def test_webhooks_dropped_duplicated_and_reordered(
    sim: GitLabSimulator, receiver: HookReceiver
) -> None:
    project = sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
    sim.add_hook(project, receiver.url, events=("note",))
    iid = sim.create_merge_request(project, "topic", "Topic", {"b.txt": "b\n"})
    client = gitlab.Gitlab(sim.url, private_token=sim.admin_token)
    mr = client.projects.get(project.id).mergerequests.get(iid)

    def note(body: str) -> None:
        mr.notes.create({"body": body})

    def received() -> list[tuple[str, str]]:
        assert sim.wait_idle()
        return [
            (r.body["object_attributes"]["note"], r.headers["Idempotency-Key"])
            for r in receiver.events("Note Hook")
        ]

    sim.duplicate_webhooks("Note Hook", times=1)
    note("twice")
    [(first, key), (second, again)] = received()
    assert (first, second) == ("twice", "twice")
    assert key == again

    sim.clear_faults()
    sim.delay_webhooks("Note Hook", times=1)
    note("held back")
    note("overtakes it")
    assert [body for body, _ in received()[2:]] == ["overtakes it", "held back"]

    sim.clear_faults()
    sim.drop_webhooks("*", rate=0.5, seed=3)
    for n in range(20):
        note(f"n{n}")
    sent = len(received()) - 4
    dropped = [d for d in sim.deliveries() if d.dropped]
    assert sent + len(dropped) == 20
    assert 4 <= len(dropped) <= 16


def test_a_delivery_held_back_goes_out_alone_when_nothing_follows(
    sim: GitLabSimulator, receiver: HookReceiver
) -> None:
    project = sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
    sim.add_hook(project, receiver.url, events=("note",))
    iid = sim.create_merge_request(project, "topic", "Topic", {"b.txt": "b\n"})
    sim.delay_webhooks("Note Hook")
    gitlab.Gitlab(sim.url, private_token=sim.admin_token).projects.get(
        project.id
    ).mergerequests.get(iid).notes.create({"body": "alone"})
    assert sim.wait_idle(timeout=10)
    [alone] = receiver.events("Note Hook")
    assert alone.body["object_attributes"]["note"] == "alone"


def test_an_outage_answers_503_to_rest_and_git_holds_webhooks_and_ends(
    sim: GitLabSimulator, receiver: HookReceiver, tmp_path: Path
) -> None:
    project = sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
    sim.add_hook(project, receiver.url, events=("push",))
    headers = {"PRIVATE-TOKEN": sim.admin_token}

    sim.outage()
    sim.commit_files(project, "main", {"c.txt": "c\n"})  # GitLab's own work goes on
    assert requests.get(f"{sim.url}/api/v4/version", headers=headers, timeout=5).status_code == 503
    down = _git(tmp_path, "clone", _clone_url(sim), str(tmp_path / "down"))
    assert down.returncode != 0
    assert "503" in down.stderr
    # The controls stay up, so that an outage can be ended over HTTP.
    shown = requests.get(f"{sim.url}/api/v4/-/sim/faults/outage", headers=headers, timeout=5)
    assert shown.json()["active"] is True
    time.sleep(0.3)
    assert receiver.events("Push Hook") == []

    ended = requests.delete(f"{sim.url}/api/v4/-/sim/faults/outage", headers=headers, timeout=5)
    assert ended.status_code == 204
    assert requests.get(f"{sim.url}/api/v4/version", headers=headers, timeout=5).status_code == 200
    assert _git(tmp_path, "clone", _clone_url(sim), str(tmp_path / "up")).returncode == 0
    assert sim.wait_idle()
    assert len(receiver.events("Push Hook")) == 1


def test_an_outage_for_some_seconds_ends_by_itself(sim: GitLabSimulator) -> None:
    headers = {"PRIVATE-TOKEN": sim.admin_token}
    started = requests.post(
        f"{sim.url}/api/v4/-/sim/faults/outage",
        json={"seconds": 0.5, "retry_after": 1},
        headers=headers,
        timeout=5,
    )
    assert started.status_code == 201
    refused = requests.get(f"{sim.url}/api/v4/version", headers=headers, timeout=5)
    assert (refused.status_code, refused.headers["Retry-After"]) == (503, "1")
    # python-gitlab waits as told, and the outage is over by then.
    client = gitlab.Gitlab(sim.url, private_token=sim.admin_token, retry_transient_errors=True)
    version = client.http_get("/version")
    assert isinstance(version, dict)
    assert version["version"]
    assert sim.faults.outage() is None


def test_an_outage_that_refuses_connections(sim: GitLabSimulator) -> None:
    headers = {"PRIVATE-TOKEN": sim.admin_token}
    with requests.Session() as kept_alive:
        assert kept_alive.get(f"{sim.url}/api/v4/version", headers=headers, timeout=5).ok
        sim.outage(refuse=True)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{sim.url}/api/v4/version", headers=headers, timeout=5)
        # A connection opened before the outage gets no answer either.
        with pytest.raises(requests.ConnectionError):
            kept_alive.get(f"{sim.url}/api/v4/version", headers=headers, timeout=5)
        sim.end_outage()
        assert kept_alive.get(f"{sim.url}/api/v4/version", headers=headers, timeout=5).ok


def test_fault_controls_refuse_bad_input(sim: GitLabSimulator) -> None:
    headers = {"PRIVATE-TOKEN": sim.admin_token}
    for bad in (
        {"status": 503, "rate": 2},
        {"status": 503, "rate": "often"},
        {"status": 503, "scope": "ssh"},
        {"status": 200},
        {"after_effect": True},
        {"path_pattern": "(", "status": 503},
    ):
        answer = requests.post(
            f"{sim.url}/api/v4/-/sim/faults", json=bad, headers=headers, timeout=5
        )
        assert answer.status_code == 400, (bad, answer.text)
    refuse_forever = requests.post(
        f"{sim.url}/api/v4/-/sim/faults/outage", json={"refuse": True}, headers=headers, timeout=5
    )
    assert refuse_forever.status_code == 400
    assert sim.faults.rules() == []
    assert sim.faults.outage() is None

    added = requests.post(
        f"{sim.url}/api/v4/-/sim/faults",
        json={"status": 502, "scope": "all", "rate": 0.2, "seed": 4, "after_effect": True},
        headers=headers,
        timeout=5,
    )
    assert added.status_code == 201
    assert {k: added.json()[k] for k in ("scope", "rate", "seed", "after_effect")} == {
        "scope": "all",
        "rate": 0.2,
        "seed": 4,
        "after_effect": True,
    }
    duplicated = requests.post(
        f"{sim.url}/api/v4/-/sim/faults",
        json={"duplicate_webhook_event": "Pipeline Hook", "rate": 0.5},
        headers=headers,
        timeout=5,
    )
    assert duplicated.json()["duplicate_webhook_event"] == "Pipeline Hook"


# -- a Lambda that crashes after GitLab acted ---------------------------------------------------


def test_a_function_crashes_after_a_side_effect_and_lambda_reports_its_exit(
    sim: GitLabSimulator,
) -> None:
    project = sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
    iid = sim.create_merge_request(project, "topic", "Topic", {"b.txt": "b\n"})
    after_the_note: list[str] = []

    def handler(event: Any, context: Any) -> str:
        client = gitlab.Gitlab(sim.url, private_token=sim.admin_token)
        mr = client.projects.get(project.id).mergerequests.get(iid)
        try:
            mr.notes.create({"body": event["body"]})
        except Exception:  # a crash is no exception the handler can catch
            after_the_note.append("caught")
        after_the_note.append("ran on")
        return "done"

    runtime = LambdaRuntime("123456789012", "us-east-1")
    spec = FunctionSpec(key="noter", handler="unused.handler", description="posts a note")
    runtime.register("noter", spec, handler)
    with runtime.crashing_after_side_effects(sim.url, 1.0, functions=frozenset({"noter"})) as c:
        crashed = runtime.invoke("noter", {"body": "posted"})
        outside = gitlab.Gitlab(sim.url, private_token=sim.admin_token)
        outside.projects.get(project.id).mergerequests.get(iid).notes.create({"body": "test"})
    survived = runtime.invoke("noter", {"body": "after"})

    assert crashed.function_error == "Unhandled"
    assert crashed.json()["errorType"] == "Runtime.ExitError"
    assert after_the_note == ["ran on"]  # only the invocation after the block
    assert survived.json() == "done"
    assert [(x.function, x.method) for x in c.crashes] == [("noter", "POST")]
    notes = [n.body for n in sim.store.merge_request(project.id, iid).notes if not n.system]
    assert notes == ["posted", "test", "after"]
    runtime.shutdown()


def test_crashes_after_side_effects_are_seeded() -> None:
    def pattern(seed: int) -> list[bool]:
        crashes = SideEffectCrashes("http://127.0.0.1:1", 0.3, seed=seed)
        fired = []
        for _ in range(100):
            try:
                crashes.after("f", "PUT", "/api/v4/projects/1/merge_requests/1", 200)
                fired.append(False)
            except SandboxCrash:
                fired.append(True)
        # Reads, fetches and refused writes never crash.
        crashes.after("f", "GET", "/api/v4/projects/1", 200)
        crashes.after("f", "POST", "/g/app.git/git-upload-pack", 200)
        crashes.after("f", "POST", "/api/v4/projects/1/merge_requests/1/notes", 400)
        return fired

    assert pattern(1) == pattern(1)
    assert pattern(1) != pattern(2)
    assert 15 <= sum(pattern(1)) <= 45


def test_a_force_push_rewrites_the_branch_and_says_so_in_its_push_hook(
    sim: GitLabSimulator, receiver: HookReceiver
) -> None:
    project = sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
    base = sim.branch_sha(project, "main")
    assert base is not None
    first = sim.commit_files(project, "main", {"fix.txt": "first try\n"}, skip_ci=True)
    sim.add_hook(project, receiver.url, events=("push",))

    amended = sim.force_push(project, "main", {"fix.txt": "amended\n"}, onto=base)

    assert sim.branch_sha(project, "main") == amended
    assert sim.read_file(project, "main", "fix.txt") == b"amended\n"
    with sim.store.lock:
        parents = sim.store.repo(project.id)[amended.encode()].parents  # type: ignore[attr-defined]
    assert [p.decode() for p in parents] == [base]
    assert sim.wait_idle()
    [hook] = receiver.events("Push Hook")
    assert (hook.body["before"], hook.body["after"]) == (first, amended)
