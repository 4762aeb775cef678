"""``merge-assist local`` as a user runs it: starts, writes endpoints.json, stops on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.e2e


def test_local_command_serves_writes_endpoints_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    data = tmp_path / "data"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli.main",
            "local",
            "--port",
            "0",
            "--data",
            str(data),
            "--demo",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))},
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 180
        while not any(line.startswith("Ready.") for line in lines):
            assert time.monotonic() < deadline, "".join(lines)
            line = process.stdout.readline()  # type: ignore[union-attr]
            assert line or process.poll() is None, process.stderr.read()  # type: ignore[union-attr]
            lines.append(line)
        output = "".join(lines)

        endpoints = json.loads((data / "endpoints.json").read_text())
        assert endpoints["api"] in output
        assert endpoints["aws_endpoint"] in output
        assert {user["group"] for user in endpoints["demo_users"]} == {
            "admin",
            "project_owner",
            "priority_manager",
            "viewer",
        }
        # The demo: six MRs, one conflicting, two that fail CI together; bisection finds
        # which, both are rejected with their reasons, the other four land.
        assert output.count("  opened !") == 6
        assert "bisected" in output
        merged = next(line for line in lines if line.startswith("Merged: "))
        assert merged.count("!") == 4
        rejected = [line for line in lines if line.startswith("Rejected: ")]
        assert len(rejected) == 2
        assert any("conflicts" in line and "README.md" in line for line in rejected)
        assert any("/pipelines/" in line for line in rejected)
        assert requests.get(endpoints["api"] + "/health", timeout=10).status_code == 401

        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert "Stopped." in stdout


def test_a_busy_port_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "cli.main",
                "local",
                "--port",
                str(port),
                "--gitlab-port",
                "0",
                "--data",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))},
            check=False,
        )

    assert result.returncode == 2
    assert "already in use" in result.stderr
    assert "Traceback" not in result.stderr
