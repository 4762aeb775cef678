"""Project hooks: GitLab's headers and payload shapes, the failure rules and resending."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import gitlab
import pytest
import requests

from local.gitlab_sim import GitLabSimulator
from tests.gitlab_sim.conftest import HookReceiver


def _wait_for(predicate: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(0.02)
    return False


def test_merge_request_note_pipeline_and_push_events(
    sim: GitLabSimulator, gl: gitlab.Gitlab, receiver: HookReceiver
) -> None:
    sim.create_user("dev")
    project = sim.create_project("app", namespace="g", files={"a.txt": "a\n"}, members={"dev": 30})
    sim.add_hook(project, receiver.url, token="s3cret")
    iid = sim.create_merge_request(
        project, "topic", "Add b", {"b.txt": "b\n"}, author="dev", labels=["x"]
    )
    mr = gl.projects.get("g/app").mergerequests.get(iid)
    mr.notes.create({"body": "hello"})
    assert sim.wait_idle()
    # GitLab's deliveries overlap and keep no order: each event is looked up by what it is.
    [opened] = [
        e
        for e in receiver.events("Merge Request Hook")
        if e.body["object_attributes"]["action"] == "open"
    ]
    headers, body = opened.headers, opened.body
    assert headers["X-Gitlab-Token"] == "s3cret"
    assert headers["User-Agent"].startswith("GitLab/")
    assert headers["X-Gitlab-Instance"] == sim.url
    for name in ("X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID", "Idempotency-Key"):
        assert headers[name]
    assert (body["object_kind"], body["event_type"]) == ("merge_request", "merge_request")
    attributes = body["object_attributes"]
    assert (attributes["action"], attributes["iid"], attributes["source_branch"]) == (
        "open",
        iid,
        "topic",
    )
    assert body["user"]["username"] == "dev"
    assert body["labels"][0]["title"] == "x"
    assert body["project"]["path_with_namespace"] == "g/app"
    assert body["repository"]["name"] == "app"
    note = receiver.events("Note Hook")[0].body
    assert note["object_attributes"]["note"] == "hello"
    assert note["merge_request"]["iid"] == iid
    statuses = [e.body["object_attributes"]["status"] for e in receiver.events("Pipeline Hook")]
    assert {"running", "success"} <= set(statuses)
    [pipeline] = [
        e.body
        for e in receiver.events("Pipeline Hook")
        if e.body["object_attributes"]["status"] == "success"
    ]
    assert pipeline["merge_request"]["iid"] == iid
    assert {b["name"] for b in pipeline["builds"]} == {"build", "test"}
    pushes, updates = len(receiver.events("Push Hook")), len(receiver.events("Merge Request Hook"))
    sim.commit_files(project, "topic", {"c.txt": "c\n"}, message="Add c")
    assert sim.wait_idle()
    [push] = [e.body for e in receiver.events("Push Hook")[pushes:]]
    assert (push["object_kind"], push["ref"], push["commits"][0]["added"]) == (
        "push",
        "refs/heads/topic",
        ["c.txt"],
    )
    [update] = [
        e.body["object_attributes"]
        for e in receiver.events("Merge Request Hook")[updates:]
        if e.body["object_attributes"]["action"] == "update"
    ]
    assert update["oldrev"]


def test_changes_are_reported_on_update(
    sim: GitLabSimulator, gl: gitlab.Gitlab, receiver: HookReceiver
) -> None:
    project = sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
    sim.add_hook(project, receiver.url, events=("merge_requests",))
    iid = sim.create_merge_request(project, "topic", "Old", {"b.txt": "b\n"})
    mr = gl.projects.get("g/app").mergerequests.get(iid)
    mr.title = "New"
    mr.labels = ["ready"]
    mr.save()
    assert sim.wait_idle()
    changes = receiver.events("Merge Request Hook")[-1].body["changes"]
    assert changes["title"] == {"previous": "Old", "current": "New"}
    assert [lb["title"] for lb in changes["labels"]["current"]] == ["ready"]
    assert receiver.events("Push Hook") == []


def test_failing_hook_is_disabled_after_four_failures(
    tmp_path: Path, receiver: HookReceiver
) -> None:
    # On the real clock: the disable lasts one minute, which the fast clock of the other
    # tests would let lapse before a loaded machine reads the hook back.
    with GitLabSimulator(tmp_path / "gitlab", time_scale=1.0) as sim:
        gl = gitlab.Gitlab(sim.url, private_token=sim.admin_token)
        project = sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
        hook = sim.add_hook(project, receiver.url, events=("push",))
        receiver.status = 500
        for number in range(6):
            sim.commit_files(project, "main", {"a.txt": f"{number}\n"}, skip_ci=True)
            assert _wait_for(sim.webhooks.idle)
        assert len(receiver.events("Push Hook")) == 4
        assert gl.projects.get("g/app").hooks.get(hook.id).alert_status == "temporarily_disabled"
        skipped = [d for d in sim.deliveries(hook.id) if d.error == "hook disabled"]
        assert len(skipped) == 2


def test_resend_keeps_the_idempotency_key(sim: GitLabSimulator, receiver: HookReceiver) -> None:
    project = sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
    hook = sim.add_hook(project, receiver.url, events=("push",))
    sim.commit_files(project, "main", {"a.txt": "b\n"}, skip_ci=True)
    assert _wait_for(lambda: len(receiver.events("Push Hook")) == 1)
    original = sim.deliveries(hook.id)[0]
    response = requests.post(
        f"{sim.url}/api/v4/-/sim/deliveries/{original.id}/resend",
        headers={"PRIVATE-TOKEN": sim.admin_token},
        timeout=5,
    )
    assert response.status_code == 201
    assert _wait_for(lambda: len(receiver.events("Push Hook")) == 2)
    first, second = receiver.events("Push Hook")
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert first.body == second.body


def test_dropped_webhooks_are_not_sent(sim: GitLabSimulator, receiver: HookReceiver) -> None:
    project = sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
    sim.add_hook(project, receiver.url, events=("push",))
    sim.drop_webhooks("Push Hook", times=1)
    sim.commit_files(project, "main", {"a.txt": "1\n"}, skip_ci=True)
    sim.commit_files(project, "main", {"a.txt": "2\n"}, skip_ci=True)
    assert sim.wait_idle()
    pushes = receiver.events("Push Hook")
    assert len(pushes) == 1
    assert pushes[0].body["after"] == sim.branch_sha(project, "main")


class GatedReceiver:
    """A hook endpoint that holds every request until ``gate`` is set, and answers
    ``status``; ``arrived`` counts the requests that reached it."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.gate = threading.Event()
        self.arrivals = threading.Semaphore(0)
        self.lock = threading.Lock()
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.received.append(json.loads(body))
                receiver.arrivals.release()
                receiver.gate.wait(timeout=30)
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def wait_for_arrivals(self, count: int, timeout: float = 10.0) -> bool:
        """True once ``count`` requests are inside at the same time (none answered yet,
        while the gate is shut)."""
        return all(self.arrivals.acquire(timeout=timeout) for _ in range(count))

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def gated() -> Iterator[GatedReceiver]:
    receiver = GatedReceiver()
    yield receiver
    receiver.close()


def test_deliveries_to_one_hook_are_in_flight_at_the_same_time(
    sim: GitLabSimulator, gated: GatedReceiver
) -> None:
    project = sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
    sim.add_hook(project, gated.url, events=("push",))
    sim.commit_files(project, "main", {"a.txt": "1\n"}, skip_ci=True)
    sim.commit_files(project, "main", {"a.txt": "2\n"}, skip_ci=True)

    # Both reach the receiver while neither has been answered: one worker sending one
    # delivery after the other would never get the second one here.
    assert gated.wait_for_arrivals(2)
    assert not sim.webhooks.idle()
    gated.gate.set()
    assert _wait_for(sim.webhooks.idle)
    assert {body["after"] for body in gated.received} == {d.body["after"] for d in sim.deliveries()}
    assert all(d.sent and d.status_code == 200 for d in sim.deliveries())


def test_idle_waits_for_the_delivery_in_flight(tmp_path: Path, gated: GatedReceiver) -> None:
    with GitLabSimulator(tmp_path / "gitlab", time_scale=0.001, webhook_workers=1) as sim:
        project = sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
        sim.add_hook(project, gated.url, events=("push",))
        sim.commit_files(project, "main", {"a.txt": "1\n"}, skip_ci=True)
        assert gated.wait_for_arrivals(1)
        # Taken off the queue, not yet answered: still not idle.
        assert sim.webhooks._queue.empty()
        assert not sim.webhooks.idle()
        gated.gate.set()
        assert _wait_for(sim.webhooks.idle)
        [delivery] = sim.deliveries()
        assert delivery.sent


def test_concurrent_failures_disable_the_hook_at_the_documented_count(
    tmp_path: Path, gated: GatedReceiver
) -> None:
    gated.status = 500
    # The real clock: the minute of disabling must outlast the assertions.
    with GitLabSimulator(tmp_path / "gitlab", time_scale=1.0, webhook_workers=8) as sim:
        project = sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
        hook = sim.add_hook(project, gated.url, events=("push",))
        for number in range(6):
            sim.commit_files(project, "main", {"a.txt": f"{number}\n"}, skip_ci=True)
        # All six were sent while the hook could still be executed; they fail together.
        assert gated.wait_for_arrivals(6)
        gated.gate.set()
        assert _wait_for(sim.webhooks.idle)
        with sim.store.lock:
            stored = sim.store.hooks[hook.id]
            failures, backoffs = stored.recent_failures, stored.backoff_count
            disabled_for = (stored.disabled_until or 0.0) - sim.store.monotonic()
        # The fourth failure disabled it for the first minute; the two that failed after
        # it, with the hook disabled, do not count (nor double the back-off).
        assert (failures, backoffs) == (4, 1)
        assert 0 < disabled_for <= 60
        gl = gitlab.Gitlab(sim.url, private_token=sim.admin_token)
        assert gl.projects.get("g/app").hooks.get(hook.id).alert_status == "temporarily_disabled"
        assert len(gated.received) == 6
        sim.commit_files(project, "main", {"a.txt": "later\n"}, skip_ci=True)
        assert _wait_for(sim.webhooks.idle)
        assert sim.deliveries(hook.id)[-1].error == "hook disabled"
        assert len(gated.received) == 6


def test_a_delivery_queued_before_its_hook_was_disabled_is_not_sent(
    tmp_path: Path, gated: GatedReceiver
) -> None:
    gated.status = 500
    # One worker: the fifth delivery is taken only after the fourth failure was counted.
    with GitLabSimulator(tmp_path / "gitlab", time_scale=1.0, webhook_workers=1) as sim:
        project = sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
        hook = sim.add_hook(project, gated.url, events=("push",))
        for number in range(5):
            sim.commit_files(project, "main", {"a.txt": f"{number}\n"}, skip_ci=True)
        # All five were queued while the hook was executable.
        assert gated.wait_for_arrivals(1)
        assert all(d.error is None for d in sim.deliveries(hook.id))
        gated.gate.set()
        assert _wait_for(sim.webhooks.idle)
        last = sim.deliveries(hook.id)[-1]
        assert (last.sent, last.error) == (False, "hook disabled")
        assert len(gated.received) == 4
