"""Connecting a GitLab project to Merge Assist, and disconnecting it.

Both are safe to repeat and to resume after a failure half way: every step creates only
what is missing. GitLab's hook is registered last, once everything it will call exists,
and removed first."""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from merge_assist.admin.ports import ProjectInfrastructure, Store
from merge_assist.platform.config import ProjectConfig, ProjectRef
from merge_assist.platform.errors import NotFoundError
from merge_assist.platform.intake import ROTATION_GRACE
from merge_assist.platform.ports import WebhookSecrets
from merge_assist.queue import GitLabGateway


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


@dataclass(frozen=True)
class Rotated:
    secret_token: str
    previous_valid_until: datetime
    hook_id: int
    # A rotation still in its grace period was finished rather than another one begun.
    resumed: bool

    def __repr__(self) -> str:
        return f"Rotated(hook_id={self.hook_id}, resumed={self.resumed})"


def rotate_webhook_secret(
    stored: WebhookSecrets,
    gitlab: GitLabGateway,
    project_id: int,
    *,
    webhook_url: str,
    now: datetime,
    grace: timedelta = ROTATION_GRACE,
    restart: bool = False,
) -> Rotated:
    """A new token for the project's hook without a refused delivery: it is stored first,
    with the old one still accepted for ``grace``, and only then set on GitLab's hook, so
    whichever token GitLab sends is accepted throughout.

    Run again while that grace period lasts, it sets the same new token on the hook again
    (finishing a rotation that failed at GitLab) rather than forgetting the old token GitLab
    may still be sending; ``restart`` begins another rotation regardless."""
    current = stored.read_webhook_secret(project_id)
    until = current.previous_valid_until
    if restart or until is None or not current.previous_accepted(now):
        secret = current.rotated(secrets.token_urlsafe(32), now=now, grace=grace)
        stored.write_webhook_secret(project_id, secret)
        until, resumed = now + grace, False
    else:
        secret, resumed = current, True
    hook_id = gitlab.ensure_hook(project_id, webhook_url, secret.secret_token)
    return Rotated(
        secret_token=secret.secret_token,
        previous_valid_until=until,
        hook_id=hook_id,
        resumed=resumed,
    )
