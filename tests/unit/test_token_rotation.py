"""The bot token's rotation steps against in-memory versions of a secret and of GitLab's
token API: what each step changes, that running it again changes nothing, and what it
refuses to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest

from merge_assist.admin.token_rotation import (
    CURRENT,
    PENDING,
    BotTokenRotation,
    RotationError,
    RotationStep,
    TokenDetails,
)

NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
LIFETIME = timedelta(days=45)
SECRET = "merge-assist/gitlab-bot-token"
OLD_VERSION = "v-old"
NEW_VERSION = "v-new"


@dataclass
class Version:
    stages: list[str]
    value: str | None = None


@dataclass
class FakeSecret:
    versions: dict[str, Version] = field(default_factory=dict)
    rotation: bool = True

    def rotation_enabled(self, secret_id: str) -> bool:
        return self.rotation

    def stages(self, secret_id: str) -> dict[str, list[str]]:
        return {vid: list(v.stages) for vid, v in self.versions.items() if v.stages}

    def value(self, secret_id: str, *, version_id: str | None = None, stage: str) -> str | None:
        for vid, version in self.versions.items():
            if stage in version.stages and version_id in (None, vid):
                return version.value
        return None

    def put(self, secret_id: str, version_id: str, value: str, *, stage: str) -> None:
        version = self.versions[version_id]
        assert version.value in (None, value), "a version's value is never replaced"
        version.value = value
        if stage not in version.stages:
            version.stages.append(stage)

    def move_stage(
        self, secret_id: str, stage: str, *, to_version: str, from_version: str | None
    ) -> None:
        if from_version is not None:
            self.versions[from_version].stages.remove(stage)
        self.versions[to_version].stages.append(stage)

    def remove_stage(self, secret_id: str, stage: str, *, version_id: str) -> None:
        self.versions[version_id].stages.remove(stage)

    def start_rotation(self, version_id: str = NEW_VERSION) -> None:
        """What Secrets Manager does before it invokes the first step."""
        self.versions[version_id] = Version([PENDING])


@dataclass
class Token:
    user_id: int
    active: bool = True
    expires_at: date | None = None


@dataclass
class FakeGitLab:
    tokens: dict[str, Token] = field(default_factory=dict)
    rotations: list[tuple[str, date]] = field(default_factory=list)
    inspected: list[str] = field(default_factory=list)

    def inspect(self, token: str) -> TokenDetails | None:
        self.inspected.append(token)
        found = self.tokens.get(token)
        if found is None or not found.active:
            return None
        return TokenDetails(
            id=len(self.inspected), user_id=found.user_id, active=True, expires_at=found.expires_at
        )

    def rotate(self, token: str, expires_at: date) -> str:
        assert self.tokens[token].active, "GitLab revokes a family rotated from a revoked token"
        self.rotations.append((token, expires_at))
        self.tokens[token].active = False
        new = f"glpat-rotated-{len(self.rotations)}"
        self.tokens[new] = Token(self.tokens[token].user_id, expires_at=expires_at)
        return new


class FixedClock:
    def now(self) -> datetime:
        return NOW


@dataclass
class World:
    secret: FakeSecret
    gitlab: FakeGitLab
    rotation: BotTokenRotation

    def step(self, step: RotationStep, version_id: str = NEW_VERSION) -> None:
        self.rotation.run(step, SECRET, version_id)

    def snapshot(self) -> tuple[dict[str, tuple[list[str], str | None]], int]:
        versions = {vid: (list(v.stages), v.value) for vid, v in self.secret.versions.items()}
        return versions, len(self.gitlab.rotations)


@pytest.fixture
def world() -> World:
    secret = FakeSecret({OLD_VERSION: Version([CURRENT], "glpat-old")})
    gitlab = FakeGitLab({"glpat-old": Token(user_id=7)})
    secret.start_rotation()
    return World(secret, gitlab, BotTokenRotation(secret, gitlab, FixedClock(), lifetime=LIFETIME))


def test_the_four_steps_rotate_the_token_and_make_the_new_one_current(world: World) -> None:
    for step in RotationStep:
        world.step(step)

    new = world.secret.value(SECRET, stage=CURRENT)
    assert new == "glpat-rotated-1"
    assert world.gitlab.rotations == [("glpat-old", NOW.date() + LIFETIME)]
    assert world.gitlab.inspect("glpat-old") is None
    assert world.gitlab.inspect(new) is not None
    assert world.secret.versions[OLD_VERSION].stages == []
    assert world.secret.versions[NEW_VERSION].stages == [CURRENT]


@pytest.mark.parametrize("step", list(RotationStep), ids=lambda step: step.value)
def test_each_step_run_again_changes_nothing(world: World, step: RotationStep) -> None:
    for earlier in RotationStep:
        world.step(earlier)
        if earlier is step:
            break
    before = world.snapshot()

    world.step(step)

    assert world.snapshot() == before


def test_a_finished_rotation_asks_gitlab_nothing_more(world: World) -> None:
    for step in RotationStep:
        world.step(step)
    before, asked = world.snapshot(), len(world.gitlab.inspected)

    for step in RotationStep:
        world.step(step)

    assert world.snapshot() == before
    assert len(world.gitlab.inspected) == asked


def test_create_never_rotates_a_token_gitlab_refuses(world: World) -> None:
    world.gitlab.tokens["glpat-old"].active = False

    with pytest.raises(RotationError, match="refuses the current bot token") as raised:
        world.step(RotationStep.CREATE)

    assert world.gitlab.rotations == []
    assert world.secret.versions[NEW_VERSION].value is None
    assert "glpat-old" not in str(raised.value)


def test_create_after_gitlab_rotated_but_the_put_was_lost_does_not_rotate_again(
    world: World,
) -> None:
    # GitLab rotated, then the function died before storing the new token.
    world.gitlab.rotate("glpat-old", NOW.date() + LIFETIME)

    with pytest.raises(RotationError, match="by hand"):
        world.step(RotationStep.CREATE)

    assert len(world.gitlab.rotations) == 1


def test_test_refuses_a_new_token_gitlab_refuses(world: World) -> None:
    world.step(RotationStep.CREATE)
    world.step(RotationStep.SET)
    world.gitlab.tokens["glpat-rotated-1"].active = False

    with pytest.raises(RotationError, match="refuses the new token"):
        world.step(RotationStep.TEST)

    assert world.secret.value(SECRET, stage=CURRENT) == "glpat-old"


def test_test_refuses_a_new_token_that_has_expired(world: World) -> None:
    world.step(RotationStep.CREATE)
    world.gitlab.tokens["glpat-rotated-1"].expires_at = NOW.date()

    with pytest.raises(RotationError, match="expired"):
        world.step(RotationStep.TEST)


def test_steps_refuse_a_secret_without_rotation_or_a_version_not_pending(world: World) -> None:
    with pytest.raises(RotationError, match="no version"):
        world.step(RotationStep.CREATE, "v-unknown")
    world.secret.versions["v-stale"] = Version(["AWSPREVIOUS"], "glpat-stale")
    with pytest.raises(RotationError, match="not pending"):
        world.step(RotationStep.CREATE, "v-stale")
    world.secret.rotation = False
    with pytest.raises(RotationError, match="not enabled"):
        world.step(RotationStep.CREATE)
    assert world.gitlab.rotations == []


def test_test_alone_is_secrets_manager_trying_the_function_out(world: World) -> None:
    # Rotation turned on without rotating at once: only testSecret runs, on a version that
    # holds no token or the current one.
    world.step(RotationStep.TEST)
    world.secret.versions["v-try"] = Version([PENDING], "glpat-old")
    world.step(RotationStep.TEST, "v-try")

    assert world.gitlab.inspected == []
    assert world.gitlab.rotations == []
