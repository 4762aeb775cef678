"""GitLab's JSON shapes for the REST API (field names as in the v4 docs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from local.gitlab_sim import gitops
from local.gitlab_sim.merge_requests import MergeRequestService
from local.gitlab_sim.models import (
    Epic,
    Group,
    Hook,
    Issue,
    Job,
    MergeRequest,
    Note,
    Pipeline,
    Project,
    User,
)
from local.gitlab_sim.pipelines import FINISHED, PipelineService
from local.gitlab_sim.store import GITLAB_VERSION, NotFound, Store


@dataclass
class Serializer:
    store: Store
    merge_requests: MergeRequestService
    pipelines: PipelineService

    @property
    def base(self) -> str:
        return self.store.base_url

    def user(self, user: User | int | None) -> dict[str, Any] | None:
        if user is None:
            return None
        if isinstance(user, int):
            try:
                user = self.store.user(user)
            except NotFound:
                return None
        return {
            "id": user.id,
            "username": user.username,
            "name": user.name,
            "state": user.state,
            "locked": False,
            "avatar_url": None,
            "web_url": f"{self.base}/{user.username}",
        }

    def user_full(self, user: User, viewer: User) -> dict[str, Any]:
        data = self.user(user) or {}
        data.update(
            {
                "created_at": user.created_at,
                "bio": "",
                "public_email": "",
                "bot": False,
                "job_title": "",
                "is_admin": user.is_admin if viewer.is_admin or viewer.id == user.id else None,
            }
        )
        if viewer.is_admin or viewer.id == user.id:
            data["email"] = user.email
        if data["is_admin"] is None:
            del data["is_admin"]
        return data

    def status(self, user: User) -> dict[str, Any]:
        return {
            "emoji": user.status_emoji or None,
            "availability": user.availability,
            "message": user.status_message or None,
            "message_html": user.status_message,
            "clear_status_at": None,
        }

    def project(self, project: Project, viewer: User) -> dict[str, Any]:
        store = self.store
        group = store.group_for_path(project.namespace)
        repo = store.repo(project.id)
        level = store.access_level(project, viewer)
        url = store.project_url(project)
        return {
            "id": project.id,
            "name": project.name,
            "path": project.path,
            "name_with_namespace": f"{project.namespace} / {project.name}",
            "path_with_namespace": project.path_with_namespace,
            "description": project.description,
            "default_branch": project.default_branch,
            "visibility": project.visibility,
            "web_url": url,
            "http_url_to_repo": f"{url}.git",
            "ssh_url_to_repo": f"ssh://git@127.0.0.1/{project.path_with_namespace}.git",
            "readme_url": None,
            "namespace": {
                "id": group.id,
                "name": group.name,
                "path": group.path.rsplit("/", 1)[-1],
                "kind": group.kind,
                "full_path": group.path,
                "parent_id": None,
                "web_url": self.group_url(group),
            },
            "created_at": project.created_at,
            "last_activity_at": project.created_at,
            "creator_id": project.creator_id,
            "empty_repo": not gitops.branches(repo),
            "archived": False,
            "merge_requests_enabled": True,
            "issues_enabled": True,
            "jobs_enabled": True,
            "merge_method": project.merge_method,
            "squash_option": project.squash_option,
            "only_allow_merge_if_pipeline_succeeds": project.only_allow_merge_if_pipeline_succeeds,
            "only_allow_merge_if_all_discussions_are_resolved": (
                project.only_allow_merge_if_all_discussions_are_resolved
            ),
            "allow_merge_on_skipped_pipeline": False,
            "remove_source_branch_after_merge": project.remove_source_branch_after_merge,
            "approvals_before_merge": project.approvals_before_merge,
            "permissions": {
                "project_access": {"access_level": level, "notification_level": 3}
                if level
                else None,
                "group_access": None,
            },
        }

    def branch(self, project: Project, name: str, sha: str, viewer: User) -> dict[str, Any]:
        repo = self.store.repo(project.id)
        rule = project.protected.get(name)
        return {
            "name": name,
            "merged": False,
            "protected": rule is not None,
            "default": name == project.default_branch,
            "developers_can_push": rule is None or rule.push_access_level <= 30,
            "developers_can_merge": rule is None or rule.merge_access_level <= 30,
            "can_push": self.store.access_level(project, viewer)
            >= (rule.push_access_level if rule else 30),
            "web_url": f"{self.store.project_url(project)}/-/tree/{name}",
            "commit": self.commit(project, sha) if repo else None,
        }

    def commit(self, project: Project, sha: str) -> dict[str, Any]:
        repo = self.store.repo(project.id)
        return gitops.commit_json(gitops.get_commit(repo, sha), self.store.project_url(project))

    def note(self, note: Note, mr: MergeRequest) -> dict[str, Any]:
        return {
            "id": note.id,
            "type": "DiscussionNote" if note.resolvable else None,
            "body": note.body,
            "attachment": None,
            "author": self.user(note.author_id),
            "created_at": note.created_at,
            "updated_at": note.created_at,
            "system": note.system,
            "noteable_id": mr.id,
            "noteable_type": "MergeRequest",
            "noteable_iid": mr.iid,
            "project_id": mr.project_id,
            "resolvable": note.resolvable,
            "resolved": note.resolved,
            "resolved_by": self.user(note.resolved_by),
            "confidential": False,
            "internal": False,
        }

    def pipeline(self, pipeline: Pipeline, *, full: bool = True) -> dict[str, Any]:
        project = self.store.projects[pipeline.project_id]
        data: dict[str, Any] = {
            "id": pipeline.id,
            "iid": pipeline.iid,
            "project_id": pipeline.project_id,
            "sha": pipeline.sha,
            "ref": pipeline.ref,
            "status": pipeline.status,
            "source": pipeline.source,
            "created_at": pipeline.created_at,
            "updated_at": pipeline.updated_at,
            "web_url": f"{self.store.project_url(project)}/-/pipelines/{pipeline.id}",
        }
        if full:
            data.update(
                {
                    "before_sha": gitops.ZERO_SHA,
                    "tag": False,
                    "yaml_errors": None,
                    "user": self.user(pipeline.user_id),
                    "started_at": pipeline.started_at,
                    "finished_at": pipeline.finished_at,
                    "committed_at": None,
                    "duration": project.rules.duration_s if pipeline.status in FINISHED else None,
                    "queued_duration": project.rules.pending_s,
                    "coverage": None,
                    "detailed_status": {
                        "text": pipeline.status,
                        "label": pipeline.status,
                        "group": pipeline.status,
                    },
                }
            )
        return data

    def job(self, job: Job, pipeline: Pipeline) -> dict[str, Any]:
        project = self.store.projects[pipeline.project_id]
        return {
            "id": job.id,
            "name": job.name,
            "stage": job.stage,
            "status": job.status,
            "ref": pipeline.ref,
            "tag": False,
            "allow_failure": False,
            "created_at": job.created_at,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
            "failure_reason": "script_failure" if job.status == "failed" else None,
            "pipeline": self.pipeline(pipeline, full=False),
            "user": self.user(pipeline.user_id),
            "commit": self.commit(project, pipeline.sha),
            "web_url": f"{self.store.project_url(project)}/-/jobs/{job.id}",
        }

    def merge_request(
        self, project: Project, mr: MergeRequest, viewer: User | None, *, full: bool = True
    ) -> dict[str, Any]:
        checks = self.merge_requests.checks(project, mr)
        assignees = [a for a in (self.user(i) for i in mr.assignee_ids) if a]
        data: dict[str, Any] = {
            "id": mr.id,
            "iid": mr.iid,
            "project_id": mr.project_id,
            "title": mr.title,
            "description": mr.description,
            "state": mr.state,
            "created_at": mr.created_at,
            "updated_at": mr.updated_at,
            "merged_by": self.user(mr.merged_by_id),
            "merge_user": self.user(mr.merged_by_id),
            "merged_at": mr.merged_at,
            "closed_by": self.user(mr.closed_by_id),
            "closed_at": mr.closed_at,
            "target_branch": mr.target_branch,
            "source_branch": mr.source_branch,
            "user_notes_count": sum(1 for n in mr.notes if not n.system),
            "upvotes": 0,
            "downvotes": 0,
            "author": self.user(mr.author_id),
            "assignees": assignees,
            "assignee": assignees[0] if assignees else None,
            "reviewers": [r for r in (self.user(i) for i in mr.reviewer_ids) if r],
            "source_project_id": mr.project_id,
            "target_project_id": mr.project_id,
            "labels": list(mr.labels),
            "draft": mr.draft,
            "work_in_progress": mr.draft,
            "milestone": None,
            "merge_when_pipeline_succeeds": False,
            "merge_status": checks.merge_status,
            "detailed_merge_status": checks.detailed_merge_status,
            "sha": mr.sha,
            "merge_commit_sha": mr.merge_commit_sha,
            "squash_commit_sha": mr.squash_commit_sha,
            "discussion_locked": None,
            "should_remove_source_branch": None,
            "force_remove_source_branch": mr.force_remove_source_branch,
            "reference": f"!{mr.iid}",
            "references": {
                "short": f"!{mr.iid}",
                "relative": f"!{mr.iid}",
                "full": f"{project.path_with_namespace}!{mr.iid}",
            },
            "web_url": f"{self.store.project_url(project)}/-/merge_requests/{mr.iid}",
            "time_stats": {
                "time_estimate": 0,
                "total_time_spent": 0,
                "human_time_estimate": None,
                "human_total_time_spent": None,
            },
            "squash": mr.squash,
            "squash_on_merge": mr.squash,
            "task_completion_status": {"count": 0, "completed_count": 0},
            "has_conflicts": checks.has_conflicts,
            "blocking_discussions_resolved": self.merge_requests.resolved(mr),
            "approvals_before_merge": project.approvals_before_merge,
        }
        if full:
            head = self.pipelines.head_pipeline(project.id, mr.iid)
            data.update(
                {
                    "subscribed": False,
                    "changes_count": str(
                        len(
                            gitops.diff_trees(
                                self.store.repo(project.id), mr.base_sha or None, mr.sha
                            )
                        )
                    ),
                    "latest_build_started_at": head.started_at if head else None,
                    "latest_build_finished_at": head.finished_at if head else None,
                    "first_deployed_to_production_at": None,
                    "pipeline": self.pipeline(head, full=False) if head else None,
                    "head_pipeline": self.pipeline(head) if head else None,
                    "diff_refs": {
                        "base_sha": mr.base_sha,
                        "head_sha": mr.sha,
                        "start_sha": mr.start_sha,
                    },
                    "merge_error": mr.merge_error,
                    "rebase_in_progress": mr.rebase_in_progress,
                    "first_contribution": False,
                    "user": {
                        "can_merge": viewer is not None
                        and self.merge_requests.can_merge(project, viewer, mr.target_branch)
                    },
                }
            )
        return data

    def group_url(self, group: Group) -> str:
        if group.kind == "user":
            return f"{self.base}/{group.path}"
        return f"{self.base}/groups/{group.path}"

    def group(self, group: Group, viewer: User, *, with_projects: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": group.id,
            "web_url": self.group_url(group),
            "name": group.name,
            "path": group.path.rsplit("/", 1)[-1],
            "description": "",
            "visibility": "private",
            "share_with_group_lock": False,
            "require_two_factor_authentication": False,
            "two_factor_grace_period": 48,
            "project_creation_level": "developer",
            "auto_devops_enabled": None,
            "subgroup_creation_level": "maintainer",
            "emails_disabled": False,
            "emails_enabled": True,
            "mentions_disabled": None,
            "lfs_enabled": True,
            "default_branch": None,
            "request_access_enabled": True,
            "avatar_url": None,
            "full_name": group.path.replace("/", " / "),
            "full_path": group.path,
            "created_at": group.created_at,
            "parent_id": None,
            "ldap_cn": None,
            "ldap_access": None,
            "marked_for_deletion_on": None,
        }
        if with_projects:
            store = self.store
            data["projects"] = [
                self.project(p, viewer)
                for p in sorted(store.group_projects(group), key=lambda p: p.id)
                if viewer.is_admin or p.visibility == "public" or store.access_level(p, viewer) > 0
            ]
            data["shared_projects"] = []
        return data

    def issue(self, project: Project, issue: Issue, *, full: bool = True) -> dict[str, Any]:
        assignees = [a for a in (self.user(i) for i in issue.assignee_ids) if a]
        url = self.store.project_url(project)
        api = f"{self.base}/api/v4/projects/{project.id}"
        epic = self.store.epic_by_id(issue.epic_id) if issue.epic_id else None
        data: dict[str, Any] = {
            "id": issue.id,
            "iid": issue.iid,
            "project_id": issue.project_id,
            "title": issue.title,
            "description": issue.description,
            "state": issue.state,
            "created_at": issue.created_at,
            "updated_at": issue.updated_at,
            "closed_at": issue.closed_at,
            "closed_by": self.user(issue.closed_by_id),
            "labels": list(issue.labels),
            "milestone": None,
            "assignees": assignees,
            "assignee": assignees[0] if assignees else None,
            "author": self.user(issue.author_id),
            "type": "ISSUE",
            "issue_type": "issue",
            "user_notes_count": 0,
            "merge_requests_count": 0,
            "upvotes": 0,
            "downvotes": 0,
            "due_date": issue.due_date,
            "confidential": issue.confidential,
            "discussion_locked": None,
            "web_url": f"{url}/-/issues/{issue.iid}",
            "time_stats": {
                "time_estimate": 0,
                "total_time_spent": 0,
                "human_time_estimate": None,
                "human_total_time_spent": None,
            },
            "task_completion_status": {"count": 0, "completed_count": 0},
            "weight": issue.weight,
            "blocking_issues_count": 0,
            "has_tasks": False,
            "_links": {
                "self": f"{api}/issues/{issue.iid}",
                "notes": f"{api}/issues/{issue.iid}/notes",
                "award_emoji": f"{api}/issues/{issue.iid}/award_emoji",
                "project": api,
                "closed_as_duplicate_of": None,
            },
            "references": {
                "short": f"#{issue.iid}",
                "relative": f"#{issue.iid}",
                "full": f"{project.path_with_namespace}#{issue.iid}",
            },
            "severity": "UNKNOWN",
            "moved_to_id": None,
            "imported": False,
            "imported_from": "none",
            "service_desk_reply_to": None,
            "iteration": None,
            "health_status": None,
            "epic_iid": epic.iid if epic else None,
            "epic": self._epic_summary(epic) if epic else None,
        }
        if full:
            data["subscribed"] = False
        return data

    def _epic_summary(self, epic: Epic) -> dict[str, Any]:
        group = self.store.groups[epic.group_id]
        return {
            "id": epic.id,
            "iid": epic.iid,
            "title": epic.title,
            "url": f"/groups/{group.path}/-/epics/{epic.iid}",
            "group_id": epic.group_id,
            "human_readable_end_date": None,
            "human_readable_timestamp": None,
        }

    def epic(self, epic: Epic) -> dict[str, Any]:
        group = self.store.groups[epic.group_id]
        parent = self.store.epic_by_id(epic.parent_id) if epic.parent_id else None
        api = f"{self.base}/api/v4/groups/{group.id}"
        return {
            "id": epic.id,
            "iid": epic.iid,
            "group_id": epic.group_id,
            "parent_id": epic.parent_id,
            "parent_iid": parent.iid if parent else None,
            "title": epic.title,
            "description": epic.description,
            "state": epic.state,
            "confidential": False,
            "web_url": f"{self.group_url(group)}/-/epics/{epic.iid}",
            "reference": f"&{epic.iid}",
            "references": {
                "short": f"&{epic.iid}",
                "relative": f"&{epic.iid}",
                "full": f"{group.path}&{epic.iid}",
            },
            "author": self.user(epic.author_id),
            "start_date": epic.start_date,
            "start_date_is_fixed": epic.start_date is not None,
            "start_date_fixed": epic.start_date,
            "start_date_from_milestones": None,
            "start_date_from_inherited_source": None,
            "end_date": epic.due_date,
            "due_date": epic.due_date,
            "due_date_is_fixed": epic.due_date is not None,
            "due_date_fixed": epic.due_date,
            "due_date_from_milestones": None,
            "due_date_from_inherited_source": None,
            "created_at": epic.created_at,
            "updated_at": epic.updated_at,
            "closed_at": epic.closed_at,
            "labels": list(epic.labels),
            "upvotes": 0,
            "downvotes": 0,
            "color": "#1068bf",
            "_links": {
                "self": f"{api}/epics/{epic.iid}",
                "epic_issues": f"{api}/epics/{epic.iid}/issues",
                "group": api,
                "parent": f"{api}/epics/{parent.iid}" if parent else None,
            },
        }

    def hook(self, hook: Hook) -> dict[str, Any]:
        return {
            "id": hook.id,
            "url": hook.url,
            "project_id": hook.project_id,
            "push_events": hook.push_events,
            "merge_requests_events": hook.merge_requests_events,
            "note_events": hook.note_events,
            "pipeline_events": hook.pipeline_events,
            "issues_events": hook.issues_events,
            "job_events": hook.job_events,
            "tag_push_events": False,
            "enable_ssl_verification": hook.enable_ssl_verification,
            "created_at": hook.created_at,
            "alert_status": hook.alert_status(self.store.monotonic()),
            "disabled_until": None,
        }

    @staticmethod
    def version() -> dict[str, Any]:
        return {
            "version": GITLAB_VERSION,
            "revision": "simulated",
            "kas": {"enabled": False},
            "enterprise": True,
        }
