"""Project hooks: GitLab's payloads, built when the event happens, delivered by a pool of
workers (GitLab's Sidekiq runs each delivery as its own job, so deliveries overlap and
nothing orders those of one hook) with GitLab's headers and failure rules (4 failures in a
row disable a hook for 1 minute doubling up to 24 hours, 40 disable it for good, nothing is
redelivered automatically; a manual resend keeps the Idempotency-Key).

Injected delivery faults (``faults.py``) drop a delivery, send it twice, or hold it back
until the next one has been sent (or ``HOLD_BACK_MAX_S`` passed, when none follows); while
GitLab is down, deliveries wait."""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from local.gitlab_sim import gitops
from local.gitlab_sim.models import Delivery, Hook, MergeRequest, Pipeline, Project
from local.gitlab_sim.serializers import Serializer
from local.gitlab_sim.store import GITLAB_VERSION, Event, NotFound, Store, now_iso

log = logging.getLogger(__name__)

TEMPORARY_DISABLE_AFTER = 4
PERMANENT_DISABLE_AFTER = 40
FIRST_BACKOFF_S = 60.0
MAX_BACKOFF_S = 24 * 3600.0
DELIVERY_TIMEOUT_S = 10.0
# Deliveries in flight at once, as many Sidekiq threads as a small GitLab gives its hooks.
DELIVERY_WORKERS = 8
# Real seconds a delivery held back for reordering waits for a next one to overtake it.
HOLD_BACK_MAX_S = 2.0
IDLE_WAIT_S = 0.05
STATE_IDS = {"opened": 1, "closed": 2, "merged": 3, "locked": 4}


@dataclass
class WebhookService:
    store: Store
    serializer: Serializer
    # What an injected fault does to a delivery of this event: "drop", "duplicate",
    # "delay" or None.
    fault: Callable[[str], str | None] = lambda _event: None
    # True while GitLab is down: nothing is delivered.
    held: Callable[[], bool] = lambda: False
    workers: int = DELIVERY_WORKERS
    # Every queued delivery counts as unfinished until its worker is done with it, so an
    # empty queue with nothing unfinished means nothing is in flight either.
    _queue: queue.Queue[int] = field(default_factory=queue.Queue)
    # Deliveries held back for reordering, with when they were held.
    _held_back: list[tuple[int, float]] = field(default_factory=list)
    # Held-back deliveries queued only once the delivery overtaking them was sent: with
    # several workers, queueing them at the same time would let them arrive first.
    _overtaken: dict[int, list[int]] = field(default_factory=dict)
    _held_lock: threading.Lock = field(default_factory=threading.Lock)
    # Resent by hand: sent even to a disabled hook, as GitLab's forced execution is.
    _manual: set[int] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"webhook deliveries need at least one worker, not {self.workers}")

    # --- events → deliveries ----------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Store listener: runs under the store lock, so the payload is a snapshot."""
        store = self.store
        hooks = [
            h
            for h in store.hooks.values()
            if h.project_id == event.project_id and getattr(h, event.kind, False)
        ]
        if not hooks:
            return
        try:
            body = self.payload(event)
        except NotFound:
            return
        for hook in hooks:
            self._enqueue(hook, event.event_name, body, uuid.uuid4().hex)

    def resend(self, delivery_id: int) -> Delivery:
        with self.store.lock:
            original = self.store.deliveries[delivery_id]
            hook = self.store.hooks[original.hook_id]
            return self._enqueue(
                hook,
                original.event_name,
                original.body,
                original.idempotency_key,
                event_uuid=original.event_uuid,
                manual=True,
            )

    def _enqueue(
        self,
        hook: Hook,
        event_name: str,
        body: dict[str, Any],
        key: str,
        *,
        event_uuid: str | None = None,
        manual: bool = False,
    ) -> Delivery:
        delivery = self._record(hook, event_name, body, key, event_uuid or uuid.uuid4().hex)
        if not manual and hook.alert_status(self.store.monotonic()) != "executable":
            delivery.error = "hook disabled"
            return delivery
        if manual:
            self._manual.add(delivery.id)
        action = None if manual else self.fault(event_name)
        if action == "drop":
            delivery.dropped = True
        elif action == "delay":
            delivery.held_back = True
            with self._held_lock:
                self._held_back.append((delivery.id, time.monotonic()))
        else:
            self._send(delivery.id)
            if action == "duplicate":
                again = self._record(hook, event_name, body, key, delivery.event_uuid)
                again.duplicate_of = delivery.id
                self._send(again.id)
        return delivery

    def _record(
        self, hook: Hook, event_name: str, body: dict[str, Any], key: str, event_uuid: str
    ) -> Delivery:
        delivery = Delivery(
            id=self.store.next_id("delivery"),
            hook_id=hook.id,
            event_name=event_name,
            body=body,
            idempotency_key=key,
            event_uuid=event_uuid,
            created_at=now_iso(),
        )
        self.store.deliveries[delivery.id] = delivery
        return delivery

    def _send(self, delivery_id: int) -> None:
        """Queues a delivery; those held back go once it was sent, overtaken."""
        with self._held_lock:
            held, self._held_back = self._held_back, []
            if held:
                self._overtaken[delivery_id] = [held_id for held_id, _since in held]
        self._queue.put(delivery_id)

    def _release_overtaken(self, delivery_id: int) -> None:
        with self._held_lock:
            overtaken = self._overtaken.pop(delivery_id, [])
        for held_id in overtaken:
            self._queue.put(held_id)

    def _release_overdue(self) -> None:
        now = time.monotonic()
        with self._held_lock:
            overdue = [d for d, since in self._held_back if now - since >= HOLD_BACK_MAX_S]
            self._held_back = [(d, s) for d, s in self._held_back if d not in overdue]
        for delivery_id in overdue:
            self._queue.put(delivery_id)

    # --- delivery workers -------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._run, name=f"gitlab-sim-webhooks-{n}", daemon=True)
            for n in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        # A worker finishes the delivery it is sending: at most one timeout for them all.
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S + 2
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._threads = []

    def idle(self) -> bool:
        """Nothing queued, held back or being sent."""
        with self._held_lock:
            holding = bool(self._held_back)
        return self._queue.unfinished_tasks == 0 and not holding

    def _run(self) -> None:
        # One session per worker: a requests.Session is not meant to be shared by threads.
        with requests.Session() as session:
            while not self._stop.is_set():
                self._release_overdue()
                try:
                    delivery_id = self._queue.get(timeout=IDLE_WAIT_S)
                except queue.Empty:
                    continue
                try:
                    while self.held() and not self._stop.is_set():
                        self._stop.wait(IDLE_WAIT_S)
                    self._deliver(session, delivery_id)
                except Exception:
                    log.exception("webhook delivery %s failed unexpectedly", delivery_id)
                finally:
                    # Queued before this one is done, so idle() never sees a gap between.
                    self._release_overtaken(delivery_id)
                    self._queue.task_done()

    def _deliver(self, session: requests.Session, delivery_id: int) -> None:
        with self.store.lock:
            delivery = self.store.deliveries[delivery_id]
            hook = self.store.hooks.get(delivery.hook_id)
            if hook is None:
                return
            forced = delivery_id in self._manual
            self._manual.discard(delivery_id)
            # GitLab checks again when the job runs: deliveries queued before the hook was
            # disabled are not sent.
            if not forced and hook.alert_status(self.store.monotonic()) != "executable":
                delivery.error = "hook disabled"
                return
            url, headers = hook.url, self._headers(hook, delivery)
        status: int | None = None
        error: str | None = None
        try:
            response = session.post(
                url, json=delivery.body, headers=headers, timeout=DELIVERY_TIMEOUT_S
            )
            status = response.status_code
        except requests.RequestException as err:
            error = type(err).__name__
        # Under the store's lock, as GitLab updates a hook's failure state under an
        # exclusive lease: concurrent outcomes are counted one after the other.
        with self.store.lock:
            delivery.status_code, delivery.error, delivery.sent = status, error, True
            self._record_outcome(hook, status is not None and status < 400)

    def _headers(self, hook: Hook, delivery: Delivery) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"GitLab/{GITLAB_VERSION}",
            "X-Gitlab-Event": delivery.event_name,
            "X-Gitlab-Webhook-UUID": hook.uuid,
            "X-Gitlab-Event-UUID": delivery.event_uuid,
            "X-Gitlab-Instance": self.store.base_url,
            "Idempotency-Key": delivery.idempotency_key,
        }
        if hook.token:
            headers["X-Gitlab-Token"] = hook.token
        return headers

    def _record_outcome(self, hook: Hook, ok: bool) -> None:
        if ok:
            hook.recent_failures, hook.backoff_count, hook.disabled_until = 0, 0, None
            return
        # GitLab backs off only a hook that is executable: the failures of deliveries that
        # were in flight together when the hook got disabled do not count again.
        if hook.alert_status(self.store.monotonic()) != "executable":
            return
        hook.recent_failures += 1
        if hook.recent_failures >= PERMANENT_DISABLE_AFTER:
            hook.permanently_disabled = True
        elif hook.recent_failures >= TEMPORARY_DISABLE_AFTER:
            backoff = min(FIRST_BACKOFF_S * 2**hook.backoff_count, MAX_BACKOFF_S)
            hook.backoff_count += 1
            hook.disabled_until = self.store.monotonic() + self.store.real_seconds(backoff)

    # --- payloads -----------------------------------------------------------------------------

    def payload(self, event: Event) -> dict[str, Any]:
        project = self.store.projects[event.project_id]
        data = event.payload
        if event.kind == "merge_requests_events":
            return self._merge_request_payload(project, data)
        if event.kind == "note_events":
            return self._note_payload(project, data)
        if event.kind == "pipeline_events":
            return self._pipeline_payload(project, self.store.pipelines[data["pipeline_id"]])
        return self._push_payload(project, data)

    def _user(self, user_id: int) -> dict[str, Any]:
        user = self.store.user(user_id)
        return {
            "id": user.id,
            "name": user.name,
            "username": user.username,
            "avatar_url": None,
            "email": "[REDACTED]",
        }

    def _project(self, project: Project) -> dict[str, Any]:
        url = self.store.project_url(project)
        return {
            "id": project.id,
            "name": project.name,
            "description": project.description,
            "web_url": url,
            "avatar_url": None,
            "git_ssh_url": f"ssh://git@127.0.0.1/{project.path_with_namespace}.git",
            "git_http_url": f"{url}.git",
            "namespace": project.namespace,
            "visibility_level": 0 if project.visibility == "private" else 20,
            "path_with_namespace": project.path_with_namespace,
            "default_branch": project.default_branch,
            "ci_config_path": "",
            "homepage": url,
            "url": f"{url}.git",
            "ssh_url": f"ssh://git@127.0.0.1/{project.path_with_namespace}.git",
            "http_url": f"{url}.git",
        }

    def _repository(self, project: Project) -> dict[str, Any]:
        url = self.store.project_url(project)
        return {
            "name": project.name,
            "url": f"{url}.git",
            "description": project.description,
            "homepage": url,
        }

    def _labels(self, project: Project, names: list[str]) -> list[dict[str, Any]]:
        labels = []
        for name in names:
            label = project.labels.get(name)
            labels.append(
                {
                    "id": label.id if label else 0,
                    "title": name,
                    "color": label.color if label else "#6699cc",
                    "project_id": project.id,
                    "created_at": "",
                    "updated_at": "",
                    "template": False,
                    "description": label.description if label else "",
                    "type": "ProjectLabel",
                    "group_id": None,
                }
            )
        return labels

    def _commit(self, project: Project, sha: str) -> dict[str, Any]:
        commit = gitops.get_commit(self.store.repo(project.id), sha)
        message = commit.message.decode(errors="replace")
        name, _, email = commit.author.decode(errors="replace").partition(" <")
        return {
            "id": sha,
            "message": message,
            "title": message.split("\n", 1)[0],
            "timestamp": gitops.iso_from_epoch(commit.commit_time).replace(".000Z", "+00:00"),
            "url": f"{self.store.project_url(project)}/-/commit/{sha}",
            "author": {"name": name, "email": email.rstrip(">")},
        }

    def _mr_attributes(self, project: Project, mr: MergeRequest) -> dict[str, Any]:
        checks = self.serializer.merge_requests.checks(project, mr)
        head = self.serializer.pipelines.head_pipeline(project.id, mr.iid)
        return {
            "id": mr.id,
            "iid": mr.iid,
            "target_branch": mr.target_branch,
            "source_branch": mr.source_branch,
            "source_project_id": mr.project_id,
            "target_project_id": mr.project_id,
            "author_id": mr.author_id,
            "assignee_id": mr.assignee_ids[0] if mr.assignee_ids else None,
            "assignee_ids": list(mr.assignee_ids),
            "reviewer_ids": list(mr.reviewer_ids),
            "title": mr.title,
            "description": mr.description,
            "created_at": mr.created_at,
            "updated_at": mr.updated_at,
            "state": mr.state,
            "state_id": STATE_IDS[mr.state],
            "merge_status": checks.merge_status,
            "detailed_merge_status": checks.detailed_merge_status,
            "merge_commit_sha": mr.merge_commit_sha,
            "merge_user_id": mr.merged_by_id,
            "head_pipeline_id": head.id if head else None,
            "blocking_discussions_resolved": self.serializer.merge_requests.resolved(mr),
            "work_in_progress": mr.draft,
            "draft": mr.draft,
            "first_contribution": False,
            "url": f"{self.store.project_url(project)}/-/merge_requests/{mr.iid}",
            "source": self._project(project),
            "target": self._project(project),
            "last_commit": self._commit(project, mr.sha),
            "labels": self._labels(project, mr.labels),
        }

    def _merge_request_payload(self, project: Project, data: dict[str, Any]) -> dict[str, Any]:
        mr = self.store.merge_request(project.id, data["iid"])
        attributes = self._mr_attributes(project, mr)
        attributes["action"] = data["action"]
        if data.get("oldrev"):
            attributes["oldrev"] = data["oldrev"]
        changes = {}
        for name, change in data["changes"].items():
            if name in ("assignees", "reviewers"):
                changes[name] = {k: [self._user(i) for i in v] for k, v in change.items()}
            elif name == "labels":
                changes[name] = {k: self._labels(project, v) for k, v in change.items()}
            else:
                changes[name] = change
        return {
            "object_kind": "merge_request",
            "event_type": "merge_request",
            "user": self._user(data["user_id"]),
            "project": self._project(project),
            "object_attributes": attributes,
            "labels": self._labels(project, mr.labels),
            "changes": changes,
            "repository": self._repository(project),
            "assignees": [self._user(i) for i in mr.assignee_ids],
            "reviewers": [self._user(i) for i in mr.reviewer_ids],
        }

    def _note_payload(self, project: Project, data: dict[str, Any]) -> dict[str, Any]:
        mr = self.store.merge_request(project.id, data["iid"])
        note = next(n for n in mr.notes if n.id == data["note_id"])
        url = f"{self.store.project_url(project)}/-/merge_requests/{mr.iid}#note_{note.id}"
        return {
            "object_kind": "note",
            "event_type": "note",
            "user": self._user(data["user_id"]),
            "project_id": project.id,
            "project": self._project(project),
            "repository": self._repository(project),
            "object_attributes": {
                "id": note.id,
                "note": note.body,
                "noteable_type": "MergeRequest",
                "author_id": note.author_id,
                "created_at": note.created_at,
                "updated_at": note.created_at,
                "project_id": project.id,
                "noteable_id": mr.id,
                "system": note.system,
                "discussion_id": note.discussion_id,
                "type": "DiscussionNote" if note.resolvable else None,
                "url": url,
                "action": "create",
            },
            "merge_request": self._mr_attributes(project, mr),
        }

    def _pipeline_payload(self, project: Project, pipeline: Pipeline) -> dict[str, Any]:
        merge_request = None
        if pipeline.mr_iid is not None:
            mr = self.store.merge_request(project.id, pipeline.mr_iid)
            checks = self.serializer.merge_requests.checks(project, mr)
            merge_request = {
                "id": mr.id,
                "iid": mr.iid,
                "title": mr.title,
                "source_branch": mr.source_branch,
                "source_project_id": mr.project_id,
                "target_branch": mr.target_branch,
                "target_project_id": mr.project_id,
                "state": mr.state,
                "merge_status": checks.merge_status,
                "detailed_merge_status": checks.detailed_merge_status,
                "url": f"{self.store.project_url(project)}/-/merge_requests/{mr.iid}",
            }
        finished = pipeline.status in ("success", "failed", "canceled")
        return {
            "object_kind": "pipeline",
            "object_attributes": {
                "id": pipeline.id,
                "iid": pipeline.iid,
                "name": None,
                "ref": pipeline.ref,
                "tag": False,
                "sha": pipeline.sha,
                "before_sha": gitops.ZERO_SHA,
                "source": pipeline.source,
                "status": pipeline.status,
                "detailed_status": pipeline.status,
                "stages": ["build", "test"],
                "created_at": pipeline.created_at,
                "finished_at": pipeline.finished_at,
                "duration": project.rules.duration_s if finished else None,
                "queued_duration": project.rules.pending_s,
                "variables": [{"key": k, "value": v} for k, v in pipeline.variables],
                "url": f"{self.store.project_url(project)}/-/pipelines/{pipeline.id}",
            },
            "merge_request": merge_request,
            "user": self._user(pipeline.user_id),
            "project": self._project(project),
            "commit": self._commit(project, pipeline.sha),
            "builds": [
                {
                    "id": job.id,
                    "stage": job.stage,
                    "name": job.name,
                    "status": job.status,
                    "created_at": job.created_at,
                    "started_at": job.started_at,
                    "finished_at": job.finished_at,
                    "duration": None,
                    "queued_duration": None,
                    "failure_reason": "script_failure" if job.status == "failed" else None,
                    "when": "on_success",
                    "manual": False,
                    "allow_failure": False,
                    "user": self._user(pipeline.user_id),
                    "runner": None,
                    "artifacts_file": {"filename": None, "size": None},
                    "environment": None,
                }
                for job in pipeline.jobs
            ],
        }

    def _push_payload(self, project: Project, data: dict[str, Any]) -> dict[str, Any]:
        user = self.store.user(data["user_id"])
        repo = self.store.repo(project.id)
        before, after = data["before"], data["after"]
        commits: list[dict[str, Any]] = []
        if after != gitops.ZERO_SHA:
            base = None if before == gitops.ZERO_SHA else before
            for commit in gitops.commits_between(repo, base, after)[:20]:
                entry = self._commit(project, commit.id.decode())
                parent = commit.parents[0].decode() if commit.parents else None
                diff = gitops.diff_trees(repo, parent, commit.id.decode())
                entry["added"] = [d["new_path"] for d in diff if d["new_file"]]
                entry["removed"] = [d["old_path"] for d in diff if d["deleted_file"]]
                entry["modified"] = [
                    d["new_path"] for d in diff if not d["new_file"] and not d["deleted_file"]
                ]
                commits.append(entry)
        commits.reverse()
        branch = data["ref"].removeprefix("refs/heads/")
        return {
            "object_kind": "push",
            "event_name": "push",
            "before": before,
            "after": after,
            "ref": data["ref"],
            "ref_protected": branch in project.protected,
            "checkout_sha": None if after == gitops.ZERO_SHA else after,
            "message": None,
            "user_id": user.id,
            "user_name": user.name,
            "user_username": user.username,
            "user_email": "",
            "user_avatar": None,
            "project_id": project.id,
            "project": self._project(project),
            "commits": commits,
            "total_commits_count": len(commits),
            "push_options": {},
            "repository": self._repository(project),
        }
