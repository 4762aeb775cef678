"""marge-bot (PyPI ``marge-bot``), run unmodified as a subprocess against the simulator,
merges a set of assigned MRs in its serial mode and in its ``--batch`` mode."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import marge_runner
from local.gitlab_sim import GitLabSimulator

pytest.importorskip("marge.app", reason="marge-bot is not installed")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 60.0


def _run_marge_until_merged(
    sim: GitLabSimulator, tmp_path: Path, extra: list[str], iids: list[int], token: str
) -> list[str]:
    log = tmp_path / "marge.log"
    env = dict(os.environ, MARGE_AUTH_TOKEN=token, PYTHONPATH=str(REPO_ROOT))
    command = [
        sys.executable,
        marge_runner.__file__,
        "--gitlab-url",
        sim.url,
        "--use-https",
        "--ci-timeout",
        "60s",
        "--git-timeout",
        "30s",
        *extra,
    ]
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + DEADLINE_S
            states: list[str] = []
            while time.monotonic() < deadline and process.poll() is None:
                states = [sim.merge_request("g/app", iid)["state"] for iid in iids]
                if all(state == "merged" for state in states):
                    break
                time.sleep(0.2)
        finally:
            process.terminate()
            process.wait(timeout=10)
    assert all(state == "merged" for state in states), log.read_text()[-4000:]
    return states


def _scenario(sim: GitLabSimulator) -> tuple[str, list[int]]:
    _, token = sim.create_user("marge-bot")
    sim.create_user("alice")
    project = sim.create_project(
        "app",
        namespace="g",
        files={"README.md": "hi\n"},
        members={"marge-bot": 40, "alice": 30},
        only_allow_merge_if_pipeline_succeeds=True,
    )
    iids = [
        sim.create_merge_request(
            project,
            f"feature-{n}",
            f"Add {n}",
            {f"f{n}.txt": f"{n}\n"},
            author="alice",
            assignees=["marge-bot"],
        )
        for n in range(3)
    ]
    return token, iids


@pytest.mark.slow
def test_marge_bot_serial_mode(sim: GitLabSimulator, tmp_path: Path) -> None:
    token, iids = _scenario(sim)
    _run_marge_until_merged(sim, tmp_path, [], iids, token)
    for n in range(3):
        assert sim.read_file("g/app", "main", f"f{n}.txt") == f"{n}\n".encode()
    merged_by = {sim.merge_request("g/app", iid)["merged_by"]["username"] for iid in iids}
    assert merged_by == {"marge-bot"}


@pytest.mark.slow
def test_marge_bot_batch_mode(sim: GitLabSimulator, tmp_path: Path) -> None:
    token, iids = _scenario(sim)
    _run_marge_until_merged(sim, tmp_path, ["--batch"], iids, token)
    for n in range(3):
        assert sim.read_file("g/app", "main", f"f{n}.txt") == f"{n}\n".encode()
    with sim.store.lock:
        batch_mrs = [mr for mr in sim.store.merge_requests.values() if mr.iid not in iids]
    assert batch_mrs, "marge-bot did not open its batch merge request"
