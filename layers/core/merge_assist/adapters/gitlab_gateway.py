"""``GitLabGateway`` with python-gitlab."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any, Protocol

import gitlab
import requests
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.exceptions import ClientError
from gitlab.exceptions import (
    GitlabAuthenticationError,
    GitlabError,
    GitlabGetError,
    GitlabListError,
)
from gitlab.v4.objects import Project, ProjectMergeRequestManager

from merge_assist.adapters.aws import register_cache
from merge_assist.admin.token_rotation import TokenDetails
from merge_assist.platform.caching import built_once
from merge_assist.platform.config import ProjectRef
from merge_assist.platform.errors import (
    ConflictError,
    GitLabRefused,
    GitLabUnavailable,
    MergeAssistError,
    NotFoundError,
    NotMergeableError,
)
from merge_assist.platform.events import MergeRequestSnapshot, PipelineSnapshot
from merge_assist.platform.metrics import Metric, NullMeter
from merge_assist.platform.ports import Meter
from merge_assist.platform.settings import Settings, get_settings
from merge_assist.queue.comments import Transition
from merge_assist.queue.readiness import MergeRequestFacts

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


# GitLab's answers to a merge it will not do: 405 (closed, draft or a merge check blocks),
# 406 (older GitLab: cannot be merged), 422 (conflict or needs a rebase).
NOT_MERGEABLE_STATUSES = frozenset({405, 406, 422})
# Enough of GitLab's message to act on; a validation error can be a whole document.
MESSAGE_CHARS = 500


def _gitlab_message(error: GitlabError) -> str:
    return str(error.error_message)[:MESSAGE_CHARS]


def _translate(error: GitlabError, what: str) -> MergeAssistError:
    """A python-gitlab HTTP error as the core's: 404 ``NotFoundError``, 409
    ``ConflictError``, 429 and 5xx (what python-gitlab's own retries did not get past)
    ``GitLabUnavailable``, any other status ``GitLabRefused``. Messages carry GitLab's own
    words and what was asked, never the request (its headers hold the token)."""
    status = error.response_code
    message = f"{what}: {_gitlab_message(error)}"
    if status == 404:
        return NotFoundError(message)
    if status == 409:
        return ConflictError(message)
    if status is None or status == 429 or status >= 500:
        return GitLabUnavailable(status, message)
    return GitLabRefused(status, message)


def _no_answer(error: requests.RequestException, what: str) -> MergeAssistError:
    # No answer at all (refused, reset, timed out): the exception's text names the URL,
    # never the token, which travels in a header.
    return GitLabUnavailable(None, f"{what}: GitLab did not answer ({type(error).__name__})")


def _approval_from_merge_status(status: str | None) -> bool | None:
    """What GitLab's ``detailed_merge_status`` already says of the approvals: ``mergeable``
    only once every merge check passed, approvals included; ``not_approved`` when they are
    missing. Any other status names only the first check that fails, so the approvals have
    to be asked (one more call)."""
    if status == "mergeable":
        return True
    if status == "not_approved":
        return False
    return None


@contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except GitlabError as error:
        raise _translate(error, what) from error
    except requests.RequestException as error:
        raise _no_answer(error, what) from error


def notice_marker(key: str) -> str:
    """Invisible in GitLab's rendering of a note; names the state change it tells of."""
    return f"<!-- merge-assist:{key} -->"


# A retried post comes seconds after the first: the marker is among the newest notes.
MARKER_SEARCH_NOTES = 20
NOTE_POST_TRIES = 4
# GitLab may still be writing the note the client gave up on: give it a moment.
NOTE_RETRY_SECONDS = 1.0
NOTE_RETRY_CAP_SECONDS = 8.0


def _ambiguous(error: Exception) -> bool:
    """The post may or may not have been taken: no answer, or GitLab failed mid-way."""
    if isinstance(error, requests.RequestException):
        return True
    return isinstance(error, GitlabError) and (
        error.response_code is None or error.response_code == 429 or error.response_code >= 500
    )


def pipeline_snapshot(pipeline: Any) -> PipelineSnapshot:
    attributes: dict[str, Any] = (
        pipeline.attributes if hasattr(pipeline, "attributes") else dict(pipeline)
    )
    return PipelineSnapshot(
        id=attributes["id"],
        sha=attributes["sha"],
        ref=attributes.get("ref"),
        status=attributes["status"],
        source=attributes.get("source"),
        web_url=attributes.get("web_url"),
    )


# GitLab refused the token (revoked, expired, rotated away: 401) or what it may do (403).
AUTH_FAILURE_STATUSES = frozenset({401, 403})


class _CountingAdapter(requests.adapters.HTTPAdapter):
    """Counts every request sent to GitLab, each try of a retried one included (what
    GitLab's rate limit sees), the ones that failed (5xx, timeout, no connection) and the
    ones GitLab refused the bot's credentials for (401, 403)."""

    def __init__(self, meter: Meter) -> None:
        super().__init__()
        self.meter = meter
        self.sent = 0

    def send(  # noqa: PLR0917 (requests' own signature)
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        self.sent += 1
        self.meter.record(Metric.GITLAB_API_CALLS)
        try:
            response = super().send(request, stream, timeout, verify, cert, proxies)
        except (requests.ConnectionError, requests.Timeout):
            self.meter.record(Metric.GITLAB_API_ERRORS)
            raise
        if response.status_code >= 500:
            self.meter.record(Metric.GITLAB_API_ERRORS)
        elif response.status_code in AUTH_FAILURE_STATUSES:
            self.meter.record(Metric.GITLAB_AUTH_FAILURES)
        return response


# python-gitlab's back-off doubles from 0.1 s: five retries wait about three seconds (more
# when GitLab says Retry-After). Its default of ten waits over 100 s, past a step's timeout;
# longer outages are the workflow's retries' and the watcher's to ride out.
MAX_RETRIES = 5


class _MeteredGitlab(gitlab.Gitlab):
    """python-gitlab retries inside ``http_request`` and says nothing of it; every try
    passes through the session's adapter, so the tries past the first are its retries."""

    def __init__(self, *args: Any, adapter: _CountingAdapter, **kwargs: Any) -> None:
        session = requests.Session()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        super().__init__(*args, session=session, **kwargs)
        self._adapter = adapter

    def http_request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("max_retries", MAX_RETRIES)
        before = self._adapter.sent
        try:
            return super().http_request(*args, **kwargs)
        finally:
            retries = self._adapter.sent - before - 1
            if retries > 0:
                self._adapter.meter.record(Metric.GITLAB_API_RETRIES, retries)


class _ReauthenticatingGitlab(_MeteredGitlab):
    """Every call passes through ``http_request`` (each page of a list too), so a 401 is
    answered there: the token source is asked for a token other than the refused one, and
    the call is sent once more with it."""

    def __init__(self, url: str, *, tokens: TokenSource, **kwargs: Any) -> None:
        super().__init__(url, private_token=tokens.current(), **kwargs)
        self._tokens = tokens

    def http_request(self, *args: Any, **kwargs: Any) -> requests.Response:
        try:
            return super().http_request(*args, **kwargs)
        except GitlabAuthenticationError:
            # GitLab acts on no request it answers 401, so sending it again is safe.
            token = self._tokens.refreshed(self.private_token or "")
            if token is None:
                raise
            self.private_token = token
            self._set_auth_info()
            return super().http_request(*args, **kwargs)


class PythonGitLabGateway:
    def __init__(
        self,
        url: str,
        token: str | TokenSource,
        *,
        timeout: float = 10.0,
        meter: Meter | None = None,
    ) -> None:
        """``token`` is a plain token (tests, the CLI) or where the bot's token is kept,
        asked again when GitLab refuses the one in use."""
        self._meter = meter or NullMeter()
        # Retries on 429/5xx with GitLab's Retry-After are python-gitlab's own.
        self._gl = _ReauthenticatingGitlab(
            url,
            tokens=StaticToken(token) if isinstance(token, str) else token,
            timeout=timeout,
            retry_transient_errors=True,
            adapter=_CountingAdapter(self._meter),
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

    def merge_requests(
        self, project_id: int, iids: Sequence[int]
    ) -> dict[int, MergeRequestSnapshot]:
        """One list call (``iids[]``) where ``merge_request`` would make one per MR."""
        wanted = sorted(set(iids))
        if not wanted:
            return {}
        try:
            found = self._merge_requests(project_id).list(
                iids=wanted, state="all", per_page=100, iterator=True
            )
            snapshots = {int(mr.iid): snapshot(mr) for mr in found}
        except GitlabListError as error:
            if error.response_code == 404:
                raise NotFoundError(f"GitLab project {project_id} not found") from error
            raise
        missing = [iid for iid in wanted if iid not in snapshots]
        if missing:
            listed = ", ".join(f"!{iid}" for iid in missing)
            raise NotFoundError(f"{listed} of project {project_id} not found")
        return {iid: snapshots[iid] for iid in wanted}

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
        with _translated(f"hooks of project {project_id}"):
            for hook in hooks.list(iterator=True):
                if hook.url == url:
                    hooks.delete(hook.id)
                    removed = True
        return removed

    # --- the merge workflow ---------------------------------------------------------------

    def _project(self, project_id: int) -> Project:
        # Lazy: the id is all the sub-resources need, so no GET of the project itself.
        return self._gl.projects.get(project_id, lazy=True)

    def _merge_requests(self, project_id: int) -> ProjectMergeRequestManager:
        return self._project(project_id).mergerequests

    def merge_request_facts(self, project_id: int, iid: int) -> MergeRequestFacts:
        what = f"!{iid} of project {project_id}"
        with _translated(what):
            mr = self._merge_requests(project_id).get(iid, include_rebase_in_progress=True)
            attributes: dict[str, Any] = mr.attributes
            approved = _approval_from_merge_status(attributes.get("detailed_merge_status"))
            if approved is None:
                approved = mr.approvals.get().attributes.get("approved")
        pipeline = attributes.get("head_pipeline")
        draft = attributes.get("draft")
        return MergeRequestFacts(
            iid=attributes["iid"],
            state=attributes["state"],
            draft=bool(draft if draft is not None else attributes.get("work_in_progress")),
            target_branch=attributes["target_branch"],
            source_branch=attributes.get("source_branch"),
            sha=attributes.get("sha"),
            title=attributes.get("title") or "",
            web_url=attributes.get("web_url"),
            assignee_ids=[a["id"] for a in attributes.get("assignees") or []],
            labels=list(attributes.get("labels") or []),
            detailed_merge_status=attributes.get("detailed_merge_status"),
            blocking_discussions_resolved=attributes.get("blocking_discussions_resolved"),
            has_conflicts=bool(attributes.get("has_conflicts")),
            head_pipeline_status=pipeline.get("status") if isinstance(pipeline, dict) else None,
            head_pipeline_finished_at=_finished_at(pipeline),
            approved=approved,
        )

    def apply_transition(
        self,
        project_id: int,
        iid: int,
        transition: Transition,
        *,
        key: str,
        may_exist: bool = False,
    ) -> None:
        what = f"!{iid} of project {project_id}"
        mrs = self._merge_requests(project_id)
        with _translated(what):
            if transition.comment:
                self._post_note_once(mrs.get(iid, lazy=True), transition.comment, key, may_exist)
            # Adding and removing labels sets them to the same end however often it is
            # sent: python-gitlab may retry it as it likes.
            labels: dict[str, str] = {}
            if transition.add_label:
                labels["add_labels"] = transition.add_label
            if transition.remove_labels:
                labels["remove_labels"] = ",".join(transition.remove_labels)
            # One update with GitLab's own add/remove, so labels set by people or other
            # bots in the meantime survive (a read-modify-write of ``labels`` would not).
            if labels:
                mrs.update(iid, labels)

    def _post_note_once(self, mr: Any, body: str, key: str, may_exist: bool) -> None:
        """A note is the one write GitLab would repeat if asked twice, so it is posted
        without python-gitlab's blind retries: after an unanswered try, the MR's newest
        notes are searched for the marker before trying again."""
        marker = notice_marker(key)
        if may_exist and self._has_note(mr, marker):
            return
        marked = f"{body}\n\n{marker}"
        for attempt in range(NOTE_POST_TRIES):
            try:
                mr.notes.create({"body": marked}, retry_transient_errors=False)
                return
            except (GitlabError, requests.RequestException) as error:
                if not _ambiguous(error) or attempt == NOTE_POST_TRIES - 1:
                    raise
                self._meter.record(Metric.GITLAB_API_RETRIES)
            time.sleep(min(NOTE_RETRY_SECONDS * 2**attempt, NOTE_RETRY_CAP_SECONDS))
            if self._has_note(mr, marker):
                return

    def _has_note(self, mr: Any, marker: str) -> bool:
        newest = mr.notes.list(
            order_by="created_at", sort="desc", per_page=MARKER_SEARCH_NOTES, get_all=False
        )
        return any(marker in (note.body or "") for note in newest)

    def rebase(self, project_id: int, iid: int, skip_ci: bool) -> None:
        with _translated(f"rebase of !{iid} in project {project_id}"):
            self._merge_requests(project_id).get(iid, lazy=True).rebase(skip_ci=skip_ci)

    def rebase_status(self, project_id: int, iid: int) -> tuple[bool, str | None]:
        with _translated(f"!{iid} of project {project_id}"):
            mr = self._merge_requests(project_id).get(iid, include_rebase_in_progress=True)
        attributes: dict[str, Any] = mr.attributes
        return bool(attributes.get("rebase_in_progress")), attributes.get("merge_error")

    def merge(
        self,
        project_id: int,
        iid: int,
        sha: str,
        *,
        squash: bool | None = None,
        message: str | None = None,
    ) -> str:
        what = f"merge of !{iid} in project {project_id}"
        options: dict[str, Any] = {"sha": sha}
        if squash is not None:
            options["squash"] = squash
            if squash and message:
                options["squash_commit_message"] = message
        mr = self._merge_requests(project_id).get(iid, lazy=True)
        try:
            merged = mr.merge(merge_commit_message=message, **options)
        except (GitlabError, requests.RequestException) as error:
            # A merge whose answer was lost (python-gitlab's retry of it then meets "not
            # open") did happen: it is the merge asked for if the MR merged at ``sha``.
            already = self._merged_at(project_id, iid, sha)
            if already is not None:
                return already
            if not isinstance(error, GitlabError):
                raise _no_answer(error, what) from error
            if error.response_code == 409:
                raise ConflictError(
                    f"{what}: the merge request's head is no longer {sha}"
                ) from error
            if error.response_code in NOT_MERGEABLE_STATUSES:
                raise NotMergeableError(
                    error.response_code, f"{what}: {_gitlab_message(error)}"
                ) from error
            raise _translate(error, what) from error
        # Fast-forward records no merge commit: the target's head is then the squash
        # commit, or the MR's own head.
        landed = (
            merged.get("merge_commit_sha") or merged.get("squash_commit_sha") or merged.get("sha")
        )
        if not landed:
            raise GitLabRefused(None, f"{what}: GitLab did not say which commit landed")
        return str(landed)

    def _merged_at(self, project_id: int, iid: int, sha: str) -> str | None:
        try:
            attributes: dict[str, Any] = self._merge_requests(project_id).get(iid).attributes
        except (GitlabError, requests.RequestException):
            return None
        if attributes.get("state") != "merged" or attributes.get("sha") != sha:
            return None
        landed = (
            attributes.get("merge_commit_sha")
            or attributes.get("squash_commit_sha")
            or attributes.get("sha")
        )
        return str(landed) if landed else None

    def pipeline(self, project_id: int, pipeline_id: int) -> PipelineSnapshot:
        with _translated(f"pipeline {pipeline_id} of project {project_id}"):
            return pipeline_snapshot(self._project(project_id).pipelines.get(pipeline_id))

    def pipelines_for_sha(
        self, project_id: int, sha: str, ref: str | None = None
    ) -> list[PipelineSnapshot]:
        filters: dict[str, Any] = {"sha": sha, "order_by": "id", "sort": "desc"}
        if ref is not None:
            filters["ref"] = ref
        with _translated(f"pipelines of project {project_id}"):
            found = self._project(project_id).pipelines.list(iterator=True, **filters)
            return [pipeline_snapshot(p) for p in found]

    def create_pipeline(self, project_id: int, ref: str) -> PipelineSnapshot:
        # Not retried blindly: a second POST would start a second pipeline. A step retried
        # after an unanswered create lists the sha's pipelines first and finds it.
        with _translated(f"pipeline for {ref} in project {project_id}"):
            created = self._project(project_id).pipelines.create(
                {"ref": ref}, retry_transient_errors=False
            )
            return pipeline_snapshot(created)

    def cancel_pipeline(self, project_id: int, pipeline_id: int) -> None:
        with _translated(f"pipeline {pipeline_id} of project {project_id}"):
            self._project(project_id).pipelines.get(pipeline_id, lazy=True).cancel()

    def _find_open_merge_request(
        self, project_id: int, source_branch: str, target_branch: str
    ) -> Any:
        found = self._merge_requests(project_id).list(
            state="opened",
            source_branch=source_branch,
            target_branch=target_branch,
            order_by="created_at",
            sort="asc",
            per_page=1,
            get_all=False,
        )
        return found[0] if found else None

    def ensure_merge_request(
        self,
        project_id: int,
        source_branch: str,
        target_branch: str,
        *,
        title: str,
        description: str,
        labels: list[str],
    ) -> int:
        what = f"merge request {source_branch} -> {target_branch} in project {project_id}"
        mrs = self._merge_requests(project_id)
        with _translated(what):
            existing = self._find_open_merge_request(project_id, source_branch, target_branch)
            if existing is None:
                try:
                    created = mrs.create(
                        {
                            "source_branch": source_branch,
                            "target_branch": target_branch,
                            "title": title,
                            "description": description,
                            "labels": labels,
                        }
                    )
                    return int(created.iid)
                except GitlabError as error:
                    # Another run created it between our look and our create.
                    if error.response_code != 409:
                        raise
                existing = self._find_open_merge_request(project_id, source_branch, target_branch)
                if existing is None:
                    raise ConflictError(f"{what}: GitLab reports a duplicate it does not list")
            changes: dict[str, Any] = {}
            if existing.title != title:
                changes["title"] = title
            if (existing.description or "") != description:
                changes["description"] = description
            if sorted(existing.labels or []) != sorted(labels):
                changes["labels"] = labels
            # Every update is a webhook and an event for the dispatcher: send none for nothing.
            if changes:
                mrs.update(existing.iid, changes)
            return int(existing.iid)

    def close_merge_request(self, project_id: int, iid: int) -> None:
        with _translated(f"!{iid} of project {project_id}"):
            self._merge_requests(project_id).update(iid, {"state_event": "close"})

    def branch_sha(self, project_id: int, branch: str) -> str | None:
        try:
            found = self._project(project_id).branches.get(branch)
        except GitlabError as error:
            # GitLab says which of the two is missing; only a missing branch is an answer.
            if error.response_code == 404 and "branch" in _gitlab_message(error).lower():
                return None
            raise _translate(error, f"branch {branch} of project {project_id}") from error
        return str(found.commit["id"])

    def project_merge_method(self, project_id: int) -> str:
        with _translated(f"project {project_id}"):
            return str(self._gl.projects.get(project_id).merge_method)

    def project_http_url(self, project_id: int) -> str:
        with _translated(f"project {project_id}"):
            return str(self._gl.projects.get(project_id).http_url_to_repo)


BOT_TOKEN_CACHE_SECONDS = 300
# The version Secrets Manager's rotation writes the new token to before it becomes current.
PENDING_STAGE = "AWSPENDING"


class TokenSource(Protocol):
    """Where a gateway gets its token, and asks again when GitLab refuses it."""

    def current(self) -> str: ...

    def refreshed(self, refused: str) -> str | None:
        """A token other than ``refused`` that may work, read past any cache; None when
        there is none to try."""
        ...


class StaticToken:
    """One token, and nothing else to try when it is refused."""

    def __init__(self, token: str) -> None:
        self._token = token

    def current(self) -> str:
        return self._token

    def refreshed(self, refused: str) -> str | None:
        return None


@built_once
def _secrets() -> SecretsProvider:
    return SecretsProvider()


class SecretTokenSource:
    """The bot token in its Secrets Manager secret, cached as Powertools caches.

    A rotated or replaced token is read on the first 401 rather than when the cache expires.
    GitLab revokes a token the moment it is rotated, before the rotation function has made
    the new one current: meanwhile the new token is the secret's pending version, which is
    tried when the current one is still the refused one."""

    def __init__(self, secret_id: str) -> None:
        self.secret_id = secret_id

    def current(self) -> str:
        return str(_secrets().get(self.secret_id, max_age=BOT_TOKEN_CACHE_SECONDS))

    def refreshed(self, refused: str) -> str | None:
        # Cached as well, so the function's next gateways start with it.
        fresh = str(
            _secrets().get(self.secret_id, max_age=BOT_TOKEN_CACHE_SECONDS, force_fetch=True)
        )
        if fresh != refused:
            return fresh
        pending = self._pending()
        return pending if pending and pending != refused else None

    def _pending(self) -> str | None:
        # Past the provider, whose cache keys a value by the secret alone, not by its stage.
        try:
            value = _secrets().client.get_secret_value(
                SecretId=self.secret_id, VersionStage=PENDING_STAGE
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None
            raise
        pending = value.get("SecretString")
        return str(pending) if pending else None


class GitLabAccessTokens:
    """``AccessTokens`` with python-gitlab: each call speaks with the token it is about."""

    def __init__(self, url: str, *, timeout: float = 10.0, meter: Meter | None = None) -> None:
        self._url = url
        self._timeout = timeout
        self._meter = meter or NullMeter()

    def _client(self, token: str) -> gitlab.Gitlab:
        return _MeteredGitlab(
            self._url,
            private_token=token,
            timeout=self._timeout,
            retry_transient_errors=True,
            adapter=_CountingAdapter(self._meter),
        )

    def inspect(self, token: str) -> TokenDetails | None:
        try:
            found = self._client(token).personal_access_tokens.get("self")
        except GitlabAuthenticationError:
            return None
        except GitlabError as error:
            raise _translate(error, "the bot token's details") from error
        attributes: dict[str, Any] = found.attributes
        expires_at = attributes.get("expires_at")
        return TokenDetails(
            id=int(attributes["id"]),
            user_id=int(attributes["user_id"]),
            active=bool(attributes.get("active")) and not attributes.get("revoked"),
            expires_at=date.fromisoformat(expires_at) if expires_at else None,
        )

    def rotate(self, token: str, expires_at: date) -> str:
        with _translated("rotating the bot token"):
            # Never retried: had GitLab rotated and its answer been lost, a second try would
            # rotate a revoked token, which revokes every token of its family.
            rotated = self._client(token).personal_access_tokens.rotate(
                "self", expires_at=expires_at.isoformat(), retry_transient_errors=False
            )
        new = rotated.get("token")
        if not new:
            raise GitLabRefused(None, "rotating the bot token: GitLab returned no token")
        return str(new)


def bot_token_source(settings: Settings | None = None) -> SecretTokenSource:
    settings = settings or get_settings()
    # A name or an ARN: the stack's BotTokenSecretArn parameter may name a secret of its own.
    return SecretTokenSource(settings.bot_token_secret or settings.names.bot_token_secret)


def bot_token(settings: Settings | None = None) -> str:
    """The bot's GitLab token from its secret (cached as Powertools caches)."""
    return bot_token_source(settings).current()


def gateway_from_settings(
    settings: Settings | None = None, *, meter: Meter | None = None
) -> PythonGitLabGateway:
    settings = settings or get_settings()
    return PythonGitLabGateway(settings.gitlab_url, bot_token_source(settings), meter=meter)


def clear_gateway_cache() -> None:
    _secrets.cache_clear()


register_cache(clear_gateway_cache)


def _finished_at(pipeline: object) -> datetime | None:
    """GitLab's ISO 8601 ``finished_at`` of a pipeline object; None when it has not
    finished or the value is not one GitLab would send."""
    value = pipeline.get("finished_at") if isinstance(pipeline, dict) else None
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
