"""Errors the core raises; adapters translate their own failures into these."""


class MergeAssistError(Exception):
    """Base of every error the core raises on purpose."""


class NotFoundError(MergeAssistError):
    """The item asked for does not exist."""


class ConflictError(MergeAssistError):
    """A conditional write lost a race: someone else changed the item first."""


class AlreadyExistsError(ConflictError):
    """Creating an item that is already there."""


class LockHeldError(ConflictError):
    """Another batch holds the branch lock."""
