"""The simulator's records. Plain dataclasses: the store owns them and guards them with its
lock; serializers turn them into GitLab's JSON shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# GitLab's access levels (https://docs.gitlab.com/api/access_requests/).
GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 20, 30, 40, 50
NO_ACCESS = 0


@dataclass
class User:
    id: int
    username: str
    name: str
    email: str
    is_admin: bool = False
    state: str = "active"
    # GitLab's user status: availability is "not_set" or "busy"; OOO is a message with an emoji.
    availability: str = "not_set"
    status_message: str = ""
    status_emoji: str = ""
    created_at: str = ""


@dataclass
class AccessToken:
    """A personal access token. Rotating one revokes it and issues a new token in its
    ``family`` (the id of the family's first token), which GitLab's reuse detection revokes
    as a whole when a revoked member is rotated again."""

    id: int
    user_id: int
    family: int
    name: str = "token"
    description: str = ""
    scopes: list[str] = field(default_factory=lambda: ["api"])
    created_at: str = ""
    # An ISO date; the token stops working at that date's start (UTC). None: never expires.
    expires_at: str | None = None
    revoked: bool = False
    last_used_at: str | None = None


@dataclass
class ProtectedBranch:
    name: str
    push_access_level: int = MAINTAINER
    merge_access_level: int = MAINTAINER
    allow_force_push: bool = False


@dataclass
class PipelineRules:
    """What makes a pipeline fail; see README.md "Pipeline outcome"."""

    fail_paths: list[str] = field(default_factory=lambda: ["ci/fail"])
    conflict_pairs: list[tuple[str, str]] = field(default_factory=list)
    flaky_rate: float = 0.0
    seed: int = 0
    duration_s: float = 60.0
    pending_s: float = 5.0


@dataclass
class Label:
    id: int
    name: str
    color: str = "#6699cc"
    description: str = ""


@dataclass
class Project:
    id: int
    name: str
    path: str
    namespace: str
    default_branch: str
    creator_id: int
    visibility: str = "private"
    description: str = ""
    merge_method: str = "merge"  # merge | rebase_merge | ff
    only_allow_merge_if_pipeline_succeeds: bool = False
    only_allow_merge_if_all_discussions_are_resolved: bool = False
    approvals_before_merge: int = 0
    squash_option: str = "default_off"
    remove_source_branch_after_merge: bool = True
    members: dict[int, int] = field(default_factory=dict)
    protected: dict[str, ProtectedBranch] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)
    rules: PipelineRules = field(default_factory=PipelineRules)
    created_at: str = ""
    next_mr_iid: int = 1
    next_pipeline_iid: int = 1
    next_issue_iid: int = 1

    @property
    def path_with_namespace(self) -> str:
        return f"{self.namespace}/{self.path}"


@dataclass
class Note:
    id: int
    body: str
    author_id: int
    created_at: str
    discussion_id: str
    system: bool = False
    resolvable: bool = False
    resolved: bool = False
    resolved_by: int | None = None


@dataclass
class MergeRequest:
    id: int
    iid: int
    project_id: int
    title: str
    description: str
    source_branch: str
    target_branch: str
    author_id: int
    sha: str
    created_at: str
    updated_at: str
    state: str = "opened"
    labels: list[str] = field(default_factory=list)
    assignee_ids: list[int] = field(default_factory=list)
    reviewer_ids: list[int] = field(default_factory=list)
    approved_by: list[int] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    # Every head this MR has had, oldest first: its pipelines are the ones run on these.
    sha_history: list[str] = field(default_factory=list)
    squash: bool = False
    force_remove_source_branch: bool = False
    rebase_in_progress: bool = False
    rebase_done_at: float | None = None
    rebase_skip_ci: bool = False
    rebase_user_id: int | None = None
    merge_error: str | None = None
    merged_by_id: int | None = None
    merged_at: str | None = None
    merge_commit_sha: str | None = None
    squash_commit_sha: str | None = None
    closed_at: str | None = None
    closed_by_id: int | None = None
    # The target head the diff was taken against (GitLab's diff_refs.base_sha).
    base_sha: str = ""
    start_sha: str = ""

    @property
    def draft(self) -> bool:
        lowered = self.title.lower()
        return any(lowered.startswith(p) for p in ("draft:", "[draft]", "(draft)", "wip:"))


@dataclass
class Job:
    id: int
    name: str
    stage: str
    status: str
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None


@dataclass
class Pipeline:
    id: int
    iid: int
    project_id: int
    sha: str
    ref: str
    source: str
    user_id: int
    created_at: str
    updated_at: str
    status: str = "created"
    # Decided when the pipeline is created, revealed when it finishes.
    outcome: str = "success"
    failure_reason: str = ""
    mr_iid: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    # Monotonic real-clock instants at which the scheduler moves the pipeline on.
    pending_at: float = 0.0
    running_at: float = 0.0
    finish_at: float = 0.0
    jobs: list[Job] = field(default_factory=list)
    # CI/CD variables given to this pipeline (push option ``ci.variable``): (key, value).
    variables: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Hook:
    id: int
    project_id: int
    url: str
    token: str = ""
    push_events: bool = True
    merge_requests_events: bool = False
    note_events: bool = False
    pipeline_events: bool = False
    issues_events: bool = False
    job_events: bool = False
    enable_ssl_verification: bool = True
    created_at: str = ""
    uuid: str = ""
    recent_failures: int = 0
    disabled_until: float | None = None
    permanently_disabled: bool = False
    backoff_count: int = 0

    def alert_status(self, now: float) -> str:
        if self.permanently_disabled:
            return "disabled"
        if self.disabled_until is not None and now < self.disabled_until:
            return "temporarily_disabled"
        return "executable"


@dataclass
class Delivery:
    """One attempt to send a hook event; resending copies it with the same Idempotency-Key."""

    id: int
    hook_id: int
    event_name: str
    body: dict[str, Any]
    idempotency_key: str
    event_uuid: str
    status_code: int | None = None
    error: str | None = None
    sent: bool = False
    dropped: bool = False
    created_at: str = ""
    # Injected faults: the delivery this one repeats, and one held back to be overtaken.
    duplicate_of: int | None = None
    held_back: bool = False


@dataclass
class Group:
    """A namespace. ``path`` is the full path (GitLab's ``full_path``); personal namespaces
    have kind "user" and are not served under /groups. There are no group members: a user's
    access to a group is the highest access they have to one of its projects."""

    id: int
    path: str
    name: str
    kind: str = "group"
    created_at: str = ""
    next_epic_iid: int = 1


@dataclass
class Issue:
    id: int
    iid: int
    project_id: int
    title: str
    description: str
    author_id: int
    created_at: str
    updated_at: str
    state: str = "opened"
    labels: list[str] = field(default_factory=list)
    assignee_ids: list[int] = field(default_factory=list)
    weight: int | None = None
    due_date: str | None = None
    confidential: bool = False
    closed_at: str | None = None
    closed_by_id: int | None = None
    epic_id: int | None = None
    # GitLab links issues to epics through a record of its own; clients address the link
    # by this id (epic_issue_id).
    epic_issue_id: int | None = None


@dataclass
class Epic:
    id: int
    iid: int
    group_id: int
    title: str
    description: str
    author_id: int
    created_at: str
    updated_at: str
    state: str = "opened"
    labels: list[str] = field(default_factory=list)
    start_date: str | None = None
    due_date: str | None = None
    parent_id: int | None = None
    closed_at: str | None = None
