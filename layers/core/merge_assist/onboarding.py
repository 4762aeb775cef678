"""Connecting a GitLab project to Merge Assist, and disconnecting it.

Both are safe to repeat and to resume after a failure half way: every step creates only
what is missing. GitLab's hook is registered last, once everything it will call exists,
and removed first."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from merge_assist.errors import NotFoundError
from merge_assist.models import ProjectConfig, ProjectRef
from merge_assist.ports import GitLabGateway, ProjectInfrastructure, Store


@dataclass(frozen=True)
class Connected:
    config: ProjectConfig
    project: ProjectRef
    webhook_url: str
    secret_token: str
    hook_id: int
    created: bool

    def __repr__(self) -> str:
        return (
            f"Connected(project={self.project.path_with_namespace!r}, "
            f"webhook_url={self.webhook_url!r}, created={self.created})"
        )


def connect_project(
    store: Store,
    infrastructure: ProjectInfrastructure,
    gitlab: GitLabGateway,
    ref: int | str,
    *,
    webhook_url: str,
    settings: dict[str, Any] | None = None,
) -> Connected:
    """``settings`` apply when the project is first connected; a connected project keeps
    its configuration (change it with ``update_project``)."""
    project = gitlab.find_project(ref)
    secret = infrastructure.ensure_webhook_secret(project.id)
    queue_arn = infrastructure.ensure_queues(project.id)
    infrastructure.ensure_event_source(queue_arn)
    infrastructure.ensure_alarms(project.id)
    try:
        config = store.get_project(project.id)
        created = False
    except NotFoundError:
        config = store.save_project(
            ProjectConfig(
                project_id=project.id, path=project.path_with_namespace, **(settings or {})
            )
        )
        created = True
    hook_id = gitlab.ensure_hook(project.id, webhook_url, secret.secret_token)
    return Connected(
        config=config,
        project=project,
        webhook_url=webhook_url,
        secret_token=secret.secret_token,
        hook_id=hook_id,
        created=created,
    )


def disconnect_project(
    store: Store,
    infrastructure: ProjectInfrastructure,
    gitlab: GitLabGateway,
    project_id: int,
    *,
    webhook_url: str,
) -> None:
    """Removes the hook (if GitLab still has the project), the AWS resources and the
    configuration. Merge request history stays until it expires."""
    with contextlib.suppress(NotFoundError):  # gone from GitLab, and its hook with it
        gitlab.remove_hook(project_id, webhook_url)
    infrastructure.remove(project_id)
    store.delete_project(project_id)


def update_project(store: Store, project_id: int, changes: dict[str, Any]) -> ProjectConfig:
    """Validated like a new config; a concurrent change makes this fail, never lost."""
    current = store.get_project(project_id)
    updated = ProjectConfig.model_validate({**current.model_dump(), **changes})
    return store.save_project(updated)
