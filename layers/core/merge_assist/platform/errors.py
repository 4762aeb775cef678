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


class GitLabRefused(MergeAssistError):
    """GitLab answered a request with an error status the caller has to decide about."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status


class GitLabUnavailable(GitLabRefused):
    """GitLab did not answer, answered 5xx or kept rate-limiting after the client's own
    retries: nothing says the request was refused, so trying again later may work."""


def transient(error: Exception) -> bool:
    """Whether trying ``error``'s operation again, a little later, may succeed."""
    return isinstance(error, (GitLabUnavailable, Unavailable)) or (
        isinstance(error, GitLabRefused)
        and error.status is not None
        and (error.status == 429 or error.status >= 500)
    )


class NotMergeableError(GitLabRefused):
    """GitLab refused to merge: the MR is closed, draft, blocked by a merge check, conflicts
    with its target or needs a rebase. The message is GitLab's."""


class GitError(MergeAssistError):
    """A git operation on a project's repository failed; messages never carry the token."""


class RefNotFound(GitError):
    """A ref asked for is not on the remote, or a commit is not in the local repository."""


class PushRejected(GitError):
    """The remote refused the ref update (protected branch, hook, ...)."""

    def __init__(self, ref: str, reason: str) -> None:
        super().__init__(f"push to {ref} rejected: {reason}")
        self.ref = ref
        self.reason = reason


class RemoteMoved(PushRejected):
    """The remote ref is not where the push expected it: the compare-and-set lost, nothing
    was changed."""


class Unauthenticated(MergeAssistError):
    """A bearer token is missing, malformed, forged, expired or meant for someone else. The
    message says which, for logs; callers answer only 401."""


class Forbidden(MergeAssistError):
    """The caller is known but may not do this."""


class Unavailable(MergeAssistError):
    """A service the answer depends on did not answer (e.g. the token keys could not be
    fetched); the caller may retry."""
