"""A merge-queue scenario on the local stack: a fresh simulator project connected to Merge
Assist, MRs opened by its developers, and the DESIGN.md invariants checked at the end.

Every scenario ends with ``assert_invariants``: (1) every commit the bot put on the target
passed CI as that exact tree; (2) every MR that entered the queue is merged, rejected with
a reason, or still queued, and none merged twice; (3) replaying every webhook GitLab sent,
duplicated and in reverse order, changes nothing."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from local.gitlab_sim.models import Project
from local.invariants import LandingLog, landed_merges, unaccounted, untested_landings
from local.stack import LocalStack
from merge_assist.adapters.aws import store_from_settings
from merge_assist.adapters.executions import StepFunctionsExecutions
from merge_assist.adapters.gitlab_gateway import PythonGitLabGateway
from merge_assist.adapters.project_infra import AwsProjectInfrastructure
from merge_assist.admin.onboarding import connect_project
from merge_assist.platform.errors import NotFoundError
from merge_assist.platform.settings import PollIntervals
from merge_assist.queue.models import Batch, MergeRequestState, StatusCategory
from merge_assist.queue.redelivery import PARK_AFTER_RECEIVES, Redeliver, after_failure
from merge_assist.queue.workflow.start import start_project


def _redelivery_delays() -> float:
    delays = (after_failure(receives) for receives in range(1, PARK_AFTER_RECEIVES))
    return sum(d.after_seconds for d in delays if isinstance(d, Redeliver))


_DRAIN_TIMEOUT_S = 30.0 + _redelivery_delays()

MAINTAINER = 40
DEVELOPER = 30
SETTLED = (StatusCategory.MERGED, StatusCategory.REJECTED, StatusCategory.NOT_READY)


@dataclass
class Scenario:
    stack: LocalStack
    project: Project
    log: LandingLog
    bot_id: int
    entered: set[int] = field(default_factory=set)

    @classmethod
    def open(
        cls,
        stack: LocalStack,
        name: str,
        *,
        settings: dict[str, Any] | None = None,
        files: dict[str, str] | None = None,
        duration_s: float = 20,
        fail_paths: list[str] | None = None,
        conflict_pairs: list[tuple[str, str]] | None = None,
        **project_settings: Any,
    ) -> Scenario:
        """A project connected paused (so MRs gather in the queue until ``start``)."""
        gitlab = stack.gitlab
        assert gitlab is not None
        with contextlib.suppress(Exception):
            gitlab.create_user("dev", name="Developer")
        project = gitlab.create_project(
            name,
            namespace="e2e",
            files=files or {"README.md": "# app\n", "src/app.py": "VERSION = 1\n"},
            members={stack.bot_username: MAINTAINER, "dev": DEVELOPER},
            **project_settings,
        )
        gitlab.set_pipeline_rules(
            project,
            pending_s=1,
            duration_s=duration_s,
            fail_paths=fail_paths if fail_paths is not None else ["ci/fail"],
            conflict_pairs=conflict_pairs or [],
            flaky_rate=0.0,
        )
        token = stack.client("secretsmanager").get_secret_value(
            SecretId=stack.names.bot_token_secret
        )["SecretString"]
        gateway = PythonGitLabGateway(stack.gitlab_url, token)
        connect_project(
            store_from_settings(),
            AwsProjectInfrastructure(stack.names),
            gateway,
            project.id,
            webhook_url=f"{stack.url}/webhook/gitlab",
            settings={"paused": True, **(settings or {})},
        )
        log = LandingLog(gitlab, project.id, "main")
        return cls(stack, project, log, gateway.current_user_id())

    # -- what developers do -----------------------------------------------------------

    def open_mr(
        self, branch: str, files: dict[str, str | None], *, title: str | None = None
    ) -> int:
        gitlab = self.stack.gitlab
        assert gitlab is not None
        iid = gitlab.create_merge_request(
            self.project,
            branch,
            title or f"Change {branch}",
            files,
            author="dev",
            assignees=[self.stack.bot_username],
        )
        self.entered.add(iid)
        return iid

    def push(self, branch: str, files: dict[str, str | None]) -> str:
        gitlab = self.stack.gitlab
        assert gitlab is not None
        return gitlab.commit_files(self.project, branch, files, author="dev")

    # -- what the queue shows ---------------------------------------------------------

    @property
    def store(self) -> Any:
        return store_from_settings()

    def state(self, iid: int) -> MergeRequestState | None:
        try:
            return self.store.get_merge_request(self.project.id, iid)  # type: ignore[no-any-return]
        except NotFoundError:
            return None

    def status(self, iid: int) -> StatusCategory | None:
        state = self.state(iid)
        return None if state is None else state.status

    def batches(self) -> list[Batch]:
        """Oldest first."""
        return list(reversed(self.store.list_batches(self.project.id)))

    def gitlab_mr(self, iid: int) -> dict[str, Any]:
        gitlab = self.stack.gitlab
        assert gitlab is not None
        return gitlab.merge_request(self.project, iid)

    def notes(self, iid: int) -> list[str]:
        gitlab = self.stack.gitlab
        assert gitlab is not None
        with gitlab.store.lock:
            mr = gitlab.store.merge_request(self.project.id, iid)
            return [note.body for note in mr.notes if not note.system]

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {self.describe()}")
            time.sleep(0.2)

    def wait_status(self, iids: list[int], *statuses: StatusCategory, timeout: float = 60) -> None:
        self.wait_for(
            lambda: all(self.status(iid) in statuses for iid in iids),
            f"{iids} to be {[s.value for s in statuses]}",
            timeout,
        )

    def start(self) -> None:
        """Unpause and start the queue, as the API does after a config change."""
        store = self.store
        config = store.get_project(self.project.id)
        store.save_project(config.model_copy(update={"paused": False}))
        self.kick()

    def kick(self) -> None:
        start_project(
            self.store,
            StepFunctionsExecutions(),
            self.project.id,
            f"test:{uuid.uuid4()}",
            polls=PollIntervals(
                pipeline_poll_seconds=self.stack.config.pipeline_poll_seconds,
                rebase_poll_seconds=self.stack.config.rebase_poll_seconds,
            ),
        )

    def idle(self) -> bool:
        """No batch runs and nothing is left in flight."""
        if self.store.get_branch_lock(self.project.id, "main") is not None:
            return False
        return all(
            self.status(iid) not in (StatusCategory.BATCHING, StatusCategory.TESTING)
            for iid in self.entered
        )

    def settle(self, timeout: float = 90.0) -> None:
        """Until every MR that entered is merged, rejected or not ready, and no batch runs."""
        self.wait_for(
            lambda: all(self.status(iid) in SETTLED for iid in self.entered) and self.idle(),
            "the queue to settle",
            timeout,
        )

    def describe(self) -> str:
        states = {iid: getattr(self.status(iid), "value", None) for iid in sorted(self.entered)}
        batches = [
            (b.id[-6:], b.state.value, b.merge_requests, [s.kind.value for s in b.steps])
            for b in self.batches()
        ]
        return f"states={states} batches={batches}"

    # -- the invariants ---------------------------------------------------------------

    def assert_invariants(self, *, replay: bool = True) -> None:
        gitlab = self.stack.gitlab
        assert gitlab is not None
        assert self.log.by(self.bot_id), "the bot never moved the target branch"
        assert untested_landings(gitlab, self.project.id, self.log.by(self.bot_id)) == []
        assert self._unaccounted() == {}
        if replay:
            self._assert_replays_change_nothing()

    def _unaccounted(self) -> dict[int, str]:
        gitlab = self.stack.gitlab
        assert gitlab is not None
        states = [s for s in (self.state(iid) for iid in self.entered) if s is not None]
        mrs = {iid: self.gitlab_mr(iid) for iid in self.entered}
        heads = {iid: mr["sha"] for iid, mr in mrs.items()}
        # Once per landing that brought each MR in: a second landing of one shows twice.
        merged = landed_merges(gitlab, self.project.id, self.log.by(self.bot_id), heads)
        merged += [iid for iid, mr in mrs.items() if mr["state"] == "merged" and iid not in merged]
        return unaccounted(self.entered, states, merged)

    def _snapshot(self) -> tuple[Any, ...]:
        gitlab = self.stack.gitlab
        assert gitlab is not None
        states = {
            iid: (s.status, s.sha, tuple(r.code for r in s.reasons), s.strikes)
            for iid in self.entered
            if (s := self.state(iid)) is not None
        }
        notes = {iid: len(self.notes(iid)) for iid in self.entered}
        return (
            gitlab.branch_sha(self.project, "main"),
            states,
            notes,
            len(self.batches()),
        )

    def deliveries(self) -> list[Any]:
        """Every webhook delivery GitLab made (or dropped) for this project, oldest first."""
        gitlab = self.stack.gitlab
        assert gitlab is not None
        with gitlab.store.lock:
            hooks = {h.id for h in gitlab.store.hooks.values() if h.project_id == self.project.id}
            return [d for d in gitlab.store.deliveries.values() if d.hook_id in hooks]

    def deliver_anew(self, delivery: Any) -> None:
        """The same event delivered anew (new event UUID and Idempotency-Key), as GitLab does
        when it retries a delivery it thinks failed."""
        gitlab = self.stack.gitlab
        assert gitlab is not None
        with gitlab.store.lock:
            hook = gitlab.store.hooks[delivery.hook_id]
        response = requests.post(
            hook.url,
            json=delivery.body,
            headers={
                "X-Gitlab-Event": delivery.event_name,
                "X-Gitlab-Token": hook.token,
                "X-Gitlab-Event-UUID": str(uuid.uuid4()),
                "Idempotency-Key": str(uuid.uuid4()),
            },
            timeout=10,
        )
        assert response.status_code in (200, 202), response.text

    def _assert_replays_change_nothing(self) -> None:
        """Every delivery again: first as GitLab's "Resend" (same Idempotency-Key), then as
        new deliveries of the same events, newest first."""
        gitlab = self.stack.gitlab
        assert gitlab is not None
        before = self._snapshot()
        deliveries = self.deliveries()
        assert deliveries
        for delivery in deliveries:
            gitlab.resend_delivery(delivery.id)
        assert gitlab.wait_idle()
        for delivery in reversed(deliveries):
            self.deliver_anew(delivery)
        self._wait_queue_drained()
        time.sleep(1.0)  # a batch the replay wrongly started would have taken its lock
        self.wait_for(self.idle, "the replay to settle", 30)
        assert self._snapshot() == before

    def _wait_queue_drained(self) -> None:
        """Events that failed under an injected fault may still be out for their redelivery
        delays before the queue is empty."""
        sqs = self.stack.client("sqs")
        url = sqs.get_queue_url(QueueName=self.stack.names.project_queue(self.project.id))[
            "QueueUrl"
        ]

        def drained() -> bool:
            attributes = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            return all(int(value) == 0 for value in attributes.values())

        self.wait_for(drained, "the project queue to drain", _DRAIN_TIMEOUT_S)

    def close(self) -> None:
        self.log.close()
