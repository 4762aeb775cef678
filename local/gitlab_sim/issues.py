"""Issues and group epics: creation, edits, state events and epic links, with GitLab's
validation messages. Callers check permissions; everything here runs under the store lock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from local.gitlab_sim.errors import ApiError
from local.gitlab_sim.models import Epic, Group, Issue, Label, Project, User
from local.gitlab_sim.store import NotFound, Store, now_iso

TITLE_MAX = 255
ISSUE_UPDATE_PARAMS = (
    "title",
    "description",
    "confidential",
    "assignee_ids",
    "assignee_id",
    "milestone_id",
    "labels",
    "add_labels",
    "remove_labels",
    "state_event",
    "updated_at",
    "due_date",
    "weight",
    "discussion_locked",
    "epic_id",
    "epic_iid",
    "issue_type",
)
EPIC_UPDATE_PARAMS = (
    "title",
    "description",
    "labels",
    "add_labels",
    "remove_labels",
    "state_event",
    "start_date",
    "start_date_fixed",
    "start_date_is_fixed",
    "end_date",
    "due_date",
    "due_date_fixed",
    "due_date_is_fixed",
    "parent_id",
    "confidential",
    "color",
    "updated_at",
)
NOT_IN_GROUP = "No matching issue found. Make sure that you are adding a valid issue URL."


@dataclass
class IssueService:
    store: Store

    # --- issues ---------------------------------------------------------------------------

    def create_issue(self, project: Project, author: User, fields: dict[str, Any]) -> Issue:
        store = self.store
        with store.lock:
            title = _title(fields)
            labels = labels_of(fields.get("labels"))
            assignees = self._assignees(fields)
            weight = _weight(fields.get("weight"))
            due_date = _date(fields, "due_date")
            epic = self._epic_param(project, fields)
            stamp = now_iso()
            issue = Issue(
                id=store.next_id("issue"),
                iid=project.next_issue_iid,
                project_id=project.id,
                title=title,
                description=str(fields.get("description") or ""),
                author_id=author.id,
                created_at=stamp,
                updated_at=stamp,
                labels=self._project_labels(project, labels),
                assignee_ids=assignees,
                weight=weight,
                due_date=due_date,
                confidential=_truthy(fields.get("confidential")),
            )
            project.next_issue_iid += 1
            store.issues[(project.id, issue.iid)] = issue
            if epic is not None:
                self.link(epic, issue)
                # Starting out in an epic is part of the creation, not a later update.
                issue.updated_at = issue.created_at
            return issue

    def update_issue(
        self, project: Project, issue: Issue, user: User, fields: dict[str, Any]
    ) -> Issue:
        store = self.store
        with store.lock:
            _at_least_one(fields, ISSUE_UPDATE_PARAMS)
            # Everything is validated before anything changes: a refused edit leaves no trace.
            new = self._issue_values(issue, fields)
            event = _state_event(fields)
            relink = "epic_id" in fields or "epic_iid" in fields
            epic = self._epic_param(project, fields) if relink else None
            changed = False
            for attr, value in new.items():
                if getattr(issue, attr) != value:
                    setattr(issue, attr, value)
                    changed = True
            self._project_labels(project, issue.labels)
            if event == "close" and issue.state == "opened":
                issue.state, issue.closed_at, issue.closed_by_id = "closed", now_iso(), user.id
                changed = True
            elif event == "reopen" and issue.state == "closed":
                issue.state, issue.closed_at, issue.closed_by_id = "opened", None, None
                changed = True
            if relink and epic is None and issue.epic_id is not None:
                issue.epic_id, issue.epic_issue_id, changed = None, None, True
            elif epic is not None and epic.id != issue.epic_id:
                self.link(epic, issue)
                changed = True
            if changed:
                issue.updated_at = now_iso()
            return issue

    def _issue_values(self, issue: Issue, fields: dict[str, Any]) -> dict[str, Any]:
        new: dict[str, Any] = {"labels": _edited_labels(issue.labels, fields)}
        if "title" in fields:
            new["title"] = _title(fields)
        if "description" in fields:
            new["description"] = str(fields["description"] or "")
        if "assignee_ids" in fields or "assignee_id" in fields:
            new["assignee_ids"] = self._assignees(fields)
        if "weight" in fields:
            new["weight"] = _weight(fields["weight"])
        if "due_date" in fields:
            new["due_date"] = _date(fields, "due_date")
        if "confidential" in fields:
            new["confidential"] = _truthy(fields["confidential"])
        return new

    def _assignees(self, fields: dict[str, Any]) -> list[int]:
        value = fields.get("assignee_ids")
        if value is None and fields.get("assignee_id") not in (None, ""):
            value = [fields["assignee_id"]]
        if value in (None, ""):
            return []
        items = value if isinstance(value, list) else str(value).split(",")
        try:
            ids = [int(i) for i in items if str(i).strip() not in ("", "0")]
        except ValueError as err:
            raise ApiError(400, "assignee_ids is invalid") from err
        # GitLab drops ids it cannot assign instead of refusing the request.
        return [i for i in dict.fromkeys(ids) if i in self.store.users]

    def _project_labels(self, project: Project, names: list[str]) -> list[str]:
        # Naming a label that does not exist creates it in the project, as GitLab does.
        for name in names:
            if name not in project.labels:
                project.labels[name] = Label(self.store.next_id("label"), name)
        return names

    def _epic_param(self, project: Project, fields: dict[str, Any]) -> Epic | None:
        """The epic named by ``epic_id`` (or the deprecated ``epic_iid``) in the project's
        group; None when the value is empty or 0, which unlinks."""
        group = self.store.group_for_path(project.namespace)
        by_id = fields.get("epic_id") not in (None, "", 0, "0")
        ref = fields.get("epic_id") if by_id else fields.get("epic_iid")
        if ref in (None, "", 0, "0"):
            return None
        try:
            number = int(ref)
        except (TypeError, ValueError) as err:
            raise ApiError(400, f"{'epic_id' if by_id else 'epic_iid'} is invalid") from err
        epic = self.store.epic_by_id(number) if by_id else self.store.epics.get((group.id, number))
        if epic is None or epic.group_id != group.id:
            raise NotFound("404 Epic Not Found")
        return epic

    # --- epics ----------------------------------------------------------------------------

    def create_epic(self, group: Group, author: User, fields: dict[str, Any]) -> Epic:
        store = self.store
        with store.lock:
            title = _title(fields)
            start_date = _date(fields, "start_date", "start_date_fixed")
            due_date = _date(fields, "due_date", "due_date_fixed", "end_date")
            parent = fields.get("parent_id")
            parent_id = None if parent in (None, "", 0, "0") else self._parent(group, None, parent)
            stamp = now_iso()
            epic = Epic(
                id=store.next_id("epic"),
                iid=group.next_epic_iid,
                group_id=group.id,
                title=title,
                description=str(fields.get("description") or ""),
                author_id=author.id,
                created_at=stamp,
                updated_at=stamp,
                labels=labels_of(fields.get("labels")),
                start_date=start_date,
                due_date=due_date,
                parent_id=parent_id,
            )
            group.next_epic_iid += 1
            store.epics[(group.id, epic.iid)] = epic
            return epic

    def update_epic(self, group: Group, epic: Epic, fields: dict[str, Any]) -> Epic:
        with self.store.lock:
            _at_least_one(fields, EPIC_UPDATE_PARAMS)
            new: dict[str, Any] = {"labels": _edited_labels(epic.labels, fields)}
            if "title" in fields:
                new["title"] = _title(fields)
            if "description" in fields:
                new["description"] = str(fields["description"] or "")
            if any(k in fields for k in ("start_date", "start_date_fixed")):
                new["start_date"] = _date(fields, "start_date", "start_date_fixed")
            if any(k in fields for k in ("due_date", "due_date_fixed", "end_date")):
                new["due_date"] = _date(fields, "due_date", "due_date_fixed", "end_date")
            if "parent_id" in fields:
                parent = fields["parent_id"]
                new["parent_id"] = (
                    None if parent in (None, "", 0, "0") else self._parent(group, epic.id, parent)
                )
            event = _state_event(fields)
            changed = False
            for attr, value in new.items():
                if getattr(epic, attr) != value:
                    setattr(epic, attr, value)
                    changed = True
            if event == "close" and epic.state == "opened":
                epic.state, epic.closed_at, changed = "closed", now_iso(), True
            elif event == "reopen" and epic.state == "closed":
                epic.state, epic.closed_at, changed = "opened", None, True
            if changed:
                epic.updated_at = now_iso()
            return epic

    def _parent(self, group: Group, epic_id: int | None, ref: Any) -> int:
        try:
            parent = self.store.epic_by_id(int(ref))
        except (TypeError, ValueError) as err:
            raise ApiError(400, "parent_id is invalid") from err
        if parent is None or parent.group_id != group.id:
            raise NotFound("404 Parent Not Found")
        ancestor: Epic | None = parent
        while ancestor is not None:
            if ancestor.id == epic_id:
                # An epic cannot sit under itself or under one of its own descendants.
                raise ApiError(
                    400,
                    {
                        "parent_id": [
                            "This epic cannot be added: it is an ancestor of the parent epic."
                        ]
                    },
                )
            ancestor = self.store.epic_by_id(ancestor.parent_id) if ancestor.parent_id else None
        return parent.id

    # --- links ----------------------------------------------------------------------------

    def link(self, epic: Epic, issue: Issue) -> Issue:
        """Puts ``issue`` under ``epic``, moving it from any other epic, as GitLab does."""
        store = self.store
        with store.lock:
            project = store.projects[issue.project_id]
            if store.group_for_path(project.namespace).id != epic.group_id:
                raise NotFound(NOT_IN_GROUP)
            if issue.epic_id == epic.id:
                raise ApiError(409, "Issue(s) already assigned")
            issue.epic_id, issue.epic_issue_id = epic.id, store.next_id("epic_issue")
            issue.updated_at = epic.updated_at = now_iso()
            return issue

    def epic_issues(self, epic: Epic) -> list[Issue]:
        with self.store.lock:
            linked = [i for i in self.store.issues.values() if i.epic_id == epic.id]
            return sorted(linked, key=lambda i: i.epic_issue_id or 0)


def labels_of(value: Any) -> list[str]:
    """Label names from a comma-separated string or a list, deduplicated and sorted, the order
    GitLab presents them in."""
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    return sorted({str(item).strip() for item in items if str(item).strip()})


def _edited_labels(current: list[str], fields: dict[str, Any]) -> list[str]:
    labels = labels_of(fields["labels"]) if "labels" in fields else list(current)
    labels = labels_of(labels + labels_of(fields.get("add_labels")))
    removed = set(labels_of(fields.get("remove_labels")))
    return [lb for lb in labels if lb not in removed]


def _title(fields: dict[str, Any]) -> str:
    if fields.get("title") is None:
        raise ApiError(400, "title is missing")
    title = str(fields["title"])
    if not title.strip():
        raise ApiError(400, {"title": ["can't be blank"]})
    if len(title) > TITLE_MAX:
        raise ApiError(400, {"title": [f"is too long (maximum is {TITLE_MAX} characters)"]})
    return title


def _at_least_one(fields: dict[str, Any], names: tuple[str, ...]) -> None:
    if not any(name in fields for name in names):
        raise ApiError(
            400,
            f"{', '.join(names)} are missing, at least one parameter must be provided",
        )


def _state_event(fields: dict[str, Any]) -> str | None:
    event = fields.get("state_event")
    if event in (None, ""):
        return None
    if event not in ("close", "reopen"):
        raise ApiError(400, "state_event does not have a valid value")
    return str(event)


def _weight(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        weight = int(value)
    except (TypeError, ValueError) as err:
        raise ApiError(400, "weight is invalid") from err
    if weight < 0:
        raise ApiError(400, "weight does not have a valid value")
    return weight


def _date(fields: dict[str, Any], *names: str) -> str | None:
    """The first of ``names`` present, as YYYY-MM-DD; an empty value clears the date."""
    for name in names:
        if name in fields:
            value = fields[name]
            if value in (None, ""):
                return None
            try:
                return date.fromisoformat(str(value)).isoformat()
            except ValueError as err:
                raise ApiError(400, f"{name} is invalid") from err
    return None


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("true", "1", "yes")
    return bool(value)
