/** Complete API objects for the shell's tests, with only what a test cares about given. */
import type { AuditEntry, Batch, MergeRequest, MergeRequestView, ProjectView } from "../api/client";

export function mergeRequest(iid: number, extra: Partial<MergeRequest> = {}): MergeRequest {
  return {
    project_id: 1,
    iid,
    title: `Change ${iid}`,
    sha: "abcdef1234567890",
    source_branch: `feature-${iid}`,
    target_branch: "main",
    status: "queued",
    priority: 0,
    hotfix: false,
    draft: false,
    bot_assigned: false,
    rebasing: false,
    strikes: 0,
    version: 1,
    reasons: [],
    labels: [],
    web_url: `https://gitlab.test/demo/shop/-/merge_requests/${iid}`,
    ready_since: new Date(Date.now() - 20 * 60_000).toISOString(),
    updated_at: new Date().toISOString(),
    ...extra,
  };
}

export function view(mr: MergeRequest, position: number | null = null): MergeRequestView {
  return { merge_request: mr, position };
}

export function batch(id: string, extra: Partial<Batch> = {}): Batch {
  return {
    id,
    project_id: 1,
    target_branch: "main",
    state: "testing",
    strategy: "batch",
    landing: "push",
    skip_target_pipeline: false,
    merge_requests: [],
    landed: [],
    rejected: [],
    requeued: [],
    dropped: [],
    steps: [],
    land_length: 0,
    rebuilds: 0,
    retries_left: 0,
    retrying: false,
    version: 1,
    created_at: new Date(Date.now() - 5 * 60_000).toISOString(),
    updated_at: new Date().toISOString(),
    ...extra,
  };
}

/** `running` is each branch's head car; `cars` every car per branch, head first (by default
 * just the head car, as for the serial and batch strategies). */
export function projectView(
  extra: Partial<ProjectView["config"]> = {},
  running: Record<string, string> = {},
  cars: Record<string, string[]> = Object.fromEntries(Object.entries(running).map(([branch, id]) => [branch, [id]])),
): ProjectView {
  return {
    config: {
      project_id: 1,
      path: "demo/shop",
      target_branches: ["main"],
      batch_size: 5,
      batch_size_max: 8,
      train_depth: 2,
      ci_timeout_minutes: 60,
      flaky_retries: 0,
      bisect_ways: 3,
      landing: "push",
      skip_target_pipeline: false,
      strategy: "batch",
      paused: false,
      version: 1,
      ...extra,
    },
    roles: [],
    counts: {},
    running_batches: running,
    running_cars: cars,
  };
}

export function auditEntry(id: string, extra: Partial<AuditEntry> = {}): AuditEntry {
  return {
    id,
    project_id: 1,
    at: new Date().toISOString(),
    actor: "merge-assist",
    action: "status_changed",
    summary: `Entry ${id}`,
    merge_request: 7,
    ...extra,
  };
}
