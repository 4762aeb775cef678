"""The simulator's refusals: raised by its services, answered by the API layer with GitLab's
status code and message body."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A refusal with GitLab's status code and message."""

    def __init__(self, status: int, message: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
