"""Simulated CI: a pipeline's outcome is a pure function of the tested tree and the project's
rules (plus optional seeded flakiness), and a scheduler moves pipelines through
created → pending → running → success|failed|canceled on a scaled clock."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from local.gitlab_sim import gitops
from local.gitlab_sim.models import Job, Pipeline, PipelineRules, Project, User
from local.gitlab_sim.store import Event, Store, now_iso

FINISHED = frozenset({"success", "failed", "canceled", "skipped"})


@dataclass(frozen=True)
class Verdict:
    status: str
    reason: str


def tree_outcome(paths: set[str], rules: PipelineRules, rng: random.Random | None) -> Verdict:
    """The documented outcome rule (README.md, "Pipeline outcome"), in order: a failing path,
    then a semantic-conflict pair, then seeded flakiness."""
    for listed in rules.fail_paths:
        fail = listed.strip("/")
        if fail in paths or any(p.startswith(fail + "/") for p in paths):
            return Verdict("failed", f"tree contains {fail}")
    for first, second in rules.conflict_pairs:
        if first in paths and second in paths:
            return Verdict("failed", f"semantic conflict between {first} and {second}")
    if rules.flaky_rate > 0 and rng is not None and rng.random() < rules.flaky_rate:
        return Verdict("failed", "flaky failure")
    return Verdict("success", "")


@dataclass
class PipelineService:
    store: Store
    _rngs: dict[int, random.Random] = field(default_factory=dict)

    def _rng(self, project: Project) -> random.Random:
        # One seeded stream per project: the same scenario replays the same flakes.
        rng = self._rngs.get(project.id)
        if rng is None:
            rng = random.Random(project.rules.seed * 1_000_003 + project.id)  # noqa: S311
            self._rngs[project.id] = rng
        return rng

    def reseed(self, project: Project) -> None:
        with self.store.lock:
            self._rngs.pop(project.id, None)

    def create(
        self,
        project: Project,
        sha: str,
        ref: str,
        source: str,
        user: User,
        *,
        mr_iid: int | None = None,
        variables: Sequence[tuple[str, str]] = (),
        skipped: bool = False,
    ) -> Pipeline:
        """A new pipeline for ``sha``. ``skipped``: created and at once ``skipped``, with no
        jobs, as GitLab records a push with ``ci.skip`` (or ``[ci skip]`` in its message)."""
        store = self.store
        with store.lock:
            paths = gitops.tree_paths(store.repo(project.id), sha)
            verdict = tree_outcome(paths, project.rules, self._rng(project))
            now, created = store.monotonic(), now_iso()
            pending_at = now + store.real_seconds(min(1.0, project.rules.pending_s))
            running_at = now + store.real_seconds(project.rules.pending_s)
            pipeline = Pipeline(
                id=store.next_id("pipeline"),
                iid=project.next_pipeline_iid,
                project_id=project.id,
                sha=sha,
                ref=ref,
                source=source,
                user_id=user.id,
                created_at=created,
                updated_at=created,
                outcome=verdict.status,
                failure_reason=verdict.reason,
                mr_iid=mr_iid,
                pending_at=pending_at,
                running_at=max(running_at, pending_at),
                finish_at=max(running_at, pending_at)
                + store.real_seconds(project.rules.duration_s),
                variables=list(variables),
            )
            project.next_pipeline_iid += 1
            if skipped:
                store.pipelines[pipeline.id] = pipeline
                self._set_status(pipeline, "skipped")
                return pipeline
            pipeline.jobs = [
                Job(store.next_id("job"), "build", "build", "created", created),
                Job(store.next_id("job"), "test", "test", "created", created),
            ]
            store.pipelines[pipeline.id] = pipeline
            return pipeline

    def cancel(self, pipeline: Pipeline) -> None:
        with self.store.lock:
            if pipeline.status in FINISHED:
                return
            self._set_status(pipeline, "canceled")

    def retry(self, pipeline: Pipeline) -> None:
        """Reruns a finished pipeline in place, as GitLab's retry does (same id, same sha)."""
        store = self.store
        with store.lock:
            if pipeline.status not in ("failed", "canceled"):
                return
            project = store.projects[pipeline.project_id]
            paths = gitops.tree_paths(store.repo(project.id), pipeline.sha)
            verdict = tree_outcome(paths, project.rules, self._rng(project))
            now = store.monotonic()
            pipeline.outcome, pipeline.failure_reason = verdict.status, verdict.reason
            pipeline.pending_at = now
            pipeline.running_at = now + store.real_seconds(project.rules.pending_s)
            pipeline.finish_at = pipeline.running_at + store.real_seconds(project.rules.duration_s)
            pipeline.finished_at = None
            for job in pipeline.jobs:
                job.status, job.finished_at = "created", None
            self._set_status(pipeline, "pending")

    def tick(self) -> None:
        """Moves every due pipeline on by as many states as its schedule allows."""
        store = self.store
        with store.lock:
            now = store.monotonic()
            for pipeline in list(store.pipelines.values()):
                if pipeline.status in FINISHED:
                    continue
                if pipeline.status == "created" and now >= pipeline.pending_at:
                    self._set_status(pipeline, "pending")
                if pipeline.status == "pending" and now >= pipeline.running_at:
                    self._set_status(pipeline, "running")
                if pipeline.status == "running" and now >= pipeline.finish_at:
                    self._set_status(pipeline, pipeline.outcome)

    def _set_status(self, pipeline: Pipeline, status: str) -> None:
        stamp = now_iso()
        pipeline.status = status
        pipeline.updated_at = stamp
        if status == "running":
            pipeline.started_at = stamp
            for job in pipeline.jobs:
                job.status, job.started_at = "running", stamp
        elif status in FINISHED:
            pipeline.finished_at = stamp
            pipeline.started_at = pipeline.started_at or stamp
            for job in pipeline.jobs:
                # A failed pipeline is its test job failing after a green build.
                if status == "failed":
                    job.status = "failed" if job.name == "test" else "success"
                else:
                    job.status = status
                job.finished_at = stamp
        elif status == "pending":
            for job in pipeline.jobs:
                job.status = "pending"
        self.store.emit(
            Event(
                pipeline.project_id,
                "pipeline_events",
                "Pipeline Hook",
                {"pipeline_id": pipeline.id},
            )
        )

    def for_merge_request(self, project_id: int, iid: int) -> list[Pipeline]:
        """GitLab's MR pipelines: MR pipelines of this MR, and branch pipelines of its heads."""
        store = self.store
        with store.lock:
            mr = store.merge_request(project_id, iid)
            heads = set(mr.sha_history)
            found = [
                p
                for p in store.pipelines.values()
                if p.project_id == project_id
                and (p.mr_iid == iid or (p.ref == mr.source_branch and p.sha in heads))
            ]
            return sorted(found, key=lambda p: p.id, reverse=True)

    def head_pipeline(self, project_id: int, iid: int) -> Pipeline | None:
        with self.store.lock:
            mr = self.store.merge_request(project_id, iid)
            for pipeline in self.for_merge_request(project_id, iid):
                if pipeline.sha == mr.sha:
                    return pipeline
            return None
