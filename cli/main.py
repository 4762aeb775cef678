"""``merge-assist``: the command line of admins and developers.

Subcommands import what they need when they run, so ``merge-assist --help`` stays fast and
the Lambda layer never needs the local stack's dependencies.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any


class StopRequest:
    """Whether Ctrl-C or SIGTERM asked a foreground command to end.

    ``wait`` looks at a flag a few times a second rather than block on a lock. CPython's
    C-level handler runs in whichever thread the kernel picks and only marks the signal
    for the main thread, which runs the Python handler at its next bytecode; a main thread
    blocked in ``Event.wait()`` wakes only if the signal interrupted that very wait, so a
    Ctrl-C caught by another of the stack's threads, or by the main thread just before it
    blocked, went unseen for good. The handler only sets the flag: setting an ``Event``
    from it could deadlock with the main thread holding that Event's own lock.
    """

    POLL_SECONDS = 0.1

    def __init__(self) -> None:
        self.requested = False

    def wait(self) -> None:
        """Returns once a stop was requested, before or during the call."""
        while not self.requested:
            time.sleep(self.POLL_SECONDS)


def _stop_on_signals() -> StopRequest:
    """Ctrl-C and SIGTERM both end a foreground command cleanly."""
    stopping = StopRequest()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    return stopping


def _data_dir(value: str | None) -> Path:
    return Path(value) if value else Path(tempfile.mkdtemp(prefix="merge-assist-"))


def _run_gitlab_sim(args: argparse.Namespace) -> int:
    from local.gitlab_sim import GitLabSimulator

    data_dir = _data_dir(args.data)
    stopping = _stop_on_signals()
    with GitLabSimulator(data_dir, port=args.port, time_scale=args.time_scale) as simulator:
        print(f"GitLab simulator at {simulator.url}", flush=True)
        print(f"admin token: {simulator.admin_token} (also in {data_dir / 'admin-token'})")
        print("Ready. Ctrl-C stops the simulator.", flush=True)
        stopping.wait()
    print("Stopped.", flush=True)
    return 0


def _positive_seconds(value: str) -> float:
    seconds = float(value)
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return seconds


def _run_bench(args: argparse.Namespace) -> int:
    from bench import merge_queue as bench_queue
    from bench import webhook as bench_webhook
    from merge_assist.platform.config import DEFAULT_BATCH_SIZE

    if not args.verbose:
        # One JSON line per Lambda event would bury the figures.
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    if args.which == "faults":
        from bench import faults as bench_faults

        started = time.monotonic()
        faults = bench_faults.run(
            args.mrs, args.seed, progress=lambda line: print(line, flush=True)
        )
        print(faults.table())
        print(f"({time.monotonic() - started:.0f} s)", flush=True)
        return 0 if faults.passed else 1
    only = [name.strip() for name in args.contenders.split(",")] if args.contenders else None
    if args.which == "report" and not args.queue_run:
        print("merge-assist bench report: give the runs with --queue-run FILE", file=sys.stderr)
        return 2
    if args.json and not Path(args.json).resolve().parent.is_dir():
        print(f"merge-assist bench: no folder for {args.json}", file=sys.stderr)
        return 2
    try:
        if only is not None:
            bench_queue.select_contenders(only, DEFAULT_BATCH_SIZE)
        # Read before a run of many minutes, so a wrong path fails first.
        queues = [bench_queue.load_queue_run(Path(path)) for path in args.queue_run]
    except (OSError, ValueError) as error:
        print(f"merge-assist bench: {error}", file=sys.stderr)
        return 2
    if args.which in ("queue", "all"):
        print(
            f"Queue benchmark ({args.size}, seed {args.seed}, CI {args.ci_seconds:g} s) ...",
            flush=True,
        )
        queue = bench_queue.run_benchmark(
            args.size,
            args.seed,
            ci_seconds=args.ci_seconds,
            only=only,
            progress=lambda line: print(f"  {line}", flush=True),
        )
        print(bench_queue.describe(queue.workload))
        print(queue.table())
        print(queue.breakdown())
        print(f"({queue.wall_seconds:.0f} s)", flush=True)
        if args.json:
            Path(args.json).write_text(queue.to_json())
            print(f"Wrote {args.json}", flush=True)
        queues.insert(0, queue)
    cost = None
    if args.which in ("cost", "all"):
        print(f"Cost of a Merge Assist run ({args.size}, seed {args.seed}) ...", flush=True)
        cost = _bench_cost(args)
        print(cost, flush=True)
    # Last: the webhook benchmark points the process's environment at its own in-memory AWS
    # for good, while the local stacks of the queue and cost runs restore what they change.
    webhook = None
    if args.which in ("webhook", "all"):
        webhook = bench_webhook.run(iterations=args.iterations)
        print(webhook.report(), flush=True)
    report = args.report if args.report is not None else args.which in ("all", "report")
    if report:
        from bench import report as bench_report

        written = bench_report.write(
            Path(args.docs), webhook=webhook, queues=bench_queue.gather(queues), cost=cost
        )
        print("Wrote " + ", ".join(str(path) for path in written), flush=True)
    return 0


def _bench_cost(args: argparse.Namespace) -> str:
    """The AWS usage of the queue workload under Merge Assist's default batch size, priced."""
    from bench import cost as bench_cost
    from bench import merge_queue as bench_queue
    from bench.usage import metered
    from local.stack import LocalStack
    from merge_assist.platform.config import DEFAULT_BATCH_SIZE

    workload = bench_queue.generate_workload(bench_queue.SIZES[args.size], args.seed)
    default_batch = DEFAULT_BATCH_SIZE
    with (
        tempfile.TemporaryDirectory(prefix="bench-cost-") as data_dir,
        LocalStack(bench_queue.stack_config(Path(data_dir), workload)) as stack,
    ):
        with metered(stack) as meter:
            result = bench_queue.run_merge_assist(
                stack,
                workload,
                bench_queue.Contender(
                    f"merge-assist-batch-{default_batch}", "merge-assist", "batch", default_batch
                ),
            )
        return bench_cost.cost_report(meter.snapshot(), result.merged)


def _run_local(args: argparse.Namespace) -> int:
    from local.stack import LocalStack, LocalStackConfig

    token = Path(args.gitlab_token_file).read_text().strip() if args.gitlab_token_file else None
    if not args.verbose:
        # The functions' own JSON logs, one per event, would bury what the stack prints.
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    config = LocalStackConfig(
        data_dir=_data_dir(args.data),
        http_port=args.port,
        prefix=args.prefix,
        gitlab_url=args.gitlab_url,
        gitlab_token=token,
        gitlab_port=args.gitlab_port,
        gitlab_time_scale=args.time_scale,
        schedule_scale=args.schedule_scale,
    )
    stopping = _stop_on_signals()
    with LocalStack(config) as stack:
        endpoints = stack.endpoints()
        _print_endpoints(endpoints, stack.endpoints_file)
        if args.demo:
            from local.demo import run_demo

            run_demo(stack)
        print("Ready. Ctrl-C stops the stack.", flush=True)
        stopping.wait()
        print("Stopping...", flush=True)
    print("Stopped.", flush=True)
    return 0


def _print_endpoints(endpoints: dict[str, Any], path: Path) -> None:
    lines = [
        "Merge Assist local stack",
        f"  dashboard      {endpoints['dashboard']}",
        f"  API            {endpoints['api']}",
        f"  webhook        {endpoints['webhook']}",
        f"  live updates   {endpoints['websocket']}",
        f"  AWS (moto)     {endpoints['aws_endpoint']}  region {endpoints['region']}",
        f"  GitLab         {endpoints['gitlab']}"
        + (
            f"  (simulator; admin token {endpoints['gitlab_admin_token']})"
            if endpoints.get("gitlab_admin_token")
            else ""
        ),
        "  demo users (Cognito, one per role):",
        *(
            f"    {user['username']:<18} {user['password']}  ({user['group']})"
            for user in endpoints["demo_users"]
        ),
        f"  endpoints file {path}",
        f"  metrics (EMF) {endpoints['metrics_file']}",
    ]
    print("\n".join(lines), flush=True)


def build_parser() -> argparse.ArgumentParser:
    from merge_assist.platform.resources import DEFAULT_PREFIX

    parser = argparse.ArgumentParser(prog="merge-assist", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    commands = parser.add_subparsers(dest="command", required=True)

    local = commands.add_parser(
        "local",
        help="run the whole stack on this machine (moto, in-process Lambdas, HTTP front)",
    )
    local.add_argument("--data", help="folder for the stack's data (default: a new temp dir)")
    local.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    local.add_argument("--prefix", default=DEFAULT_PREFIX, help="resource name prefix")
    local.add_argument(
        "--gitlab-url",
        help="a real GitLab for the functions to talk to (default: the embedded simulator)",
    )
    local.add_argument("--gitlab-token-file", help="with --gitlab-url: the bot's token")
    local.add_argument(
        "--gitlab-port", type=int, default=8929, help="the embedded simulator's port (8929)"
    )
    local.add_argument(
        "--time-scale",
        type=float,
        default=0.05,
        help="the simulator's clock: 0.05 runs a 60 s pipeline in 3 s",
    )
    local.add_argument(
        "--schedule-scale",
        type=float,
        default=1.0,
        help="scheduled rules run at their rate times this (0.1: the watcher every 30 s)",
    )
    local.add_argument(
        "--demo",
        action="store_true",
        help="open demo merge requests in the simulator and watch the queue merge them",
    )
    local.set_defaults(run=_run_local)

    simulator = commands.add_parser("gitlab-sim", help="run the GitLab simulator alone")
    simulator.add_argument("--data", help="folder for its repositories and admin-token")
    simulator.add_argument("--port", type=int, default=8929, help="HTTP port (default 8929)")
    simulator.add_argument(
        "--time-scale", type=float, default=1.0, help="simulated seconds per real second"
    )
    simulator.set_defaults(run=_run_gitlab_sim)

    bench = commands.add_parser("bench", help="measure Merge Assist and print the figures")
    bench.add_argument(
        "which",
        choices=["queue", "webhook", "cost", "faults", "all", "report"],
        help="queue: Merge Assist against marge-bot on one workload; webhook: the receiver's "
        "latency; cost: AWS usage of a queue run, priced; faults: the queue draining after "
        "GitLab's faults (not part of all); all: the first three, and the report; report: "
        "only the report, of the --queue-run files",
    )
    bench.add_argument("--mrs", type=int, default=100, help="faults: how many MRs")
    bench.add_argument("--iterations", type=int, default=200, help="rounds of deliveries")
    bench.add_argument(
        "--size", choices=["small", "large"], default="small", help="queue workload: 16 or 48 MRs"
    )
    bench.add_argument("--seed", type=int, default=1, help="the queue workload's seed")
    bench.add_argument(
        "--ci-seconds",
        type=_positive_seconds,
        default=1.2,
        help="queue: wall seconds one CI run takes; waits are reported in these units "
        "(default 1.2, the quick run)",
    )
    bench.add_argument(
        "--contenders",
        help="queue: only these, comma-separated (merge-assist-serial, merge-assist-batch-N "
        "for N in 2, 4, 8 and the default size, marge-bot, marge-bot-batch)",
    )
    bench.add_argument("--json", help="queue: also write the run's results to this file")
    bench.add_argument(
        "--queue-run",
        action="append",
        default=[],
        metavar="FILE",
        help="a queue run written by --json, shown in the report after this run's (repeat "
        "for several: each gets its own tables)",
    )
    bench.add_argument(
        "--report",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write docs/benchmarks.md and docs/benchmarks.png (default: only for all)",
    )
    bench.add_argument("--docs", default="docs", help=argparse.SUPPRESS)
    bench.set_defaults(run=_run_bench)

    from cli import project as cli_project
    from cli import recovery as cli_recovery

    cli_project.add_parser(commands)
    cli_recovery.add_parser(commands)
    return parser


# Their DEBUG lines are the wire: request and response bodies, Secrets Manager's
# ``SecretString`` (the bot token, webhook secrets) among them. Never below INFO.
WIRE_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3")
# Their INFO lines (every request, every git service call) would bury the stack's own.
CHATTY_LOGGERS = ("botocore", "dulwich")
SECRET_PATTERNS = (
    re.compile(r'("SecretString"\s*:\s*)"(?:[^"\\]|\\.)*"'),
    re.compile(
        r"((?:PRIVATE-TOKEN|X-Gitlab-Token|Authorization)['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+", re.I
    ),
    re.compile(r"()\bglpat-[A-Za-z0-9_\-]{8,}"),
)


class SecretMask(logging.Filter):
    """The last guard: whatever a library logs, tokens and secret values are masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = message
        for pattern in SECRET_PATTERNS:
            masked = pattern.sub(lambda match: f"{match.group(1)}***", masked)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure_logging(*, verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        if not any(isinstance(f, SecretMask) for f in handler.filters):
            handler.addFilter(SecretMask())
    for name in WIRE_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    if not verbose:
        for name in CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(verbose=args.verbose)
    try:
        result: int = args.run(args)
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        print(
            f"merge-assist: a port it needs is already in use ({error.strerror}); "
            "choose others with --port (and --gitlab-port), or 0 for any free one",
            file=sys.stderr,
        )
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
