"""``merge-assist local --demo``: the merge queue at work on the local stack.

A project in the GitLab simulator is connected (config, webhook secret, FIFO queue and DLQ,
event source mapping, GitLab hook). Six merge requests are opened and assigned to the bot;
their webhooks travel through the HTTP front, the receiver, the project queue and the
dispatcher, which queues them. Then the queue runs, on the real state machine and handlers,
one batch taking all six:

- two MRs edit the same lines of the README: the second is rejected when the batch is built;
- two MRs pass CI alone but fail it together (a semantic conflict the simulator's CI knows):
  the batch's pipeline is red, the batch is bisected, and the culprit is rejected with the
  failing pipeline's link while the MRs before it land;
- the MRs after the culprit go back in line and land in the next batch.

The console prints every transition as it happens; the dashboard shows the same state.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from local.stack import LocalStack
from merge_assist.adapters.aws import store_from_settings
from merge_assist.adapters.executions import StepFunctionsExecutions
from merge_assist.adapters.gitlab_gateway import PythonGitLabGateway
from merge_assist.adapters.project_infra import AwsProjectInfrastructure
from merge_assist.admin.onboarding import connect_project
from merge_assist.platform.access import Grant, Role
from merge_assist.platform.errors import NotFoundError
from merge_assist.platform.settings import PollIntervals
from merge_assist.queue.models import Batch, MergeRequestState, StatusCategory
from merge_assist.queue.workflow.start import start_project

MAINTAINER = 40
DEVELOPER = 30
DEMO_MERGE_REQUESTS: tuple[tuple[str, str, dict[str, str | None]], ...] = (
    ("feature/retry", "Add retries to the payment client", {"payments/retry.py": "RETRIES = 3\n"}),
    ("fix/invoice-null", "Fix a null check in invoice export", {"invoices/export.py": "OK = 1\n"}),
    (
        "feature/timeout",
        "Lower the payment timeout",
        {"payments/timeout.py": "TIMEOUT_S = 2\n"},
    ),
    ("chore/base-image", "Bump the base image to bookworm", {"Dockerfile": "FROM debian:12\n"}),
    ("docs/install", "Document the install steps", {"README.md": "# Shop\n\nRun `make`.\n"}),
    ("docs/usage", "Document usage", {"README.md": "# Shop\n\nOpen the browser.\n"}),
)
# Retries with a 2 s timeout break the payment tests; either alone is fine.
SEMANTIC_CONFLICT = ("payments/retry.py", "payments/timeout.py")
SETTLED = (StatusCategory.MERGED, StatusCategory.REJECTED, StatusCategory.NOT_READY)


@dataclass
class Console:
    """Prints what changed since the last look: MR statuses and batch steps."""

    project_id: int
    iids: list[int]
    started: float = field(default_factory=time.monotonic)
    statuses: dict[int, str] = field(default_factory=dict)
    steps_seen: dict[str, int] = field(default_factory=dict)

    def say(self, text: str) -> None:
        print(f"  {time.monotonic() - self.started:5.1f}s  {text}", flush=True)

    def look(self) -> list[MergeRequestState]:
        store = store_from_settings()
        states = []
        for iid in self.iids:
            try:
                state = store.get_merge_request(self.project_id, iid)
            except NotFoundError:
                continue
            states.append(state)
            if self.statuses.get(iid) != state.status.value:
                self.statuses[iid] = state.status.value
                why = "; ".join(reason.message for reason in state.reasons)
                self.say(f"!{iid:<2} {state.status.value:<9} {why}".rstrip())
        for batch in reversed(store.list_batches(self.project_id)):
            self._steps(batch)
        return states

    def _steps(self, batch: Batch) -> None:
        seen = self.steps_seen.get(batch.id, 0)
        for step in batch.steps[seen:]:
            mrs = ", ".join(f"!{iid}" for iid in step.merge_requests)
            detail = " ".join(
                part
                for part in (
                    mrs,
                    step.status or "",
                    step.note,
                    step.pipeline_url or "",
                )
                if part
            )
            self.say(f"batch {batch.id[-6:]}: {step.kind.value} {detail}")
        self.steps_seen[batch.id] = len(batch.steps)


DEMO_BATCH_SIZE = 6


def run_demo(stack: LocalStack, timeout_seconds: float = 180) -> None:
    gitlab = stack.gitlab
    if gitlab is None:
        print("The demo needs the embedded GitLab simulator.")
        return
    gitlab.create_user("dev", name="Dana Developer")
    project = gitlab.create_project(
        "shop",
        namespace="demo",
        files={"README.md": "# Shop\n", "payments/client.py": "def pay(): ...\n"},
        members={stack.bot_username: MAINTAINER, "dev": DEVELOPER},
    )
    gitlab.set_pipeline_rules(
        project, pending_s=2, duration_s=40, conflict_pairs=[SEMANTIC_CONFLICT]
    )
    token = stack.client("secretsmanager").get_secret_value(SecretId=stack.names.bot_token_secret)[
        "SecretString"
    ]
    store = store_from_settings()
    connected = connect_project(
        store,
        AwsProjectInfrastructure(stack.names),
        PythonGitLabGateway(stack.gitlab_url, token),
        "demo/shop",
        webhook_url=f"{stack.url}/webhook/gitlab",
        # Paused while the MRs are opened, so they gather into one batch; a batch of all six
        # tells the same story whatever order their pipelines queued them in (the later of
        # each pair is the one rejected), so the demo never depends on timing.
        settings={"batch_size": DEMO_BATCH_SIZE, "paused": True},
    )
    print(f"\nConnected {connected.project.path_with_namespace} (GitLab project {project.id});")
    print(f"  its hook posts to {connected.webhook_url}")
    for user in stack.provisioned.demo_users if stack.provisioned else []:
        if user.group != Role.ADMIN.value:
            store.save_grant(
                Grant(
                    username=user.username,
                    project_id=project.id,
                    roles=[Role(user.group)],
                    granted_by="demo",
                )
            )
    print(f"  the demo users are granted their roles on {connected.project.path_with_namespace}")
    iids = [
        gitlab.create_merge_request(
            project, branch, title, files, author="dev", assignees=[stack.bot_username]
        )
        for branch, title, files in DEMO_MERGE_REQUESTS
    ]
    for iid, (branch, title, _) in zip(iids, DEMO_MERGE_REQUESTS, strict=True):
        print(f"  opened !{iid:<2} {branch:<18} {title}")
    console = Console(project.id, iids)
    print("Waiting for their pipelines and webhooks to queue them...", flush=True)
    deadline = time.monotonic() + timeout_seconds
    while not all(s.status is StatusCategory.QUEUED for s in console.look()) or len(
        console.statuses
    ) < len(iids):
        if time.monotonic() > deadline:
            print("  they were not all queued in time")
            return
        time.sleep(0.3)

    print(f"Starting the queue (batch size {DEMO_BATCH_SIZE}):", flush=True)
    store.save_project(store.get_project(project.id).model_copy(update={"paused": False}))
    start_project(
        store,
        StepFunctionsExecutions(),
        project.id,
        f"demo:{uuid.uuid4()}",
        polls=PollIntervals(
            pipeline_poll_seconds=stack.config.pipeline_poll_seconds,
            rebase_poll_seconds=stack.config.rebase_poll_seconds,
        ),
    )
    while True:
        states = console.look()
        running = store.get_branch_lock(project.id, "main") is not None
        if not running and all(state.status in SETTLED for state in states):
            break
        if time.monotonic() > deadline:
            print("  the queue did not settle in time")
            break
        time.sleep(0.3)
    merged = [s.iid for s in states if s.status is StatusCategory.MERGED]
    rejected = [s for s in states if s.status is StatusCategory.REJECTED]
    print(f"Merged: {', '.join(f'!{iid}' for iid in merged) or 'none'}")
    for state in rejected:
        print(f"Rejected: !{state.iid} {state.reasons[0].message if state.reasons else ''}")
    print(f"main is at {gitlab.branch_sha(project, 'main')}", flush=True)
