"""``GitLabGateway`` with python-gitlab."""

from __future__ import annotations

from typing import Any

import gitlab
from gitlab.exceptions import GitlabGetError, GitlabListError

from merge_assist.errors import NotFoundError
from merge_assist.events import MergeRequestSnapshot
from merge_assist.models import ProjectRef

HOOK_EVENTS = {
    "merge_requests_events": True,
    "note_events": True,
    "pipeline_events": True,
    "push_events": True,
    "job_events": False,
    "issues_events": False,
    "tag_push_events": False,
    "wiki_page_events": False,
    "enable_ssl_verification": True,
}


def snapshot(mr: Any) -> MergeRequestSnapshot:
    """An MR from the REST API, in the shape the webhook receiver gives the dispatcher."""
    attributes: dict[str, Any] = mr.attributes if hasattr(mr, "attributes") else dict(mr)
    pipeline = attributes.get("head_pipeline") or {}
    draft = attributes.get("draft")
    return MergeRequestSnapshot(
        iid=attributes["iid"],
        title=attributes.get("title") or "",
        state=attributes.get("state"),
        sha=attributes.get("sha"),
        source_branch=attributes.get("source_branch"),
        target_branch=attributes.get("target_branch"),
        draft=bool(draft if draft is not None else attributes.get("work_in_progress")),
        labels=list(attributes.get("labels") or []),
        assignee_ids=[a["id"] for a in attributes.get("assignees") or []],
        reviewer_ids=[r["id"] for r in attributes.get("reviewers") or []],
        detailed_merge_status=attributes.get("detailed_merge_status"),
        merge_status=attributes.get("merge_status"),
        blocking_discussions_resolved=attributes.get("blocking_discussions_resolved"),
        head_pipeline_id=pipeline.get("id") if isinstance(pipeline, dict) else None,
        web_url=attributes.get("web_url"),
    )


class PythonGitLabGateway:
    def __init__(self, url: str, token: str, *, timeout: float = 10.0) -> None:
        # Retries on 429/5xx with GitLab's Retry-After are python-gitlab's own.
        self._gl = gitlab.Gitlab(
            url, private_token=token, timeout=timeout, retry_transient_errors=True
        )

    def current_user_id(self) -> int:
        self._gl.auth()
        assert self._gl.user is not None
        return int(self._gl.user.id)

    def find_project(self, ref: int | str) -> ProjectRef:
        try:
            project = self._gl.projects.get(ref)
        except GitlabGetError as error:
            if error.response_code == 404:
                raise NotFoundError(f"GitLab project {ref} not found or not visible") from error
            raise
        return ProjectRef(
            id=project.id,
            path_with_namespace=project.path_with_namespace,
            web_url=project.web_url,
        )

    def open_merge_requests(
        self, project_id: int, *, assignee_id: int | None = None, labels: list[str] | None = None
    ) -> list[MergeRequestSnapshot]:
        filters: dict[str, Any] = {"state": "opened"}
        if assignee_id is not None:
            filters["assignee_id"] = assignee_id
        if labels:
            filters["labels"] = ",".join(labels)
        try:
            found = self._gl.projects.get(project_id, lazy=True).mergerequests.list(
                iterator=True, **filters
            )
            return [snapshot(mr) for mr in found]
        except GitlabListError as error:
            if error.response_code == 404:
                raise NotFoundError(f"GitLab project {project_id} not found") from error
            raise

    def merge_request(self, project_id: int, iid: int) -> MergeRequestSnapshot:
        try:
            return snapshot(self._gl.projects.get(project_id, lazy=True).mergerequests.get(iid))
        except GitlabGetError as error:
            if error.response_code == 404:
                raise NotFoundError(f"!{iid} of project {project_id} not found") from error
            raise

    def ensure_hook(self, project_id: int, url: str, token: str) -> int:
        hooks = self._gl.projects.get(project_id, lazy=True).hooks
        for hook in hooks.list(iterator=True):
            if hook.url == url:
                for name, value in HOOK_EVENTS.items():
                    setattr(hook, name, value)
                hook.token = token
                hook.save()
                return int(hook.id)
        created = hooks.create({"url": url, "token": token, **HOOK_EVENTS})
        return int(created.id)

    def remove_hook(self, project_id: int, url: str) -> bool:
        hooks = self._gl.projects.get(project_id, lazy=True).hooks
        removed = False
        for hook in hooks.list(iterator=True):
            if hook.url == url:
                hooks.delete(hook.id)
                removed = True
        return removed
