"""``merge-assist dlq redrive`` and ``merge-assist batch retry|cancel``: recovery by hand.

Against the cloud the commands use the caller's AWS credentials (the ``<prefix>-operator``
managed policy grants what they need), the deployment prefix and the stack's outputs; with
``--local DATA`` they talk to the local stack described in ``DATA/endpoints.json``. None of
them calls GitLab. Each is safe to run twice (see ``merge_assist.admin.recovery``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from merge_assist.platform.resources import DEFAULT_PREFIX, MERGE_WORKFLOW, ResourceNames

# The stack's output naming the merge workflow's state machine (``infra/stack.py``).
STATE_MACHINE_OUTPUT = (
    "".join(part.capitalize() for part in MERGE_WORKFLOW.split("-")) + "StateMachineArn"
)
NOT_STARTED_NEXT = (
    "The next batch is not started: the watcher's next run or the next event starts the "
    "queue, or `merge-assist batch retry {id}` starts it now."
)


@dataclass(frozen=True)
class RecoveryContext:
    names: ResourceNames
    state_machine_arn: str


def _context(args: argparse.Namespace) -> RecoveryContext:
    from merge_assist.adapters.aws import clear_caches

    if args.local:
        from cli.deployment import local_context

        data_dir = Path(args.local)
        names = local_context(data_dir).names
        endpoints = json.loads((data_dir / "endpoints.json").read_text())
        arn = endpoints["state_machines"][MERGE_WORKFLOW]
    else:
        from merge_assist.adapters.recovery import stack_outputs

        names = ResourceNames(args.prefix)
        os.environ["MERGE_ASSIST_RESOURCE_PREFIX"] = names.prefix
        arn = stack_outputs(names.prefix)[STATE_MACHINE_OUTPUT]
    clear_caches()
    return RecoveryContext(names=names, state_machine_arn=arn)


def _emit(args: argparse.Namespace, result: Any, text: str) -> None:
    print(json.dumps(dataclasses.asdict(result), indent=2, default=str) if args.json else text)


def _refuse(message: str) -> int:
    print(f"merge-assist: {message}", file=sys.stderr)
    return 1


def _project_id(store: Any, ref: str) -> int:
    """A numeric id, or the ``group/path`` the project was connected with."""
    if ref.isdigit():
        return int(ref)
    for config in store.list_projects():
        if config.path == ref:
            return int(config.project_id)
    raise SystemExit(f"merge-assist: no connected project {ref}")


def run_redrive(args: argparse.Namespace) -> int:
    from merge_assist.adapters.aws import store_from_settings
    from merge_assist.adapters.recovery import SqsMessageQueues
    from merge_assist.admin.recovery import redrive
    from merge_assist.platform.errors import NotFoundError

    context = _context(args)
    project_id = _project_id(store_from_settings(), args.project)
    try:
        result = redrive(SqsMessageQueues(), context.names, project_id)
    except NotFoundError as error:
        return _refuse(f"{error} (is project {project_id} connected?)")
    text = (
        f"Moved {result.moved} message(s) of project {project_id} from "
        f"{context.names.project_dead_letter_queue(project_id)} back to "
        f"{context.names.project_queue(project_id)}."
    )
    if result.left:
        text += (
            f" {result.left} message(s) are still in the dead-letter queue, held by another "
            "receiver (or an interrupted run); run it again once they are visible."
        )
    _emit(args, result, text)
    return 0


def run_batch(args: argparse.Namespace) -> int:
    from merge_assist.adapters.aws import store_from_settings
    from merge_assist.adapters.recovery import StepFunctionsBatchExecutions
    from merge_assist.admin.recovery import Refused, cancel_batch, retry_batch
    from merge_assist.platform.clock import SystemClock
    from merge_assist.platform.settings import get_settings

    context = _context(args)
    store = store_from_settings()
    executions = StepFunctionsBatchExecutions(state_machine_arn=context.state_machine_arn)
    try:
        if args.action == "retry":
            settings = get_settings()
            retried = retry_batch(
                store,
                executions,
                SystemClock(),
                args.batch_id,
                polls=settings.polls,
            )
            _emit(args, retried, _retried_text(retried))
        else:
            cancelled = cancel_batch(store, executions, SystemClock(), args.batch_id)
            _emit(args, cancelled, _cancelled_text(cancelled))
    except Refused as refused:
        return _refuse(str(refused))
    return 0


def _mrs(iids: list[int]) -> str:
    return ", ".join(f"!{iid}" for iid in iids) or "none"


def _retried_text(retried: Any) -> str:
    lines = [
        f"Batch {retried.batch_id} ({retried.target_branch}, project {retried.project_id}) "
        f"was {retried.found.value}"
        + (f", its execution {retried.execution}" if retried.execution else "")
        + ("; marked failed" if retried.closed else "")
        + ".",
        f"Back in line: {_mrs(retried.requeued)}."
        + (" Branch lock released." if retried.released_lock else ""),
    ]
    if retried.started:
        lines.append(f"Batch {retried.next_batch} runs.")
    else:
        lines.append(f"No batch started ({retried.why_not_started}).")
    return "\n".join(lines)


def _cancelled_text(cancelled: Any) -> str:
    if cancelled.cancelled:
        head = (
            f"Cancelled batch {cancelled.batch_id} ({cancelled.target_branch}, project "
            f"{cancelled.project_id}), which was {cancelled.found.value}"
            + ("; its execution is stopped" if cancelled.stopped else "")
            + "."
        )
    elif cancelled.found.value == "cancelled":
        head = f"Batch {cancelled.batch_id} is already cancelled."
    else:
        head = f"Batch {cancelled.batch_id} has already ended ({cancelled.found.value})."
    lines = [head]
    if cancelled.requeued or cancelled.cancelled:
        lines.append(f"Back in line: {_mrs(cancelled.requeued)}.")
    if cancelled.released_lock:
        lines.append("Branch lock released.")
    if cancelled.cancelled or cancelled.requeued or cancelled.released_lock:
        lines.append(NOT_STARTED_NEXT.format(id=cancelled.batch_id))
    return "\n".join(lines)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--local", metavar="DATA", help="use the local stack in DATA")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="deployment prefix")


def add_parser(commands: Any) -> None:
    dlq = commands.add_parser("dlq", help="a project's dead-letter queue")
    dlq_actions = dlq.add_subparsers(dest="action", required=True)
    redrive = dlq_actions.add_parser(
        "redrive",
        help="move every dead letter back to the project's queue (again: moves nothing)",
    )
    redrive.add_argument("project", help="project id, or the group/path it was connected as")
    _common(redrive)
    redrive.set_defaults(run=run_redrive)

    batch = commands.add_parser("batch", help="retry or cancel a batch")
    batch_actions = batch.add_subparsers(dest="action", required=True)
    for action, help_text in (
        (
            "retry",
            "requeue what a failed, cancelled or dead batch holds and start its queue again",
        ),
        (
            "cancel",
            "stop a batch, requeue its MRs and release its branch (does not start the next)",
        ),
    ):
        parser = batch_actions.add_parser(action, help=help_text)
        parser.add_argument("batch_id", metavar="ID", help="the batch id (its execution name)")
        _common(parser)
        parser.set_defaults(run=run_batch)
