"""Rotation of the bot's GitLab token by Secrets Manager's four-step contract.

Secrets Manager starts a rotation by adding a version labelled ``AWSPENDING`` (no value
yet) to the secret, then invokes the rotation function once per step with that version's
id, retrying a step that fails:

- ``createSecret``: GitLab rotates the current token (``POST /personal_access_tokens/self/
  rotate``) and the new one becomes the pending version's value.
- ``setSecret``: nothing left to do: GitLab made the new token in the step before.
- ``testSecret``: GitLab accepts the pending token, and it is active. Run alone (rotation
  turned on without rotating at once), there is no new token and nothing to test.
- ``finishSecret``: ``AWSCURRENT`` moves to the pending version, which then stops being
  pending (so that no reader takes it for a rotation under way).

GitLab revokes the old token as it issues the new one, so there is no grace period during
which both work: from ``createSecret`` until ``finishSecret`` (seconds, as the steps run
back to back) the current version holds a revoked token. Readers that get a 401 meanwhile
read the secret again, pending version included (``SecretTokenSource``), and go on with
the new token.

Every step may run again with the same version id and then changes nothing. ``createSecret``
never rotates a token GitLab refuses: GitLab takes that for the reuse of a leaked token and
revokes every token of its family, the new one with it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Protocol

from merge_assist.platform.errors import MergeAssistError
from merge_assist.platform.ports import Clock

CURRENT = "AWSCURRENT"
PENDING = "AWSPENDING"


class RotationStep(StrEnum):
    CREATE = "createSecret"
    SET = "setSecret"
    TEST = "testSecret"
    FINISH = "finishSecret"


class RotationError(MergeAssistError):
    """A step cannot be done; Secrets Manager marks the rotation failed and the current
    version stays what it was. Messages never carry a token."""


@dataclass(frozen=True)
class TokenDetails:
    """What GitLab says of a personal access token (``GET /personal_access_tokens/self``)."""

    id: int
    user_id: int
    active: bool
    expires_at: date | None


class AccessTokens(Protocol):
    """GitLab's personal access token API, called with the token it is about."""

    def inspect(self, token: str) -> TokenDetails | None:
        """The token's details; None when GitLab refuses it (revoked, expired, unknown)."""
        ...

    def rotate(self, token: str, expires_at: date) -> str:
        """A new token for the same user and scopes, expiring at ``expires_at``; GitLab
        revokes ``token`` at once. Sent once, never retried: a retry after a lost answer
        would rotate a revoked token."""
        ...


class SecretVersions(Protocol):
    """The versions of a secret and their staging labels."""

    def rotation_enabled(self, secret_id: str) -> bool: ...

    def stages(self, secret_id: str) -> dict[str, list[str]]:
        """Version id -> its staging labels."""
        ...

    def value(self, secret_id: str, *, version_id: str | None = None, stage: str) -> str | None:
        """The value of the version with ``stage`` (and ``version_id`` when given); None
        when there is no such version or it has no value yet."""
        ...

    def put(self, secret_id: str, version_id: str, value: str, *, stage: str) -> None:
        """Give the version ``version_id`` its value and ``stage``."""
        ...

    def move_stage(
        self, secret_id: str, stage: str, *, to_version: str, from_version: str | None
    ) -> None: ...

    def remove_stage(self, secret_id: str, stage: str, *, version_id: str) -> None: ...


class BotTokenRotation:
    """``lifetime`` is how long a new token lives: longer than the rotation schedule, so a
    rotation that failed leaves time to notice and fix it before the token expires."""

    def __init__(
        self,
        secrets: SecretVersions,
        tokens: AccessTokens,
        clock: Clock,
        *,
        lifetime: timedelta,
    ) -> None:
        self._secrets = secrets
        self._tokens = tokens
        self._clock = clock
        self._lifetime = lifetime

    def run(self, step: RotationStep, secret_id: str, version_id: str) -> None:
        if not self._secrets.rotation_enabled(secret_id):
            raise RotationError(f"rotation is not enabled on the secret {secret_id}")
        stages = self._secrets.stages(secret_id)
        if version_id not in stages:
            raise RotationError(f"the secret {secret_id} has no version {version_id}")
        if CURRENT in stages[version_id]:
            # Finished already: every step of this rotation has nothing left to do.
            return
        if PENDING not in stages[version_id]:
            raise RotationError(
                f"version {version_id} of the secret {secret_id} is not pending rotation"
            )
        if step is RotationStep.CREATE:
            self._create(secret_id, version_id)
        elif step is RotationStep.TEST:
            self._test(secret_id, version_id)
        elif step is RotationStep.FINISH:
            self._finish(secret_id, version_id, stages)

    def _create(self, secret_id: str, version_id: str) -> None:
        if self._secrets.value(secret_id, version_id=version_id, stage=PENDING) is not None:
            return
        current = self._secrets.value(secret_id, stage=CURRENT)
        if not current:
            raise RotationError(f"the secret {secret_id} holds no token to rotate")
        details = self._tokens.inspect(current)
        if details is None or not details.active:
            raise RotationError(
                "GitLab refuses the current bot token, so it cannot be rotated: put a new "
                f"token in the secret {secret_id} by hand (docs/runbook.md, Rotating the "
                "bot token)"
            )
        expires_at = self._clock.now().date() + self._lifetime
        new = self._tokens.rotate(current, expires_at)
        self._secrets.put(secret_id, version_id, new, stage=PENDING)

    def _test(self, secret_id: str, version_id: str) -> None:
        pending = self._secrets.value(secret_id, version_id=version_id, stage=PENDING)
        if pending is None or pending == self._secrets.value(secret_id, stage=CURRENT):
            # Not a rotation: Secrets Manager trying the function out when rotation is
            # turned on without rotating at once. Nothing was rotated, so nothing to test.
            return
        details = self._tokens.inspect(pending)
        if details is None or not details.active:
            raise RotationError(f"GitLab refuses the new token in version {version_id}")
        if details.expires_at is not None and details.expires_at <= self._clock.now().date():
            raise RotationError(f"the new token in version {version_id} has expired already")

    def _finish(self, secret_id: str, version_id: str, stages: dict[str, list[str]]) -> None:
        previous = next((version for version, labels in stages.items() if CURRENT in labels), None)
        self._secrets.move_stage(secret_id, CURRENT, to_version=version_id, from_version=previous)
        self._secrets.remove_stage(secret_id, PENDING, version_id=version_id)
