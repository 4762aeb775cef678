"""``merge-assist``: the command line of admins and developers.

Subcommands import what they need when they run, so ``merge-assist --help`` stays fast and
the Lambda layer never needs the local stack's dependencies.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any


def _run_local(args: argparse.Namespace) -> int:
    from local.stack import LocalStack, LocalStackConfig

    data_dir = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="merge-assist-"))
    token = Path(args.gitlab_token_file).read_text().strip() if args.gitlab_token_file else None
    config = LocalStackConfig(
        data_dir=data_dir,
        http_port=args.port,
        prefix=args.prefix,
        gitlab_url=args.gitlab_url,
        gitlab_token=token,
    )
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
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
        f"  AWS (moto)     {endpoints['aws_endpoint']}  region {endpoints['region']}",
        f"  GitLab         {endpoints['gitlab']}",
        "  demo users (Cognito, one per role):",
        *(
            f"    {user['username']:<18} {user['password']}  ({user['group']})"
            for user in endpoints["demo_users"]
        ),
        f"  endpoints file {path}",
    ]
    print("\n".join(lines), flush=True)


def build_parser() -> argparse.ArgumentParser:
    from merge_assist.resources import DEFAULT_PREFIX

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
        "--gitlab-url", default="http://127.0.0.1:8929", help="GitLab the functions talk to"
    )
    local.add_argument("--gitlab-token-file", help="file holding the GitLab bot token")
    local.add_argument(
        "--demo", action="store_true", help="seed a demo project and run a merge-batch execution"
    )
    local.set_defaults(run=_run_local)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        logging.getLogger("botocore").setLevel(logging.WARNING)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
