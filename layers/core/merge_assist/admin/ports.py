"""What administration speaks to: the whole table, the per-project AWS resources and the
operational views of the queues."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from merge_assist.audit import AuditStore
from merge_assist.platform.access import Grant
from merge_assist.platform.config import WebhookSecret
from merge_assist.queue import QueueStore


class GrantStore(Protocol):
    """Who holds which roles on which project."""

    def save_grant(self, grant: Grant) -> Grant:
        """Creates or replaces the user's grant on the project."""
        ...

    def delete_grant(self, username: str, project_id: int) -> bool:
        """False if there was none."""
        ...

    def grants_of_user(self, username: str) -> list[Grant]: ...

    def list_grants(self, project_id: int | None = None) -> list[Grant]:
        """Every grant, or a project's; by project, then username."""
        ...


class Store(QueueStore, GrantStore, AuditStore, Protocol):
    """The whole table, as administration and recovery see it."""


class ProjectInfrastructure(Protocol):
    """The AWS resources each connected project has: webhook secret, FIFO queue with its
    dead-letter queue, the event source mapping that feeds the dispatcher, and the queues'
    alarms. Every
    ``ensure_*`` creates what is missing and otherwise changes nothing."""

    def ensure_webhook_secret(self, project_id: int) -> WebhookSecret: ...

    def ensure_queues(self, project_id: int) -> str:
        """Returns the project queue's ARN."""
        ...

    def ensure_event_source(self, queue_arn: str) -> None: ...

    def ensure_alarms(self, project_id: int) -> None:
        """The project queues' alarms: a message in its dead-letter queue, an event waiting
        too long in its queue."""
        ...

    def remove(self, project_id: int) -> None:
        """Removes whatever of the above exists."""
        ...


class QueueStarter(Protocol):
    """The merge queue's start of a project's idle queues: a batch on each target branch that
    has MRs waiting and none running."""

    def __call__(self, project_id: int, cause: str) -> list[str]:
        """The batches started; they are named after ``cause``, so the same cause given
        again starts none twice."""
        ...


class QueueDepth(Protocol):
    @property
    def messages(self) -> int: ...

    @property
    def in_flight(self) -> int: ...

    @property
    def dead_letters(self) -> int: ...


class Operations(Protocol):
    """What the health page shows of the AWS side of each project."""

    def queue_depth(self, project_id: int) -> QueueDepth:
        """``NotFoundError`` if the project's queues do not exist."""
        ...

    def executions(self, project_id: int, since: datetime) -> dict[str, int]:
        """The project's merge workflow executions by status (``RUNNING``, ``FAILED``,
        ``TIMED_OUT``, ``ABORTED``): every running one, the others started since ``since``."""
        ...
