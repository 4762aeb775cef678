"""Who may do what on which project.

Cognito groups say what a user may be (``admin``, ``project_owner``, ``priority_manager``,
``viewer``); grants, kept by admins in Merge Assist, say where. A user's roles on a project
are the roles their grant for it names that they also hold as groups, so neither a grant
alone nor a group alone gives anything, and removing either takes it away. ``admin`` is
global: an admin may do everything on every project."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator

from merge_assist.platform.clock import utc_now


class Role(StrEnum):
    """A dashboard user's role; the Cognito group of the same name grants it."""

    ADMIN = "admin"
    PROJECT_OWNER = "project_owner"
    PRIORITY_MANAGER = "priority_manager"
    VIEWER = "viewer"


# Cognito usernames: up to 128 characters without whitespace; "/", "#" and "%" are refused
# because they would be taken for parts of a path or a key.
Username = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\s/#%]+$")]


ProjectRole = Annotated[Role, Field(description="admin is a group, never a grant")]


class Grant(BaseModel):
    """What a user may be on one project: the roles among these that the user also holds as
    Cognito groups."""

    username: Username
    project_id: int = Field(gt=0)
    roles: list[ProjectRole] = Field(min_length=1, max_length=3)
    granted_by: str
    granted_at: datetime = Field(default_factory=utc_now)

    @field_validator("roles")
    @classmethod
    def _project_roles(cls, roles: list[Role]) -> list[Role]:
        if Role.ADMIN in roles:
            raise ValueError("admin is granted by the Cognito group, not per project")
        if len(set(roles)) != len(roles):
            raise ValueError("a role appears twice")
        return sorted(roles)


class Action(StrEnum):
    VIEW = "view"
    CONFIGURE = "configure"
    PRIORITIZE = "prioritize"
    # Connecting and disconnecting projects, and granting roles: admins only.
    ADMINISTER = "administer"


ROLE_ACTIONS: Mapping[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(Action),
    Role.PROJECT_OWNER: frozenset({Action.VIEW, Action.CONFIGURE}),
    Role.PRIORITY_MANAGER: frozenset({Action.VIEW, Action.PRIORITIZE}),
    Role.VIEWER: frozenset({Action.VIEW}),
}

GROUPS_CLAIM = "cognito:groups"


@dataclass(frozen=True)
class Principal:
    username: str
    groups: frozenset[Role]
    grants: Mapping[int, frozenset[Role]] = field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.groups

    def roles_on(self, project_id: int) -> frozenset[Role]:
        if self.is_admin:
            return frozenset({Role.ADMIN})
        return self.groups & self.grants.get(project_id, frozenset())

    def may(self, action: Action, project_id: int | None = None) -> bool:
        """``project_id`` None asks about actions that concern no one project."""
        if self.is_admin:
            return True
        if project_id is None:
            return False
        return any(action in ROLE_ACTIONS[role] for role in self.roles_on(project_id))

    def visible(self, project_ids: Iterable[int]) -> list[int]:
        return [pid for pid in project_ids if self.may(Action.VIEW, pid)]


def groups_from_claims(claims: Mapping[str, Any]) -> frozenset[Role]:
    """The roles a verified token's ``cognito:groups`` names; unknown groups give nothing."""
    raw = claims.get(GROUPS_CLAIM) or []
    if isinstance(raw, str):  # API Gateway flattens list claims to "[a b]"
        raw = raw.strip("[]").split()
    known = {role.value: role for role in Role}
    return frozenset(known[name] for name in raw if name in known)


def principal(username: str, groups: frozenset[Role], grants: Iterable[Grant]) -> Principal:
    by_project: dict[int, frozenset[Role]] = {}
    for grant in grants:
        if grant.username == username:
            by_project[grant.project_id] = by_project.get(grant.project_id, frozenset()) | set(
                grant.roles
            )
    return Principal(username=username, groups=groups, grants=by_project)
