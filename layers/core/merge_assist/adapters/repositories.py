"""Project repositories for the workflow: one ``GitEngine`` per project, its bare repository
kept in the work directory while the Lambda is warm, so each fetch brings only what is
new."""

from __future__ import annotations

from pathlib import Path

from merge_assist.adapters.aws import register_cache
from merge_assist.adapters.git_engine import GitEngine
from merge_assist.adapters.gitlab_gateway import bot_token
from merge_assist.models import ProjectConfig
from merge_assist.ports import GitLabGateway
from merge_assist.settings import get_settings

_engines: dict[tuple[str, int, str], GitEngine] = {}


def repository_for(config: ProjectConfig, gitlab: GitLabGateway) -> GitEngine:
    settings = get_settings()
    # Keyed by the token too: a rotated token gets a new engine (the repository stays).
    key = (settings.gitlab_url, config.project_id, bot_token(settings))
    engine = _engines.get(key)
    if engine is None:
        work_dir = Path(settings.git_work_dir) / str(config.project_id)
        engine = GitEngine(
            gitlab.project_http_url(config.project_id),
            key[2],
            work_dir,
            project_path=config.path or "",
        )
        _engines[key] = engine
    return engine


def clear_repositories() -> None:
    for engine in _engines.values():
        engine.close()
    _engines.clear()


register_cache(clear_repositories)
