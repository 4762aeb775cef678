"""``merge-assist local --demo``: the main path on the local stack.

1. Intake: a project in the GitLab simulator is connected (config, webhook secret, FIFO
   queue and DLQ, event source mapping, GitLab hook), merge requests are opened in GitLab,
   and their webhooks travel through the HTTP front, the receiver, the project queue, the
   poller and the dispatcher into the store.
2. The merge-batch state machine (the real ASL in moto's interpreter, the real handler
   through moto's Lambda) selects the next batch from a queue.
"""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta

from local.stack import LocalStack
from merge_assist.adapters.aws import store_from_settings
from merge_assist.adapters.gitlab_gateway import PythonGitLabGateway
from merge_assist.adapters.project_infra import AwsProjectInfrastructure
from merge_assist.errors import AlreadyExistsError, NotFoundError
from merge_assist.models import MergeRequestState, ProjectConfig, StatusCategory, utc_now
from merge_assist.onboarding import connect_project

MAINTAINER = 40
DEMO_MERGE_REQUESTS: tuple[tuple[str, str, dict[str, str | None]], ...] = (
    ("feature/retry", "Add retry to the payment client", {"payments/retry.py": "RETRIES = 3\n"}),
    ("fix/invoice-null", "Fix a null check in invoice export", {"invoices/export.py": "OK = 1\n"}),
    ("chore/base-image", "Bump base image to bookworm", {"Dockerfile": "FROM debian:12\n"}),
)
SEEDED_PROJECT_ID = 900001
SEEDED_QUEUE = (
    (11, "Add retry to the payment client", 0),
    (12, "Hotfix: null check in invoice export", 10),
    (13, "Bump base image to bookworm", 0),
    (14, "Docs: release checklist", 0),
)


def run_intake(stack: LocalStack) -> None:
    gitlab = stack.gitlab
    if gitlab is None:
        print("Intake demo skipped: it needs the embedded GitLab simulator.")
        return
    project = gitlab.create_project(
        "shop",
        namespace="demo",
        files={"README.md": "# Shop\n"},
        members={stack.bot_username: MAINTAINER},
    )
    secret = stack.client("secretsmanager").get_secret_value(SecretId=stack.names.bot_token_secret)[
        "SecretString"
    ]
    connected = connect_project(
        store_from_settings(),
        AwsProjectInfrastructure(stack.names),
        PythonGitLabGateway(stack.gitlab_url, secret),
        "demo/shop",
        webhook_url=f"{stack.url}/webhook/gitlab",
        settings={"batch_size": 3},
    )
    print(f"\nConnected {connected.project.path_with_namespace} (GitLab project {project.id});")
    print(f"  its hook posts to {connected.webhook_url}")
    iids = [
        gitlab.create_merge_request(project, branch, title, files, assignees=[stack.bot_username])
        for branch, title, files in DEMO_MERGE_REQUESTS
    ]
    print(f"Opened !{', !'.join(map(str, iids))} in GitLab, assigned to the bot; waiting for")
    print("their webhooks to reach the store...")
    store = store_from_settings()
    deadline = time.monotonic() + 30
    tracked: dict[int, MergeRequestState] = {}
    while len(tracked) < len(iids) and time.monotonic() < deadline:
        for iid in iids:
            with contextlib.suppress(NotFoundError):
                tracked[iid] = store.get_merge_request(project.id, iid)
        time.sleep(0.2)
    for iid in iids:
        state = tracked.get(iid)
        if state is None:
            print(f"  !{iid}: not recorded within 30 s")
        else:
            print(
                f"  !{iid:<3} {state.sha[:8]} {state.source_branch} -> {state.target_branch}"
                f"  ({state.last_event_kind} event, GitLab state {state.gitlab_state})"
            )


def run_selection(stack: LocalStack) -> None:
    store = store_from_settings()
    with contextlib.suppress(AlreadyExistsError):
        store.save_project(
            ProjectConfig(project_id=SEEDED_PROJECT_ID, path="demo/seeded", batch_size=3)
        )
    start = utc_now() - timedelta(minutes=len(SEEDED_QUEUE))
    for offset, (iid, title, priority) in enumerate(SEEDED_QUEUE):
        with contextlib.suppress(AlreadyExistsError):
            store.save_merge_request(
                MergeRequestState(
                    project_id=SEEDED_PROJECT_ID,
                    iid=iid,
                    sha=f"{iid:02d}" * 20,
                    source_branch=f"feature/{iid}",
                    target_branch="main",
                    title=title,
                    status=StatusCategory.QUEUED,
                    ready_since=start + timedelta(minutes=offset),
                    priority=priority,
                )
            )
    print("\nA seeded queue on main (batch size 3):")
    for iid, title, priority in SEEDED_QUEUE:
        print(f"  !{iid:<3} priority {priority:>3}  {title}")
    result = stack.execute(
        "merge-batch", {"project_id": SEEDED_PROJECT_ID, "target_branch": "main"}
    )
    print(f"merge-batch execution: {result.status}")
    if result.output:
        selected = ", ".join(f"!{iid}" for iid in result.output["merge_requests"])
        print(f"  next batch ({result.output['strategy']}): {selected}\n", flush=True)


def run_demo(stack: LocalStack) -> None:
    run_intake(stack)
    run_selection(stack)
