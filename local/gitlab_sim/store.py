"""The simulator's state: users, tokens, projects, groups, merge requests, issues, epics,
pipelines, hooks, and the
lock that guards all of it. Every read or write of a record happens under ``store.lock``;
the lock is re-entrant so domain operations can compose."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from dulwich.repo import Repo

from local.gitlab_sim import gitops
from local.gitlab_sim.models import (
    NO_ACCESS,
    OWNER,
    AccessToken,
    Delivery,
    Epic,
    Group,
    Hook,
    Issue,
    MergeRequest,
    Pipeline,
    Project,
    User,
)

GITLAB_VERSION = "18.5.0"


class NotFound(Exception):
    """The record does not exist or the caller may not see it (GitLab answers 404 for both)."""


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Event:
    """Something hooks may be told about: ``kind`` names the hook flag that selects hooks
    (``push_events`` ...); listeners run under the lock, so what they read is a snapshot."""

    project_id: int
    kind: str
    event_name: str
    payload: dict[str, Any]


@dataclass
class Store:
    data_dir: Path
    base_url: str = ""
    time_scale: float = 1.0
    lock: threading.RLock = field(default_factory=threading.RLock)
    users: dict[int, User] = field(default_factory=dict)
    tokens: dict[str, AccessToken] = field(default_factory=dict)
    projects: dict[int, Project] = field(default_factory=dict)
    groups: dict[int, Group] = field(default_factory=dict)
    merge_requests: dict[tuple[int, int], MergeRequest] = field(default_factory=dict)
    # Keyed by (project id, iid) and (group id, iid), as the API addresses them.
    issues: dict[tuple[int, int], Issue] = field(default_factory=dict)
    epics: dict[tuple[int, int], Epic] = field(default_factory=dict)
    pipelines: dict[int, Pipeline] = field(default_factory=dict)
    hooks: dict[int, Hook] = field(default_factory=dict)
    deliveries: dict[int, Delivery] = field(default_factory=dict)
    listeners: list[Callable[[Event], None]] = field(default_factory=list)
    _ids: dict[str, int] = field(default_factory=dict)
    _repos: dict[int, Repo] = field(default_factory=dict)

    def next_id(self, kind: str) -> int:
        with self.lock:
            self._ids[kind] = self._ids.get(kind, 0) + 1
            return self._ids[kind]

    @staticmethod
    def monotonic() -> float:
        return time.monotonic()

    def real_seconds(self, simulated: float) -> float:
        """How long a simulated duration takes on the wall clock."""
        return simulated * self.time_scale

    def emit(self, event: Event) -> None:
        for listener in list(self.listeners):
            listener(event)

    def close(self) -> None:
        with self.lock:
            for repo in self._repos.values():
                repo.close()
            self._repos.clear()

    # --- users and tokens -------------------------------------------------------------

    def add_user(self, username: str, *, name: str = "", is_admin: bool = False) -> User:
        with self.lock:
            if any(u.username == username for u in self.users.values()):
                raise ValueError(f"Username {username} has already been taken")
            user = User(
                id=self.next_id("user"),
                username=username,
                name=name or username.replace("-", " ").title(),
                email=f"{username}@example.com",
                is_admin=is_admin,
                created_at=now_iso(),
            )
            self.users[user.id] = user
            return user

    def issue_token(
        self,
        user_id: int,
        *,
        name: str = "token",
        scopes: list[str] | None = None,
        expires_at: str | None = None,
        family: int | None = None,
    ) -> str:
        token = "glpat-" + secrets.token_urlsafe(20)
        with self.lock:
            token_id = self.next_id("access_token")
            self.tokens[token] = AccessToken(
                id=token_id,
                user_id=user_id,
                family=token_id if family is None else family,
                name=name,
                scopes=list(scopes or ["api"]),
                created_at=now_iso(),
                expires_at=expires_at,
            )
        return token

    @staticmethod
    def token_active(record: AccessToken) -> bool:
        today = datetime.now(UTC).date()
        expired = record.expires_at is not None and date.fromisoformat(record.expires_at) <= today
        return not record.revoked and not expired

    def access_token(self, token: str) -> AccessToken | None:
        """The token's record if GitLab would accept it: known, not revoked, not expired."""
        with self.lock:
            record = self.tokens.get(token)
            return record if record is not None and self.token_active(record) else None

    def user_for_token(self, token: str) -> User | None:
        with self.lock:
            record = self.access_token(token)
            if record is None:
                return None
            record.last_used_at = now_iso()
            return self.users.get(record.user_id)

    def rotate_token(self, token: str, expires_at: str) -> str:
        """Revokes ``token`` and issues its successor, same user, name and scopes."""
        with self.lock:
            record = self.tokens[token]
            record.revoked = True
            return self.issue_token(
                record.user_id,
                name=record.name,
                scopes=record.scopes,
                expires_at=expires_at,
                family=record.family,
            )

    def revoke_token(self, token: str) -> None:
        with self.lock:
            if token in self.tokens:
                self.tokens[token].revoked = True

    def revoke_family(self, token: str) -> None:
        """GitLab's reuse detection: a revoked token used to rotate means it leaked, so
        every token descended from the same first one is revoked."""
        with self.lock:
            record = self.tokens.get(token)
            if record is None or not record.revoked:
                return
            for other in self.tokens.values():
                if other.family == record.family:
                    other.revoked = True

    def user(self, user_id: int) -> User:
        with self.lock:
            try:
                return self.users[user_id]
            except KeyError as err:
                raise NotFound("404 User Not Found") from err

    def user_by_username(self, username: str) -> User:
        with self.lock:
            for user in self.users.values():
                if user.username == username:
                    return user
        raise NotFound("404 User Not Found")

    # --- projects -----------------------------------------------------------------------

    def repo_path(self, project: Project) -> Path:
        return self.data_dir / "repositories" / project.namespace / f"{project.path}.git"

    def repo(self, project_id: int) -> Repo:
        with self.lock:
            repo = self._repos.get(project_id)
            if repo is None:
                repo = Repo(str(self.repo_path(self.projects[project_id])))
                self._repos[project_id] = repo
            return repo

    def add_project(
        self,
        creator: User,
        name: str,
        *,
        namespace: str = "",
        path: str = "",
        default_branch: str = "main",
        **settings: Any,
    ) -> Project:
        with self.lock:
            namespace = namespace or creator.username
            path = path or name.lower().replace(" ", "-")
            if any(p.path_with_namespace == f"{namespace}/{path}" for p in self.projects.values()):
                raise ValueError("has already been taken")
            personal = any(u.username == namespace for u in self.users.values())
            self.group_for_path(namespace, kind="user" if personal else "group")
            project = Project(
                id=self.next_id("project"),
                name=name,
                path=path,
                namespace=namespace,
                default_branch=default_branch,
                creator_id=creator.id,
                created_at=now_iso(),
                **settings,
            )
            project.members[creator.id] = OWNER
            gitops.init_repo(self.repo_path(project), default_branch).close()
            self.projects[project.id] = project
            return project

    def group_for_path(self, path: str, *, kind: str = "group") -> Group:
        """The namespace at ``path``, created (with ``kind``) when missing."""
        with self.lock:
            for group in self.groups.values():
                if group.path == path:
                    return group
            group = Group(
                id=self.next_id("group"),
                path=path,
                name=path.rsplit("/", 1)[-1],
                kind=kind,
                created_at=now_iso(),
            )
            self.groups[group.id] = group
            return group

    def group(self, ref: str | int, user: User | None = None) -> Group:
        """By id or full path. With ``user``: only real groups (not personal namespaces)
        that the user can see, as GET /groups/:id answers 404 for the others."""
        with self.lock:
            for group in self.groups.values():
                if str(group.id) == str(ref) or group.path == str(ref):
                    if user is None or (group.kind == "group" and self.can_see_group(group, user)):
                        return group
                    break
        raise NotFound("404 Group Not Found")

    def group_projects(self, group: Group) -> list[Project]:
        with self.lock:
            return [p for p in self.projects.values() if p.namespace == group.path]

    def group_access(self, group: Group, user: User) -> int:
        if user.is_admin:
            return OWNER
        with self.lock:
            return max(
                (p.members.get(user.id, NO_ACCESS) for p in self.group_projects(group)),
                default=NO_ACCESS,
            )

    def can_see_group(self, group: Group, user: User) -> bool:
        return self.group_access(group, user) > NO_ACCESS or any(
            p.visibility == "public" for p in self.group_projects(group)
        )

    def access_level(self, project: Project, user: User) -> int:
        if user.is_admin:
            return OWNER
        return project.members.get(user.id, NO_ACCESS)

    def project(self, ref: str | int, user: User | None = None) -> Project:
        """By id or by ``namespace/path``; invisible projects are as good as missing."""
        with self.lock:
            found = None
            for project in self.projects.values():
                if str(project.id) == str(ref) or project.path_with_namespace == str(ref):
                    found = project
                    break
            if found is None or (
                user is not None
                and found.visibility != "public"
                and self.access_level(found, user) == NO_ACCESS
            ):
                raise NotFound("404 Project Not Found")
            return found

    def project_url(self, project: Project) -> str:
        return f"{self.base_url}/{project.path_with_namespace}"

    def merge_request(self, project_id: int, iid: int) -> MergeRequest:
        with self.lock:
            try:
                return self.merge_requests[(project_id, iid)]
            except KeyError as err:
                raise NotFound("404 Not found") from err

    def project_merge_requests(self, project_id: int) -> list[MergeRequest]:
        with self.lock:
            return [mr for (pid, _), mr in self.merge_requests.items() if pid == project_id]

    def issue(self, project_id: int, iid: int) -> Issue:
        with self.lock:
            try:
                return self.issues[(project_id, iid)]
            except KeyError as err:
                raise NotFound("404 Not found") from err

    def project_issues(self, project_id: int) -> list[Issue]:
        with self.lock:
            return [i for (pid, _), i in self.issues.items() if pid == project_id]

    def epic(self, group_id: int, iid: int) -> Epic:
        with self.lock:
            try:
                return self.epics[(group_id, iid)]
            except KeyError as err:
                raise NotFound("404 Not found") from err

    def epic_by_id(self, epic_id: int) -> Epic | None:
        with self.lock:
            return next((e for e in self.epics.values() if e.id == epic_id), None)

    def group_epics(self, group_id: int) -> list[Epic]:
        with self.lock:
            return [e for (gid, _), e in self.epics.items() if gid == group_id]
