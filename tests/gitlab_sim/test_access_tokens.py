"""Personal access token self-inspection, rotation and revocation, as GitLab documents them
(api/personal_access_tokens.md), driven by python-gitlab and by plain requests."""

from __future__ import annotations

import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import gitlab
import pytest
import requests
from gitlab.exceptions import GitlabAuthenticationError

from local.gitlab_sim import GitLabSimulator

TOKEN_FIELDS = {
    "id",
    "name",
    "revoked",
    "created_at",
    "description",
    "scopes",
    "user_id",
    "last_used_at",
    "active",
    "expires_at",
}


def _today() -> date:
    return datetime.now(UTC).date()


def _self(sim: GitLabSimulator, token: str) -> requests.Response:
    return requests.get(
        f"{sim.url}/api/v4/personal_access_tokens/self",
        headers={"PRIVATE-TOKEN": token},
        timeout=5,
    )


def _rotate(sim: GitLabSimulator, token: str, **data: str) -> requests.Response:
    return requests.post(
        f"{sim.url}/api/v4/personal_access_tokens/self/rotate",
        headers={"PRIVATE-TOKEN": token},
        data=data,
        timeout=5,
    )


def test_python_gitlab_inspects_and_rotates_its_own_token(sim: GitLabSimulator) -> None:
    bot, old = sim.create_user("bot")
    client = gitlab.Gitlab(sim.url, private_token=old)
    expires_at = (_today() + timedelta(days=45)).isoformat()

    mine = client.personal_access_tokens.get("self")
    rotated = client.personal_access_tokens.rotate("self", expires_at=expires_at)

    assert mine.user_id == bot.id
    assert mine.active is True
    assert mine.revoked is False
    assert set(rotated) == TOKEN_FIELDS | {"token"}
    assert rotated["user_id"] == bot.id
    assert rotated["expires_at"] == expires_at
    assert rotated["scopes"] == mine.scopes
    assert rotated["id"] != mine.id
    assert rotated["token"] != old
    # The old token is revoked at once; the new one works for everything the old did.
    with pytest.raises(GitlabAuthenticationError):
        client.personal_access_tokens.get("self")
    renewed = gitlab.Gitlab(sim.url, private_token=rotated["token"])
    renewed.auth()
    assert renewed.user is not None
    assert renewed.user.id == bot.id
    assert renewed.personal_access_tokens.get("self").id == rotated["id"]


def test_self_has_gitlabs_fields_and_any_auth_header(sim: GitLabSimulator) -> None:
    bot, token = sim.create_user("bot")

    by_header = _self(sim, token)
    by_bearer = requests.get(
        f"{sim.url}/api/v4/personal_access_tokens/self",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )

    assert by_header.status_code == 200
    body = by_header.json()
    assert set(body) == TOKEN_FIELDS
    assert (body["user_id"], body["active"], body["revoked"]) == (bot.id, True, False)
    assert body["last_used_at"] is not None
    assert by_bearer.json()["id"] == body["id"]


def test_rotation_defaults_to_a_week_and_checks_the_date(sim: GitLabSimulator) -> None:
    _, token = sim.create_user("bot")

    past = _rotate(sim, token, expires_at=_today().isoformat())
    malformed = _rotate(sim, token, expires_at="next week")
    default = _rotate(sim, token)

    assert past.status_code == 400
    assert malformed.status_code == 400
    assert default.status_code == 200
    assert default.json()["expires_at"] == (_today() + timedelta(weeks=1)).isoformat()


def test_a_revoked_or_expired_token_is_refused_everywhere(sim: GitLabSimulator) -> None:
    _, token = sim.create_user("bot")
    expired = sim.issue_token("bot", expires_at=_today().isoformat())
    sim.revoke_token(token)

    for refused in (token, expired, "glpat-never-issued"):
        assert _self(sim, refused).status_code == 401
        assert _rotate(sim, refused).status_code == 401
        assert _rotate(sim, refused).json() == {"message": "401 Unauthorized"}


def test_rotating_needs_the_api_or_self_rotate_scope(sim: GitLabSimulator) -> None:
    sim.create_user("bot")
    reader = sim.issue_token("bot", scopes=["read_api"])
    self_rotating = sim.issue_token("bot", scopes=["read_api", "self_rotate"])

    assert _rotate(sim, reader).status_code == 403
    assert _self(sim, reader).status_code == 200
    assert _rotate(sim, self_rotating).status_code == 200


def test_rotating_a_revoked_token_revokes_its_whole_family(sim: GitLabSimulator) -> None:
    _, first = sim.create_user("bot")
    second = _rotate(sim, first).json()["token"]
    third = _rotate(sim, second).json()["token"]
    unrelated = sim.issue_token("bot")
    client = gitlab.Gitlab(sim.url, private_token=first)

    with pytest.raises(GitlabAuthenticationError):
        client.personal_access_tokens.rotate("self")

    assert _self(sim, third).status_code == 401
    assert _self(sim, unrelated).status_code == 200


def test_self_revoke(sim: GitLabSimulator) -> None:
    _, token = sim.create_user("bot")

    response = requests.delete(
        f"{sim.url}/api/v4/personal_access_tokens/self",
        headers={"PRIVATE-TOKEN": token},
        timeout=5,
    )

    assert response.status_code == 204
    assert _self(sim, token).status_code == 401


def test_git_over_http_refuses_a_rotated_token(sim: GitLabSimulator, tmp_path: Path) -> None:
    _, old = sim.create_user("bot")
    sim.create_project("app", namespace="g", files={"a.txt": "a\n"}, members={"bot": 40})
    new = _rotate(sim, old).json()["token"]

    def clone(token: str, into: str) -> int:
        url = sim.url.replace("http://", f"http://oauth2:{token}@") + "/g/app.git"
        return subprocess.run(
            ["git", "-c", "credential.helper=", "clone", "-q", url, str(tmp_path / into)],
            capture_output=True,
            check=False,
            timeout=60,
        ).returncode

    assert clone(old, "old") != 0
    assert clone(new, "new") == 0
