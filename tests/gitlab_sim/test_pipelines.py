"""The documented CI outcome rule and the pipeline clock."""

from __future__ import annotations

import random

import gitlab

from local.gitlab_sim import GitLabSimulator
from local.gitlab_sim.models import PipelineRules
from local.gitlab_sim.pipelines import tree_outcome


def test_outcome_rule() -> None:
    rules = PipelineRules(fail_paths=["ci/fail", "broken"], conflict_pairs=[("a.py", "b.py")])
    assert tree_outcome({"src/x.py"}, rules, None).status == "success"
    assert tree_outcome({"ci/fail"}, rules, None).status == "failed"
    assert tree_outcome({"broken/deep/file"}, rules, None).status == "failed"
    assert tree_outcome({"brokenish"}, rules, None).status == "success"
    assert tree_outcome({"a.py"}, rules, None).status == "success"
    assert tree_outcome({"b.py"}, rules, None).status == "success"
    verdict = tree_outcome({"a.py", "b.py"}, rules, None)
    assert verdict.status == "failed"
    assert "semantic conflict" in verdict.reason


def test_flakiness_is_seeded() -> None:
    rules = PipelineRules(flaky_rate=0.5, seed=7)

    def run() -> list[str]:
        rng = random.Random(7)
        return [tree_outcome({"x"}, rules, rng).status for _ in range(40)]

    first = run()
    assert first == run()
    assert "failed" in first
    assert "success" in first


def test_semantic_conflict_fails_only_together(sim: GitLabSimulator, gl: gitlab.Gitlab) -> None:
    project = sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
    sim.set_pipeline_rules(project, conflict_pairs=[("left.txt", "right.txt")])
    left = sim.create_merge_request(project, "left", "Left", {"left.txt": "l\n"})
    right = sim.create_merge_request(project, "right", "Right", {"right.txt": "r\n"})
    assert sim.wait_idle()
    api = gl.projects.get("g/app")
    for iid in (left, right):
        assert api.mergerequests.get(iid).head_pipeline["status"] == "success"
    api.mergerequests.get(left).merge()
    assert sim.wait_idle()
    main_pipeline = api.pipelines.list(ref="main")[0]
    assert main_pipeline.status == "success"
    api.mergerequests.get(right).merge()
    assert sim.wait_idle()
    assert api.pipelines.list(ref="main")[0].status == "failed"


def test_pipeline_walks_through_its_states(sim: GitLabSimulator, gl: gitlab.Gitlab) -> None:
    project = sim.create_project("app", namespace="g", files={"a.txt": "a\n"})
    sim.set_pipeline_rules(project, pending_s=100, duration_s=200)
    pipeline = gl.projects.get("g/app").pipelines.create({"ref": "main"})
    seen = set()
    for _ in range(200):
        status = gl.projects.get("g/app").pipelines.get(pipeline.id).status
        seen.add(status)
        if status == "success":
            break
        sim.tick()
    assert {"pending", "running", "success"} <= seen
