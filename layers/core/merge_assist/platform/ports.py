"""The interfaces several contexts speak to. Adapters implement them; tests may fake them.
Each context's own ports are in its ``ports`` module."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from merge_assist.platform.config import ProjectConfig, WebhookSecret
from merge_assist.platform.metrics import Metric


class Meter(Protocol):
    """Where the core counts and measures what it does (``merge_assist.platform.metrics``); the
    functions flush it as CloudWatch metrics."""

    def record(self, metric: Metric, value: float = 1, **dimensions: str) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class WebhookSecrets(Protocol):
    """Each connected project's stored webhook secret, as rotating it reads and writes it."""

    def read_webhook_secret(self, project_id: int) -> WebhookSecret:
        """``NotFoundError`` if the project has none (it is not connected)."""
        ...

    def write_webhook_secret(self, project_id: int, secret: WebhookSecret) -> None:
        """Replaces the stored secret; ``NotFoundError`` if there is none."""
        ...


class ProjectStore(Protocol):
    """Connected projects' configurations, durable. Every ``save_*`` is a compare-and-set
    on the item's ``version``: version 0 means "must not exist yet"; the stored copy comes
    back with version + 1. A lost race raises ``ConflictError``; a missing item
    ``NotFoundError``."""

    def get_project(self, project_id: int) -> ProjectConfig: ...

    def list_projects(self) -> list[ProjectConfig]: ...

    def save_project(self, config: ProjectConfig) -> ProjectConfig: ...

    def delete_project(self, project_id: int) -> None: ...
