"""The bot token read from Secrets Manager (moto) by the gateway and the git repositories,
against the GitLab simulator: a token GitLab refuses is read again past the cache, and the
call is sent once more when the secret holds another one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from moto import mock_aws

from local.gitlab_sim import GitLabSimulator
from local.gitlab_sim.models import Project
from merge_assist.adapters import gitlab_gateway
from merge_assist.adapters.aws import clear_caches
from merge_assist.adapters.git_engine import GitCredentialsRefused
from merge_assist.adapters.gitlab_gateway import (
    PythonGitLabGateway,
    SecretTokenSource,
    gateway_from_settings,
)
from merge_assist.adapters.repositories import repository_for
from merge_assist.platform.config import ProjectConfig
from merge_assist.platform.errors import GitLabRefused
from merge_assist.platform.metrics import Metric
from merge_assist.platform.resources import ENV_PREFIX
from merge_assist.platform.settings import Settings
from merge_assist.queue.batch_plan import branch_ref
from tests.recording_meter import RecordingMeter

SECRET = "test/gitlab-bot-token"
MAINTAINER = 40


@dataclass
class World:
    sim: GitLabSimulator
    secrets: Any
    project: Project
    token: str
    reads: list[dict[str, Any]]

    def store(self, token: str, *, stages: list[str] | None = None) -> None:
        request: dict[str, Any] = {"SecretId": SECRET, "SecretString": token}
        if stages is not None:
            request["VersionStages"] = stages
        self.secrets.put_secret_value(**request)

    def new_token(self) -> str:
        return self.sim.issue_token("bot")

    def reads_of(self, stage: str | None = None) -> int:
        return sum(1 for read in self.reads if read.get("VersionStage") == stage)


@pytest.fixture
def world(aws_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with (
        mock_aws(),
        GitLabSimulator(tmp_path / "gitlab", time_scale=0.001) as sim,
    ):
        _, token = sim.create_user("bot")
        project = sim.create_project(
            "app", namespace="g", files={"a.txt": "a\n"}, members={"bot": MAINTAINER}
        )
        monkeypatch.setenv(f"{ENV_PREFIX}GITLAB_URL", sim.url)
        monkeypatch.setenv(f"{ENV_PREFIX}BOT_TOKEN_SECRET", SECRET)
        monkeypatch.setenv(f"{ENV_PREFIX}GIT_WORK_DIR", str(tmp_path / "git"))
        clear_caches()
        secrets = boto3.client("secretsmanager")
        secrets.create_secret(Name=SECRET, SecretString=token)
        reads: list[dict[str, Any]] = []

        def record(params: dict[str, Any], **_: Any) -> None:
            reads.append(dict(params))

        secrets.meta.events.register("provide-client-params.secrets-manager.GetSecretValue", record)

        # The functions' provider, on a client that records every read of the secret.
        @lru_cache(maxsize=1)
        def provider() -> SecretsProvider:
            return SecretsProvider(boto3_client=secrets)

        monkeypatch.setattr(gitlab_gateway, "_secrets", provider)
        try:
            yield World(sim, secrets, project, token, reads)
        finally:
            clear_caches()


def test_a_replaced_token_is_read_again_on_the_first_401(world: World) -> None:
    meter = RecordingMeter()
    gateway = gateway_from_settings(meter=meter)
    assert gateway.project_merge_method(world.project.id) == "merge"
    replacement = world.new_token()
    world.store(replacement)
    world.sim.revoke_token(world.token)

    assert gateway.project_merge_method(world.project.id) == "merge"
    # The cached token was refused once, the secret read past the cache, the call repeated.
    assert meter.values(Metric.GITLAB_AUTH_FAILURES) == [1]
    assert world.reads_of() == 2
    # A gateway built afterwards starts with the new token from the cache.
    meter.clear()
    assert gateway_from_settings(meter=meter).project_merge_method(world.project.id) == "merge"
    assert Metric.GITLAB_AUTH_FAILURES not in meter.names()
    assert world.reads_of() == 2


def test_mid_rotation_the_pending_token_is_tried(world: World) -> None:
    meter = RecordingMeter()
    gateway = PythonGitLabGateway(world.sim.url, SecretTokenSource(SECRET), meter=meter)
    # GitLab has rotated: the new token is only in the pending version so far.
    world.store(world.new_token(), stages=["AWSPENDING"])
    world.sim.revoke_token(world.token)

    assert gateway.project_merge_method(world.project.id) == "merge"
    assert meter.values(Metric.GITLAB_AUTH_FAILURES) == [1]
    assert world.reads_of("AWSPENDING") == 1


def test_a_revoked_token_with_nothing_new_fails_once_without_the_token(world: World) -> None:
    meter = RecordingMeter()
    gateway = gateway_from_settings(Settings(), meter=meter)
    world.sim.revoke_token(world.token)

    with pytest.raises(GitLabRefused) as raised:
        gateway.project_merge_method(world.project.id)

    assert raised.value.status == 401
    assert world.token not in str(raised.value)
    # Nothing else to try: the call is not repeated.
    assert meter.values(Metric.GITLAB_AUTH_FAILURES) == [1]
    assert meter.values(Metric.GITLAB_API_CALLS) == [1]


def test_a_forbidden_answer_is_counted_but_not_retried(world: World) -> None:
    other = world.sim.create_project("other", namespace="g", files={"a.txt": "a\n"})
    world.sim.create_user("reader")
    reader = world.sim.issue_token("reader")
    meter = RecordingMeter()
    gateway = PythonGitLabGateway(world.sim.url, reader, meter=meter)
    world.sim.add_member(other, "reader", 20)

    with pytest.raises(GitLabRefused) as raised:
        gateway.remove_hook(other.id, "https://example.com/hook")

    assert raised.value.status == 403
    assert meter.values(Metric.GITLAB_AUTH_FAILURES) == [1]
    assert world.reads_of() == 0


def test_a_plain_token_is_never_read_again(world: World) -> None:
    gateway = PythonGitLabGateway(world.sim.url, world.token)
    world.sim.revoke_token(world.token)

    with pytest.raises(GitLabRefused):
        gateway.project_merge_method(world.project.id)
    assert world.reads == []


def test_git_reads_a_replaced_token_again_on_a_401(world: World) -> None:
    meter = RecordingMeter()
    gateway = gateway_from_settings(meter=meter)
    config = ProjectConfig(project_id=world.project.id, path=world.project.path_with_namespace)
    first = repository_for(config, gateway, meter=meter)
    main = branch_ref("main")
    initial = first.fetch([main])[main]
    assert initial == world.sim.branch_sha(world.project, "main")
    replacement = world.new_token()
    world.store(replacement)
    world.sim.revoke_token(world.token)
    moved = world.sim.commit_files(world.project, "main", {"b.txt": "b\n"})

    later = repository_for(config, gateway, meter=meter)
    assert later.fetch([main])[main] == moved

    assert meter.values(Metric.GITLAB_AUTH_FAILURES) == [1]
    # The new engine works on the same repository: what the first fetched is there.
    assert later.is_ancestor(initial, moved)


def test_git_with_a_revoked_token_and_nothing_new_is_refused(world: World) -> None:
    meter = RecordingMeter()
    gateway = PythonGitLabGateway(world.sim.url, world.sim.admin_token)
    config = ProjectConfig(project_id=world.project.id, path=world.project.path_with_namespace)
    repository = repository_for(config, gateway, tokens=SecretTokenSource(SECRET), meter=meter)
    world.sim.revoke_token(world.token)

    with pytest.raises(GitCredentialsRefused) as raised:
        repository.fetch([branch_ref("main")])

    assert world.token not in str(raised.value)
    assert meter.values(Metric.GITLAB_AUTH_FAILURES) == [1]


def test_git_push_is_sent_again_with_a_replaced_token(world: World) -> None:
    meter = RecordingMeter()
    gateway = gateway_from_settings(meter=meter)
    config = ProjectConfig(project_id=world.project.id, path=world.project.path_with_namespace)
    repository = repository_for(config, gateway, meter=meter)
    main = branch_ref("main")
    head = repository.fetch([main])[main]
    world.store(world.new_token())
    world.sim.revoke_token(world.token)

    repository.push("batch", head, expected_old_sha=None, force=True)

    assert world.sim.branch_sha(world.project, "batch") == head
    assert meter.values(Metric.GITLAB_AUTH_FAILURES) == [1]
