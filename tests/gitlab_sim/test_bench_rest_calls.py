"""The queue benchmark counts each bot's REST calls by the user its token belongs to: git
over HTTP, refused requests and calls made outside the counting block are not counted."""

from __future__ import annotations

import requests

from bench.merge_queue import rest_calls
from local.gitlab_sim import GitLabSimulator


def _get(sim: GitLabSimulator, path: str, token: str) -> int:
    return requests.get(
        f"{sim.url}{path}", headers={"PRIVATE-TOKEN": token}, timeout=10
    ).status_code


def test_rest_calls_are_counted_per_user_while_the_block_runs(sim: GitLabSimulator) -> None:
    _, bot = sim.create_user("bot", name="Bot")
    _, other = sim.create_user("other", name="Other")
    project = sim.create_project("app", namespace="g", files={"a.txt": "a\n"}, members={"bot": 30})
    assert _get(sim, "/api/v4/user", bot) == 200  # before the block

    with rest_calls(sim) as calls:
        assert _get(sim, "/api/v4/user", bot) == 200
        assert _get(sim, f"/api/v4/projects/{project.id}", sim.admin_token) == 200
        assert _get(sim, "/api/v4/projects/999999", bot) == 404  # answered: counted
        assert _get(sim, "/api/v4/user", other) == 200
        assert _get(sim, "/api/v4/user", bot) == 200
        assert _get(sim, "/api/v4/user", "not-a-token") == 401
        refs = requests.get(
            f"{sim.url}/g/app.git/info/refs",
            params={"service": "git-upload-pack"},
            auth=("oauth2", bot),
            timeout=10,
        )
        assert refs.status_code == 200

    assert _get(sim, "/api/v4/user", bot) == 200  # after the block
    assert dict(calls) == {"bot": 3, "other": 1, "root": 1}
