"""``merge-assist local --demo``: a queue seeded in the store, drained by the real merge-batch
state machine (moto's interpreter, the real ASL, the real handler through moto's Lambda)."""

from __future__ import annotations

from datetime import timedelta

from local.stack import LocalStack
from merge_assist.adapters.aws import store_from_settings
from merge_assist.errors import AlreadyExistsError
from merge_assist.models import MergeRequestState, ProjectConfig, StatusCategory, utc_now

DEMO_PROJECT_ID = 1
DEMO_QUEUE = (
    # (iid, title, priority)
    (11, "Add retry to the payment client", 0),
    (12, "Hotfix: null check in invoice export", 10),
    (13, "Bump base image to bookworm", 0),
    (14, "Docs: release checklist", 0),
)


def seed(stack: LocalStack) -> None:
    store = store_from_settings()
    try:
        store.save_project(
            ProjectConfig(project_id=DEMO_PROJECT_ID, path="demo/shop", batch_size=3)
        )
    except AlreadyExistsError:
        return
    start = utc_now() - timedelta(minutes=len(DEMO_QUEUE))
    for offset, (iid, title, priority) in enumerate(DEMO_QUEUE):
        store.save_merge_request(
            MergeRequestState(
                project_id=DEMO_PROJECT_ID,
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


def run_demo(stack: LocalStack) -> None:
    seed(stack)
    print("\nDemo: project demo/shop (id 1), batch size 3, queue on main:")
    for iid, title, priority in DEMO_QUEUE:
        print(f"  !{iid:<3} priority {priority:>3}  {title}")
    result = stack.execute("merge-batch", {"project_id": DEMO_PROJECT_ID, "target_branch": "main"})
    print(f"merge-batch execution: {result.status}")
    if result.output:
        selected = ", ".join(f"!{iid}" for iid in result.output["merge_requests"])
        print(f"  next batch ({result.output['strategy']}): {selected}\n", flush=True)
