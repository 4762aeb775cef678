"""Webhook bodies in the shapes GitLab documents ("Webhook events"), for tests and benchmarks.

``legacy=True`` gives the older shape (``work_in_progress`` instead of ``draft``, no
``detailed_merge_status``/``event_type``, ``UTC``-suffixed timestamps)."""

from __future__ import annotations

import uuid
from typing import Any

SHA_A = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
SHA_B = "bcbb5ec396a2c0f828686f14fac9b80b780504f2"


def _user(user_id: int = 42, username: str = "dev") -> dict[str, Any]:
    return {
        "id": user_id,
        "name": username.title(),
        "username": username,
        "avatar_url": f"https://gitlab.example.com/uploads/{username}.png",
        "email": "[REDACTED]",
    }


def _project(project_id: int) -> dict[str, Any]:
    path = f"acme/service-{project_id}"
    return {
        "id": project_id,
        "name": f"service-{project_id}",
        "description": "",
        "web_url": f"https://gitlab.example.com/{path}",
        "avatar_url": None,
        "git_ssh_url": f"git@gitlab.example.com:{path}.git",
        "git_http_url": f"https://gitlab.example.com/{path}.git",
        "namespace": "acme",
        "visibility_level": 0,
        "path_with_namespace": path,
        "default_branch": "main",
        "ci_config_path": "",
        "homepage": f"https://gitlab.example.com/{path}",
        "url": f"git@gitlab.example.com:{path}.git",
        "ssh_url": f"git@gitlab.example.com:{path}.git",
        "http_url": f"https://gitlab.example.com/{path}.git",
    }


def _timestamp(legacy: bool) -> str:
    return "2026-11-20 09:15:02 UTC" if legacy else "2026-11-20T09:15:02Z"


def merge_request_attributes(
    project_id: int,
    iid: int,
    *,
    sha: str = SHA_A,
    target_branch: str = "main",
    draft: bool = False,
    legacy: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "id": 1000 + iid,
        "iid": iid,
        "target_branch": target_branch,
        "source_branch": f"feature/{iid}",
        "source_project_id": project_id,
        "target_project_id": project_id,
        "author_id": 42,
        "assignee_id": 7,
        "assignee_ids": [7],
        "reviewer_ids": [9],
        "title": f"Change number {iid}",
        "description": "Makes things better.\n\nCloses #12",
        "created_at": _timestamp(legacy),
        "updated_at": _timestamp(legacy),
        "milestone_id": None,
        "state": "opened",
        "merge_status": "can_be_merged",
        "url": f"https://gitlab.example.com/acme/service-{project_id}/-/merge_requests/{iid}",
        "last_commit": {
            "id": sha,
            "message": "Make things better\n",
            "title": "Make things better",
            "timestamp": "2026-11-20T10:15:02+01:00",
            "url": f"https://gitlab.example.com/acme/service-{project_id}/-/commit/{sha}",
            "author": {"name": "Dev", "email": "dev@example.com"},
        },
        "head_pipeline_id": 301,
        "blocking_discussions_resolved": True,
        "work_in_progress": draft,
        "time_estimate": 0,
        "action": "open",
    }
    if not legacy:
        attributes.update(draft=draft, detailed_merge_status="mergeable", first_contribution=False)
    attributes.update(extra)
    return attributes


def merge_request_event(
    project_id: int, iid: int, *, legacy: bool = False, labels: tuple[str, ...] = (), **extra: Any
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "object_kind": "merge_request",
        "user": _user(),
        "project": _project(project_id),
        "repository": {
            "name": f"service-{project_id}",
            "url": f"git@gitlab.example.com:acme/service-{project_id}.git",
            "description": "",
            "homepage": f"https://gitlab.example.com/acme/service-{project_id}",
        },
        "object_attributes": merge_request_attributes(project_id, iid, legacy=legacy, **extra),
        "labels": [
            {
                "id": 200 + index,
                "title": title,
                "color": "#428BCA",
                "project_id": project_id,
                "type": "ProjectLabel",
                "group_id": None,
            }
            for index, title in enumerate(labels)
        ],
        "changes": {"updated_at": {"previous": _timestamp(legacy), "current": _timestamp(legacy)}},
        "assignees": [_user(7, "bot")],
        "reviewers": [_user(9, "reviewer")],
    }
    if not legacy:
        event["event_type"] = "merge_request"
    return event


def note_event(
    project_id: int, iid: int, body: str = "LGTM", noteable: str = "MergeRequest"
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "object_kind": "note",
        "event_type": "note",
        "user": _user(),
        "project_id": project_id,
        "project": _project(project_id),
        "object_attributes": {
            "id": 1244,
            "note": body,
            "noteable_type": noteable,
            "author_id": 42,
            "created_at": "2026-11-20 09:15:02 UTC",
            "updated_at": "2026-11-20 09:15:02 UTC",
            "project_id": project_id,
            "system": False,
            "noteable_id": 1000 + iid,
            "url": f"https://gitlab.example.com/acme/service-{project_id}/-/merge_requests/{iid}#note_1244",
        },
    }
    if noteable == "MergeRequest":
        event["merge_request"] = merge_request_attributes(project_id, iid)
    elif noteable == "Issue":
        event["issue"] = {"id": 92, "iid": 17, "title": "A bug", "state": "opened"}
    return event


def pipeline_event(
    project_id: int,
    pipeline_id: int,
    *,
    status: str = "success",
    iid: int | None = None,
    ref: str = "main",
    sha: str = SHA_B,
) -> dict[str, Any]:
    return {
        "object_kind": "pipeline",
        "object_attributes": {
            "id": pipeline_id,
            "iid": pipeline_id - 300,
            "name": None,
            "ref": ref,
            "tag": False,
            "sha": sha,
            "before_sha": "0000000000000000000000000000000000000000",
            "source": "merge_request_event" if iid else "push",
            "status": status,
            "detailed_status": "passed" if status == "success" else status,
            "stages": ["build", "test"],
            "created_at": "2026-11-20 09:15:02 UTC",
            "finished_at": "2026-11-20 09:25:02 UTC",
            "duration": 600,
            "queued_duration": 3,
            "variables": [],
            "url": f"https://gitlab.example.com/acme/service-{project_id}/-/pipelines/{pipeline_id}",
        },
        "merge_request": {
            "id": 1000 + iid,
            "iid": iid,
            "title": f"Change number {iid}",
            "source_branch": f"feature/{iid}",
            "source_project_id": project_id,
            "target_branch": "main",
            "target_project_id": project_id,
            "state": "opened",
            "merge_status": "can_be_merged",
            "detailed_merge_status": "mergeable",
            "url": f"https://gitlab.example.com/acme/service-{project_id}/-/merge_requests/{iid}",
        }
        if iid
        else None,
        "user": _user(),
        "project": _project(project_id),
        "commit": {
            "id": sha,
            "message": "Make things better\n",
            "timestamp": "2026-11-20T10:15:02+01:00",
            "author": {"name": "Dev", "email": "dev@example.com"},
        },
        "source_pipeline": None,
        "builds": [
            {
                "id": pipeline_id * 10 + index,
                "stage": stage,
                "name": f"{stage}-job",
                "status": status,
                "created_at": "2026-11-20 09:15:02 UTC",
                "started_at": "2026-11-20 09:15:05 UTC",
                "finished_at": "2026-11-20 09:25:02 UTC",
                "duration": 597.0,
                "queued_duration": 3.0,
                "failure_reason": None if status == "success" else "script_failure",
                "when": "on_success",
                "manual": False,
                "allow_failure": False,
                "user": _user(),
                "runner": None,
                "artifacts_file": {"filename": None, "size": None},
                "environment": None,
            }
            for index, stage in enumerate(("build", "test"))
        ],
    }


def push_event(
    project_id: int, *, ref: str = "refs/heads/main", after: str = SHA_B
) -> dict[str, Any]:
    kind = "tag_push" if ref.startswith("refs/tags/") else "push"
    return {
        "object_kind": kind,
        "event_name": kind,
        "before": SHA_A,
        "after": after,
        "ref": ref,
        "ref_protected": True,
        "checkout_sha": after,
        "message": None,
        "user_id": 42,
        "user_name": "Dev",
        "user_username": "dev",
        "user_email": "",
        "user_avatar": "",
        "project_id": project_id,
        "project": _project(project_id),
        "commits": [
            {
                "id": after,
                "message": "Merge branch 'feature/1' into 'main'\n",
                "title": "Merge branch 'feature/1' into 'main'",
                "timestamp": "2026-11-20T10:15:02+01:00",
                "url": f"https://gitlab.example.com/acme/service-{project_id}/-/commit/{after}",
                "author": {"name": "Dev", "email": "dev@example.com"},
                "added": [],
                "modified": ["README.md"],
                "removed": [],
            }
        ],
        "total_commits_count": 1,
        "repository": {"name": f"service-{project_id}", "homepage": ""},
    }


def job_event(
    project_id: int, job_id: int, *, status: str = "failed", ref: str = "main"
) -> dict[str, Any]:
    return {
        "object_kind": "build",
        "ref": ref,
        "tag": False,
        "before_sha": SHA_A,
        "sha": SHA_B,
        "retries_count": 0,
        "build_id": job_id,
        "build_name": "test-job",
        "build_stage": "test",
        "build_status": status,
        "build_created_at": "2026-11-20 09:15:02 UTC",
        "build_started_at": "2026-11-20 09:15:05 UTC",
        "build_finished_at": "2026-11-20 09:25:02 UTC",
        "build_duration": 597.0,
        "build_queued_duration": 3.0,
        "build_allow_failure": False,
        "build_failure_reason": "script_failure" if status == "failed" else "unknown_failure",
        "pipeline_id": 301,
        "runner": None,
        "project_id": project_id,
        "project_name": f"acme / service-{project_id}",
        "user": _user(),
        "commit": {"id": 301, "name": None, "sha": SHA_B, "message": "x", "status": status},
        "repository": {"name": f"service-{project_id}", "homepage": ""},
        "project": _project(project_id),
        "environment": None,
    }


EVENT_HEADERS = {
    "merge_request": "Merge Request Hook",
    "note": "Note Hook",
    "pipeline": "Pipeline Hook",
    "push": "Push Hook",
    "tag_push": "Tag Push Hook",
    "build": "Job Hook",
}


def delivery_headers(
    body_kind: str, token: str, *, idempotency_key: str | None = None, legacy: bool = False
) -> dict[str, str]:
    """The headers GitLab sends with a project hook delivery."""
    event_uuid = str(uuid.uuid4())
    headers = {
        "content-type": "application/json",
        "user-agent": "GitLab/16.2.0" if legacy else "GitLab/18.5.1",
        "x-gitlab-event": EVENT_HEADERS[body_kind],
        "x-gitlab-token": token,
        "x-gitlab-instance": "https://gitlab.example.com",
        "x-gitlab-event-uuid": event_uuid,
    }
    if not legacy:
        headers["x-gitlab-webhook-uuid"] = str(uuid.uuid4())
        headers["idempotency-key"] = idempotency_key or str(uuid.uuid4())
    return headers
