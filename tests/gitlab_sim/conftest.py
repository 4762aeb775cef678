"""A running simulator per test, on a fast clock, and clients for it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import gitlab
import pytest

from local.gitlab_sim import GitLabSimulator

# 1 simulated minute takes 60 ms: a default pipeline (5 s queued + 60 s running) ~65 ms.
TIME_SCALE = 0.001


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[GitLabSimulator]:
    with GitLabSimulator(tmp_path / "gitlab", time_scale=TIME_SCALE) as simulator:
        yield simulator


@pytest.fixture
def gl(sim: GitLabSimulator) -> gitlab.Gitlab:
    return gitlab.Gitlab(sim.url, private_token=sim.admin_token)


@dataclass
class Received:
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class HookReceiver:
    """A local HTTP endpoint recording what it receives and answering ``status``."""

    url: str = ""
    status: int = 200
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self, name: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.headers.get("X-Gitlab-Event") == name]


@pytest.fixture
def receiver() -> Iterator[HookReceiver]:
    state = HookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with state.lock:
                state.received.append(Received(dict(self.headers), json.loads(body)))
            self.send_response(state.status)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/hook"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
