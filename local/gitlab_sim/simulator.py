"""GitLabSimulator: wires the store and services, runs the HTTP server, the CI scheduler,
the webhook delivery workers and the post-receive worker, and offers the scenario and fault
controls tests use."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from local.gitlab_sim import gitops
from local.gitlab_sim.api.core import Services
from local.gitlab_sim.app import SimulatorApp, build_router
from local.gitlab_sim.faults import OUTAGE_STATUS, FaultRule, Faults, Outage, Scope
from local.gitlab_sim.issues import IssueService
from local.gitlab_sim.merge_requests import MergeRequestService, identity
from local.gitlab_sim.models import (
    DEVELOPER,
    Delivery,
    Group,
    Hook,
    Project,
    ProtectedBranch,
    User,
)
from local.gitlab_sim.pipelines import FINISHED, PipelineService
from local.gitlab_sim.pushes import PushService
from local.gitlab_sim.serializers import Serializer
from local.gitlab_sim.smart_http import GitHttp
from local.gitlab_sim.store import NotFound, Store, now_iso
from local.gitlab_sim.webhooks import DELIVERY_WORKERS, WebhookService

SCHEDULER_PERIOD_S = 0.02
ProjectRef = Project | int | str
GroupRef = Group | int | str


class _QuietHandler(WSGIRequestHandler):
    """Keeps the access log out of test output; errors are still logged."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class GitLabSimulator:
    """A GitLab on 127.0.0.1 backed by real git repositories under ``data_dir``.

    State lives in memory; the repositories under ``data_dir/repositories`` are recreated on
    every start. ``time_scale`` multiplies simulated durations (pipelines, rebases, hook
    back-off): 0.001 runs a 10-minute pipeline in 0.6 s.
    """

    def __init__(
        self,
        data_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        time_scale: float = 1.0,
        webhook_workers: int = DELIVERY_WORKERS,
    ) -> None:
        if host != "127.0.0.1":
            raise ValueError("the simulator binds only to 127.0.0.1")
        self.data_dir = Path(data_dir)
        self.host, self.port, self.time_scale = host, port, time_scale
        self.store = Store(self.data_dir, time_scale=time_scale)
        self.faults = Faults()
        self.pipelines = PipelineService(self.store)
        self.pushes = PushService(self.store, self.pipelines)
        self.merge_requests = MergeRequestService(self.store, self.pipelines, self.pushes)
        self.pushes.merge_requests = self.merge_requests
        self.serializer = Serializer(self.store, self.merge_requests, self.pipelines)
        self.issues = IssueService(self.store)
        self.webhooks = WebhookService(
            self.store,
            self.serializer,
            fault=self.faults.for_delivery,
            held=self.faults.deliveries_held,
            workers=webhook_workers,
        )
        self.store.listeners.append(self.webhooks.on_event)
        self.services = Services(
            self.store,
            self.pipelines,
            self.pushes,
            self.merge_requests,
            self.webhooks,
            self.serializer,
            self.faults,
            self.issues,
            self,
        )
        self._server: BaseWSGIServer | None = None
        self._server_thread: threading.Thread | None = None
        self._app: SimulatorApp | None = None
        # Held while the listener is closed or opened, for an outage that refuses connections.
        self._listener_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.admin: User | None = None
        self.admin_token = ""
        self.url = ""

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> GitLabSimulator:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.data_dir / "repositories", ignore_errors=True)
        self._app = SimulatorApp(self.services, build_router(), GitHttp(self.store, self.pushes))
        self._listen()
        assert self._server is not None
        # A listener closed for an outage opens again on the same port.
        self.port = self._server.server_port
        self.url = f"http://{self.host}:{self.port}"
        self.store.base_url = self.url
        self.admin = self.store.add_user("root", name="Administrator", is_admin=True)
        self.admin_token = self.store.issue_token(self.admin.id)
        (self.data_dir / "admin-token").write_text(self.admin_token + "\n")
        self._stop.clear()
        self.webhooks.start()
        thread = threading.Thread(target=self._schedule, name="gitlab-sim-ci", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._listener_lock:
            self._close_listener()
        self.webhooks.stop()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        self.store.close()

    def __enter__(self) -> GitLabSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _listen(self) -> None:
        assert self._app is not None
        self._server = make_server(
            self.host, self.port, self._app, threaded=True, request_handler=_QuietHandler
        )
        self._server_thread = threading.Thread(
            target=self._server.serve_forever, name="gitlab-sim-http", daemon=True
        )
        self._server_thread.start()

    def _close_listener(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._server_thread is not None:
            self._server_thread.join(timeout=5)
            self._server_thread = None

    def _sync_listener(self) -> None:
        """Closes the listener while an outage refuses connections, opens it after."""
        with self._listener_lock:
            # Read under the lock: a scheduler tick that read the outage before it ended
            # would otherwise close the listener ``end_outage`` had just opened again.
            outage = self.faults.outage()
            refusing = outage is not None and outage.refuse
            if self._stop.is_set() or self._app is None:
                return
            if refusing and self._server is not None:
                self._close_listener()
            elif not refusing and self._server is None:
                self._listen()

    def _schedule(self) -> None:
        while not self._stop.wait(SCHEDULER_PERIOD_S):
            self._sync_listener()
            self.tick()

    def tick(self) -> None:
        self.merge_requests.finish_due_rebases()
        self.pipelines.tick()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Waits until no pipeline, rebase, push's post-receive work or webhook delivery is
        outstanding."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # Pushes first: their post-receive work starts pipelines and queues hooks.
            pushed = self.pushes.idle()
            with self.store.lock:
                busy = any(p.status not in FINISHED for p in self.store.pipelines.values()) or any(
                    m.rebase_in_progress for m in self.store.merge_requests.values()
                )
            if pushed and not busy and self.webhooks.idle():
                return True
            time.sleep(SCHEDULER_PERIOD_S)
        return False

    # --- scenario: users and projects -------------------------------------------------------

    def create_user(
        self,
        username: str,
        *,
        name: str = "",
        admin: bool = False,
        availability: str = "not_set",
        status_message: str = "",
        status_emoji: str = "",
    ) -> tuple[User, str]:
        """A user and a personal access token for it."""
        user = self.store.add_user(username, name=name, is_admin=admin)
        self.set_user_status(
            username, availability=availability, message=status_message, emoji=status_emoji
        )
        return user, self.store.issue_token(user.id)

    def issue_token(
        self, username: str, *, scopes: list[str] | None = None, expires_at: str | None = None
    ) -> str:
        """Another personal access token for a user (``expires_at``: an ISO date)."""
        user = self.store.user_by_username(username)
        return self.store.issue_token(user.id, scopes=scopes, expires_at=expires_at)

    def revoke_token(self, token: str) -> None:
        """As a user or admin revoking it in GitLab: every later request with it gets 401."""
        self.store.revoke_token(token)

    def set_user_status(
        self, username: str, *, availability: str = "not_set", message: str = "", emoji: str = ""
    ) -> None:
        """``availability`` "busy" marks a busy user; an OOO user has a message like
        "Out of office" and the ``palm_tree`` emoji, as GitLab users set it."""
        with self.store.lock:
            user = self.store.user_by_username(username)
            user.availability, user.status_message, user.status_emoji = availability, message, emoji

    def project(self, ref: ProjectRef) -> Project:
        if isinstance(ref, Project):
            return ref
        return self.store.project(ref)

    def create_project(
        self,
        name: str,
        *,
        owner: str = "root",
        namespace: str = "",
        files: dict[str, str] | None = None,
        default_branch: str = "main",
        members: dict[str, int] | None = None,
        protect_default: bool = True,
        **settings: Any,
    ) -> Project:
        """A project (optionally with an initial commit of ``files`` on the default branch);
        ``members`` maps usernames to access levels; ``settings`` are Project fields such as
        ``merge_method`` or ``only_allow_merge_if_pipeline_succeeds``."""
        with self.store.lock:
            creator = self.store.user_by_username(owner)
            project = self.store.add_project(
                creator, name, namespace=namespace, default_branch=default_branch, **settings
            )
            for username, level in (members or {}).items():
                project.members[self.store.user_by_username(username).id] = level
            if protect_default:
                project.protected[default_branch] = ProtectedBranch(default_branch)
            if files:
                repo = self.store.repo(project.id)
                tree = gitops.apply_actions(repo, None, _actions(files, set()))
                sha = gitops.make_commit(repo, tree, [], "Initial commit", identity(creator))
                gitops.set_ref(repo, f"refs/heads/{default_branch}", sha)
            return project

    def add_member(self, project: ProjectRef, username: str, level: int = DEVELOPER) -> None:
        with self.store.lock:
            self.project(project).members[self.store.user_by_username(username).id] = level

    def protect_branch(
        self,
        project: ProjectRef,
        branch: str,
        *,
        push_access_level: int = 40,
        merge_access_level: int = 40,
        allow_force_push: bool = False,
    ) -> None:
        with self.store.lock:
            self.project(project).protected[branch] = ProtectedBranch(
                branch, push_access_level, merge_access_level, allow_force_push
            )

    def commit_files(
        self,
        project: ProjectRef,
        branch: str,
        files: dict[str, str | None],
        *,
        message: str = "",
        author: str = "root",
        start_branch: str | None = None,
        skip_ci: bool = False,
    ) -> str:
        """Commits ``files`` (None deletes a path) to ``branch``, creating it from
        ``start_branch`` (default branch) when missing; runs the push's effects."""
        store = self.store
        with store.lock:
            proj = self.project(project)
            user = store.user_by_username(author)
            repo = store.repo(proj.id)
            old = gitops.branch_sha(repo, branch)
            base = old or gitops.branch_sha(repo, start_branch or proj.default_branch)
            existing = gitops.tree_paths(repo, base) if base else set()
            tree = gitops.apply_actions(repo, base, _actions(files, existing))
            sha = gitops.make_commit(
                repo,
                tree,
                [base] if base else [],
                message or f"Update {', '.join(sorted(files))}",
                identity(user),
            )
            ref = f"refs/heads/{branch}"
            if not gitops.set_ref(repo, ref, sha, expected_old=old or gitops.ZERO_SHA):
                raise RuntimeError(f"{branch} moved while committing")
            self.pushes.on_push(proj, user, [(old or gitops.ZERO_SHA, sha, ref)], skip_ci=skip_ci)
            return sha

    def force_push(
        self,
        project: ProjectRef,
        branch: str,
        files: dict[str, str | None],
        *,
        onto: str,
        message: str = "",
        author: str = "root",
    ) -> str:
        """Rewrites ``branch``: one commit of ``files`` on ``onto`` (a sha the branch need
        not contain, such as its head's parent for an amended commit) replaces its history,
        as ``git push --force`` would; protection rules are the pusher's business, not this
        scenario control's. Runs the push's effects."""
        store = self.store
        with store.lock:
            proj = self.project(project)
            user = store.user_by_username(author)
            repo = store.repo(proj.id)
            old = gitops.branch_sha(repo, branch)
            if old is None:
                raise ValueError(f"no branch {branch} to force-push")
            existing = gitops.tree_paths(repo, onto)
            tree = gitops.apply_actions(repo, onto, _actions(files, existing))
            sha = gitops.make_commit(
                repo, tree, [onto], message or f"Rewrite {branch}", identity(user)
            )
            ref = f"refs/heads/{branch}"
            if not gitops.set_ref(repo, ref, sha, expected_old=old):
                raise RuntimeError(f"{branch} moved while force-pushing")
            self.pushes.on_push(proj, user, [(old, sha, ref)])
            return sha

    def create_merge_request(
        self,
        project: ProjectRef,
        source_branch: str,
        title: str,
        files: dict[str, str | None],
        *,
        target_branch: str | None = None,
        author: str = "root",
        assignees: list[str] | None = None,
        reviewers: list[str] | None = None,
        labels: list[str] | None = None,
        description: str = "",
    ) -> int:
        """A branch off the target with one commit of ``files`` and an MR for it; its iid."""
        with self.store.lock:
            proj = self.project(project)
            target = target_branch or proj.default_branch
            self.commit_files(
                proj,
                source_branch,
                files,
                message=title,
                author=author,
                start_branch=target,
                skip_ci=True,
            )
            users = self.store.user_by_username
            mr = self.merge_requests.create(
                proj,
                users(author),
                {
                    "source_branch": source_branch,
                    "target_branch": target,
                    "title": title,
                    "description": description,
                    "labels": labels or [],
                    "assignee_ids": [users(u).id for u in assignees or []],
                    "reviewer_ids": [users(u).id for u in reviewers or []],
                },
            )
            return mr.iid

    def approve(self, project: ProjectRef, iid: int, username: str) -> None:
        with self.store.lock:
            proj = self.project(project)
            self.merge_requests.approve(
                proj,
                self.store.merge_request(proj.id, iid),
                self.store.user_by_username(username),
                None,
            )

    def merge_request(self, project: ProjectRef, iid: int) -> dict[str, Any]:
        """The MR as the REST API shows it to the admin."""
        with self.store.lock:
            proj = self.project(project)
            return self.serializer.merge_request(
                proj, self.store.merge_request(proj.id, iid), self.admin
            )

    def branch_sha(self, project: ProjectRef, branch: str) -> str | None:
        with self.store.lock:
            return gitops.branch_sha(self.store.repo(self.project(project).id), branch)

    def read_file(self, project: ProjectRef, ref: str, path: str) -> bytes | None:
        with self.store.lock:
            repo = self.store.repo(self.project(project).id)
            sha = gitops.resolve(repo, ref)
            found = None if sha is None else gitops.read_blob(repo, sha, path)
            return None if found is None else found[0]

    # --- scenario: groups, issues and epics ------------------------------------------------

    def create_group(self, path: str, *, name: str = "") -> Group:
        """A group before any project lives in it (creating a project in a new namespace
        makes one too)."""
        with self.store.lock:
            if any(u.username == path for u in self.store.users.values()):
                raise ValueError(f"{path} is a personal namespace")
            group = self.store.group_for_path(path)
            if name:
                group.name = name
            return group

    def group(self, ref: GroupRef) -> Group:
        if isinstance(ref, Group):
            return ref
        group = self.store.group(ref)
        if group.kind != "group":
            raise NotFound("404 Group Not Found")
        return group

    def create_issue(
        self,
        project: ProjectRef,
        title: str,
        *,
        author: str = "root",
        description: str = "",
        labels: list[str] | None = None,
        assignees: list[str] | None = None,
        weight: int | None = None,
        due_date: str | None = None,
        confidential: bool = False,
        epic: int | None = None,
        closed: bool = False,
    ) -> int:
        """An issue (``epic``: the iid of an epic in the project's group; ``due_date``:
        YYYY-MM-DD); its iid."""
        with self.store.lock:
            proj = self.project(project)
            users = self.store.user_by_username
            user = users(author)
            issue = self.issues.create_issue(
                proj,
                user,
                {
                    "title": title,
                    "description": description,
                    "labels": labels or [],
                    "assignee_ids": [users(u).id for u in assignees or []],
                    "weight": weight,
                    "due_date": due_date,
                    "confidential": confidential,
                    "epic_iid": epic,
                },
            )
            if closed:
                self.issues.update_issue(proj, issue, user, {"state_event": "close"})
            return issue.iid

    def issue(self, project: ProjectRef, iid: int) -> dict[str, Any]:
        """The issue as the REST API shows it to the admin."""
        with self.store.lock:
            proj = self.project(project)
            return self.serializer.issue(proj, self.store.issue(proj.id, iid))

    def create_epic(
        self,
        group: GroupRef,
        title: str,
        *,
        author: str = "root",
        description: str = "",
        labels: list[str] | None = None,
        start_date: str | None = None,
        due_date: str | None = None,
        parent: int | None = None,
        closed: bool = False,
    ) -> int:
        """An epic in ``group`` (``parent``: the iid of another epic there; dates
        YYYY-MM-DD); its iid."""
        with self.store.lock:
            grp = self.group(group)
            fields: dict[str, Any] = {
                "title": title,
                "description": description,
                "labels": labels or [],
                "start_date": start_date,
                "due_date": due_date,
            }
            if parent is not None:
                fields["parent_id"] = self.store.epic(grp.id, parent).id
            epic = self.issues.create_epic(grp, self.store.user_by_username(author), fields)
            if closed:
                self.issues.update_epic(grp, epic, {"state_event": "close"})
            return epic.iid

    def epic(self, group: GroupRef, iid: int) -> dict[str, Any]:
        """The epic as the REST API shows it."""
        with self.store.lock:
            return self.serializer.epic(self.store.epic(self.group(group).id, iid))

    # --- scenario: CI, hooks and faults -----------------------------------------------------

    def set_pipeline_rules(
        self,
        project: ProjectRef,
        *,
        fail_paths: list[str] | None = None,
        conflict_pairs: list[tuple[str, str]] | None = None,
        flaky_rate: float | None = None,
        seed: int | None = None,
        duration_s: float | None = None,
        pending_s: float | None = None,
    ) -> None:
        with self.store.lock:
            proj = self.project(project)
            rules = proj.rules
            if fail_paths is not None:
                rules.fail_paths = list(fail_paths)
            if conflict_pairs is not None:
                rules.conflict_pairs = [(a, b) for a, b in conflict_pairs]
            if flaky_rate is not None:
                rules.flaky_rate = flaky_rate
            if seed is not None:
                rules.seed = seed
                self.pipelines.reseed(proj)
            if duration_s is not None:
                rules.duration_s = duration_s
            if pending_s is not None:
                rules.pending_s = pending_s

    def finish_pipelines_within(self, project: ProjectRef, duration_s: float) -> int:
        """Brings the end of every unfinished pipeline of ``project`` forward to at most
        ``duration_s`` simulated seconds from now (a scenario's "CI speeds up"), so a test
        can hold a pipeline for as long as it needs and then let it finish. Returns how
        many pipelines were moved."""
        with self.store.lock:
            proj = self.project(project)
            due = self.store.monotonic() + self.store.real_seconds(duration_s)
            moved = 0
            for pipeline in self.store.pipelines.values():
                if pipeline.project_id != proj.id or pipeline.status in FINISHED:
                    continue
                if pipeline.finish_at > due:
                    pipeline.finish_at = max(due, pipeline.running_at)
                    moved += 1
            return moved

    def add_hook(
        self,
        project: ProjectRef,
        url: str,
        *,
        token: str = "",
        events: tuple[str, ...] = ("push", "merge_requests", "note", "pipeline"),
    ) -> Hook:
        with self.store.lock:
            hook = Hook(
                id=self.store.next_id("hook"),
                project_id=self.project(project).id,
                url=url,
                token=token,
                created_at=now_iso(),
                uuid=f"{self.store.next_id('hook-uuid'):08d}-sim-hook",
            )
            for flag in ("push", "merge_requests", "note", "pipeline", "issues", "job"):
                setattr(hook, f"{flag}_events", flag in events)
            self.store.hooks[hook.id] = hook
            return hook

    def deliveries(self, hook_id: int | None = None) -> list[Delivery]:
        with self.store.lock:
            return [
                d for d in self.store.deliveries.values() if hook_id is None or d.hook_id == hook_id
            ]

    def resend_delivery(self, delivery_id: int) -> Delivery:
        return self.webhooks.resend(delivery_id)

    def inject_fault(
        self,
        path_pattern: str = ".*",
        *,
        method: str | None = None,
        status: int | None = None,
        retry_after: int | None = None,
        latency_s: float = 0.0,
        times: int | None = None,
        rate: float = 1.0,
        seed: int = 0,
        scope: Scope = "api",
        after_effect: bool = False,
        drop_connection: bool = False,
    ) -> FaultRule:
        """Makes matching requests fail, slow down or lose their answer (``faults.py``):
        REST requests by their path after /api/v4 (a regex), git smart-HTTP requests
        (``scope`` "git" or "all") by theirs, e.g. ``git-receive-pack$`` for pushes."""
        return self.faults.add(
            path_pattern=path_pattern,
            method=method,
            status=status,
            retry_after=retry_after,
            latency_s=latency_s,
            times=times,
            rate=rate,
            seed=seed,
            scope=scope,
            after_effect=after_effect,
            drop_connection=drop_connection,
        )

    def drop_webhooks(
        self, event_name: str = "*", *, times: int | None = None, rate: float = 1.0, seed: int = 0
    ) -> FaultRule:
        """Silently drops deliveries of ``event_name`` (e.g. "Pipeline Hook"; "*": all)."""
        return self.faults.add(drop_webhook_event=event_name, times=times, rate=rate, seed=seed)

    def duplicate_webhooks(
        self, event_name: str = "*", *, times: int | None = None, rate: float = 1.0, seed: int = 0
    ) -> FaultRule:
        """Sends deliveries of ``event_name`` twice, with the same Idempotency-Key and event
        UUID (as GitLab's retried delivery job sends them)."""
        return self.faults.add(
            duplicate_webhook_event=event_name, times=times, rate=rate, seed=seed
        )

    def delay_webhooks(
        self, event_name: str = "*", *, times: int | None = None, rate: float = 1.0, seed: int = 0
    ) -> FaultRule:
        """Holds deliveries of ``event_name`` back until the next delivery has been sent:
        they arrive out of order."""
        return self.faults.add(delay_webhook_event=event_name, times=times, rate=rate, seed=seed)

    def outage(
        self,
        seconds: float | None = None,
        *,
        status: int = OUTAGE_STATUS,
        retry_after: int | None = None,
        refuse: bool = False,
    ) -> Outage:
        """GitLab is down: every REST and git request answers ``status`` (with ``refuse``,
        no connection is accepted at all) and webhooks wait, for ``seconds`` or until
        ``end_outage``/``clear_faults``. CI goes on."""
        outage = self.faults.start_outage(
            seconds, status=status, retry_after=retry_after, refuse=refuse
        )
        self._sync_listener()
        return outage

    def end_outage(self) -> None:
        self.faults.end_outage()
        self._sync_listener()

    def clear_faults(self) -> None:
        """Every fault rule goes, and any outage ends."""
        self.faults.clear()
        self._sync_listener()


def _actions(files: Mapping[str, str | None], existing: set[str]) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = []
    for path, content in files.items():
        if content is None:
            actions.append({"action": "delete", "file_path": path})
        else:
            kind = "update" if path in existing else "create"
            actions.append({"action": kind, "file_path": path, "content": content})
    return actions


def run_forever(data_dir: Path, port: int = 8929, time_scale: float = 1.0) -> None:
    """Runs the simulator until interrupted, printing its URL and the admin's token."""
    simulator = GitLabSimulator(Path(data_dir), port=port, time_scale=time_scale).start()
    print(f"GitLab simulator at {simulator.url}", flush=True)
    print(
        f"admin token: {simulator.admin_token} (also in {Path(data_dir) / 'admin-token'})",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
