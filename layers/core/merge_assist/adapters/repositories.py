"""Project repositories for the workflow: one ``GitEngine`` per project, its bare repository
kept in the work directory while the Lambda is warm, so each fetch brings only what is
new."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from merge_assist.adapters.aws import register_cache
from merge_assist.adapters.git_engine import GitCredentialsRefused, GitEngine
from merge_assist.adapters.gitlab_gateway import TokenSource, bot_token_source
from merge_assist.platform.config import ProjectConfig
from merge_assist.platform.metrics import Metric, NullMeter
from merge_assist.platform.ports import Meter
from merge_assist.platform.settings import get_settings
from merge_assist.queue import GitLabGateway
from merge_assist.queue.batch_plan import BatchBuild, BatchMember, GitIdentity, MergeMethod

T = TypeVar("T")


@dataclass(frozen=True)
class _Known:
    token: str
    http_url: str
    engine: GitEngine


# (GitLab URL, project id) -> the engine and the token it speaks with.
_engines: dict[tuple[str, int], _Known] = {}


def _engine(config: ProjectConfig, gitlab: GitLabGateway, token: str) -> GitEngine:
    """The project's engine for ``token``; a new token gets a new engine on the same
    repository, and the old one is closed."""
    settings = get_settings()
    key = (settings.gitlab_url, config.project_id)
    known = _engines.get(key)
    if known is not None and known.token == token:
        return known.engine
    if known is not None:
        known.engine.close()
    # Asked once per project: a refused token must not cost a REST call as well.
    http_url = known.http_url if known else gitlab.project_http_url(config.project_id)
    engine = GitEngine(
        http_url,
        token,
        Path(settings.git_work_dir) / str(config.project_id),
        project_path=config.path or "",
    )
    _engines[key] = _Known(token, http_url, engine)
    return engine


class ReauthenticatingRepository:
    """A project's ``GitEngine`` that, when the remote refuses the token (401), asks the
    token source for another one and sends the fetch or push once more with it. A refused
    request moved nothing on the remote, so sending it again is safe."""

    def __init__(
        self,
        tokens: TokenSource,
        engine_for: Callable[[str], GitEngine],
        *,
        meter: Meter | None = None,
    ) -> None:
        self._tokens = tokens
        self._engine_for = engine_for
        self._meter = meter or NullMeter()
        self._token = tokens.current()
        self._engine = engine_for(self._token)

    def _remote(self, call: Callable[[GitEngine], T]) -> T:
        try:
            return call(self._engine)
        except GitCredentialsRefused:
            self._meter.record(Metric.GITLAB_AUTH_FAILURES)
            token = self._tokens.refreshed(self._token)
            if token is None:
                raise
        self._token = token
        self._engine = self._engine_for(token)
        try:
            return call(self._engine)
        except GitCredentialsRefused:
            self._meter.record(Metric.GITLAB_AUTH_FAILURES)
            raise

    def fetch(self, refs: Sequence[str]) -> dict[str, str]:
        return self._remote(lambda engine: engine.fetch(refs))

    def push(
        self,
        branch: str,
        sha: str,
        *,
        expected_old_sha: str | None,
        force: bool,
        skip_pipeline: bool = False,
    ) -> None:
        self._remote(
            lambda engine: engine.push(
                branch,
                sha,
                expected_old_sha=expected_old_sha,
                force=force,
                skip_pipeline=skip_pipeline,
            )
        )

    def build_batch(
        self,
        target_sha: str,
        members: Sequence[BatchMember],
        *,
        method: MergeMethod,
        identity: GitIdentity,
        target_branch: str,
        when: datetime | None = None,
    ) -> BatchBuild:
        return self._engine.build_batch(
            target_sha,
            members,
            method=method,
            identity=identity,
            target_branch=target_branch,
            when=when,
        )

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return self._engine.is_ancestor(ancestor, descendant)

    def same_tree(self, first: str, second: str) -> bool:
        return self._engine.same_tree(first, second)


def repository_for(
    config: ProjectConfig,
    gitlab: GitLabGateway,
    *,
    tokens: TokenSource | None = None,
    meter: Meter | None = None,
) -> ReauthenticatingRepository:
    """``tokens`` defaults to the bot token's secret, as the gateways built from the settings
    read it."""
    return ReauthenticatingRepository(
        tokens or bot_token_source(),
        lambda token: _engine(config, gitlab, token),
        meter=meter,
    )


def clear_repositories() -> None:
    for known in _engines.values():
        known.engine.close()
    _engines.clear()


register_cache(clear_repositories)
