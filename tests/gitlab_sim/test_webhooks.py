"""Project hooks: GitLab's headers and payload shapes, the failure rules and resending."""

from __future__ import annotations

import time
from pathlib import Path

import gitlab
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
    opened = receiver.events("Merge Request Hook")[0]
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
    assert statuses[-1] == "success"
    assert "running" in statuses
    pipeline = receiver.events("Pipeline Hook")[-1].body
    assert pipeline["merge_request"]["iid"] == iid
    assert {b["name"] for b in pipeline["builds"]} == {"build", "test"}
    sim.commit_files(project, "topic", {"c.txt": "c\n"}, message="Add c")
    assert sim.wait_idle()
    push = receiver.events("Push Hook")[-1].body
    assert (push["object_kind"], push["ref"], push["commits"][0]["added"]) == (
        "push",
        "refs/heads/topic",
        ["c.txt"],
    )
    update = receiver.events("Merge Request Hook")[-1].body["object_attributes"]
    assert update["action"] == "update"
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
