/** One batch: who is in it, what became of each, and every step of its run with the
 * pipelines that decided it. */
import { useCallback, useId } from "react";
import { Link, useParams, useSearchParams } from "react-router-dom";
import { unwrap, type Batch, type BatchStep, type MergeRequest } from "../api/client";
import { useApi, useLive } from "../app/context";
import { mergeRequestPath } from "../components/MergeRequestItem";
import { RelativeTime } from "../components/RelativeTime";
import { BatchStateBadge, isRunning } from "../components/StatusBadge";
import { EmptyState, ErrorState, Loading } from "../components/states";
import { useDocumentTitle } from "../components/useDocumentTitle";
import { useQuery } from "../hooks/useQuery";
import { batchPath, outcomeOf } from "./BoardPage";
import "./BatchPage.css";

const STEP_LABELS: Record<BatchStep["kind"], string> = {
  selected: "Selected",
  built: "Built",
  rebased: "Rebased",
  tested: "Tested",
  retried: "Retried",
  bisected: "Bisected",
  rejected: "Rejected",
  dropped: "Dropped",
  rebuilt: "Rebuilt",
  landed: "Landed",
  released: "Released",
};

const STRATEGY_LABELS: Record<Batch["strategy"], string> = {
  batch: "Batch",
  serial: "Serial",
  train: "Train",
};

const OUTCOME_TEXT: Record<string, string> = {
  landed: "landed",
  rejected: "rejected",
  requeued: "requeued",
  dropped: "dropped",
};

function stepTone(step: BatchStep): string {
  const status = (step.status ?? "").toLowerCase();
  if (["success", "passed", "green", "landed"].includes(status) || step.kind === "landed") return "ok";
  if (["failed", "red", "canceled", "cancelled", "timeout"].includes(status) || step.kind === "rejected") return "bad";
  if (["running", "pending", "created"].includes(status)) return "warn";
  return "muted";
}

export function BatchPage() {
  const params = useParams();
  const projectId = Number(params.projectId);
  const batchId = params.batchId ?? "";
  const [searchParams] = useSearchParams();
  const target = searchParams.get("target");
  const search = target ? `?target=${encodeURIComponent(target)}` : "";
  const api = useApi();
  const membersHeading = useId();
  const stepsHeading = useId();
  const bisectionHeading = useId();

  const batch = useQuery<Batch>(
    async () => unwrap(await api.GET("/api/v1/batches/{batch_id}", { params: { path: { batch_id: batchId } } })),
    [api, batchId],
  );
  // Titles for the members; the batch itself only knows their iids.
  const loadTitles = useCallback(async () => {
    const list = unwrap(
      await api.GET("/api/v1/projects/{project_id}/mrs", { params: { path: { project_id: projectId } } }),
    );
    return new Map(list.items.map((item) => [item.merge_request.iid, item.merge_request]));
  }, [api, projectId]);
  const members = useQuery<Map<number, MergeRequest>>(loadTitles, [loadTitles]);

  useLive(projectId, (message) => {
    if (message.type === "batch" && message.data.id === batchId) {
      const next = message.data;
      batch.setData((current) => (current && next.version < current.version ? current : next));
    } else if (message.type === "merge_request") {
      const mr = message.data;
      members.setData((current) => (current ? new Map(current).set(mr.iid, mr) : current));
    }
  });

  useDocumentTitle(batch.data ? `Batch on ${batch.data.target_branch}` : "Batch");

  const crumbs = (
    <nav aria-label="Breadcrumbs" className="breadcrumbs">
      <Link to={`/projects/${projectId}${search}`}>Queue</Link> › Batch
    </nav>
  );

  if (batch.error && !batch.data) {
    return (
      <div className="page">
        {crumbs}
        <h1>Batch</h1>
        <ErrorState error={batch.error} onRetry={batch.reload} title="This batch could not be loaded" />
      </div>
    );
  }
  if (!batch.data) {
    return (
      <div className="page">
        {crumbs}
        <h1>Batch</h1>
        <Loading what="the batch" />
      </div>
    );
  }

  const data = batch.data;
  const running = isRunning(data.state);
  const steps = [...(data.steps ?? [])].sort((a, b) => (a.at ?? "").localeCompare(b.at ?? ""));
  const titleOf = (iid: number) => members.data?.get(iid)?.title;

  return (
    <div className="page batch-page">
      {crumbs}
      <div className="batch-header">
        <BatchStateBadge state={data.state} />
        <h1>Batch on {data.target_branch}</h1>
        <p className="muted mono batch-id">{data.id}</p>
      </div>

      <div className="card card-body">
        <dl className="facts">
          <div>
            <dt>Target branch</dt>
            <dd className="mono">{data.target_branch}</dd>
          </div>
          <div>
            <dt>Strategy</dt>
            <dd>{STRATEGY_LABELS[data.strategy] ?? data.strategy}</dd>
          </div>
          <div>
            <dt>Landing</dt>
            <dd>{data.landing === "push" ? "Push the tested commit" : "Merge each MR"}</dd>
          </div>
          <div>
            <dt>Created</dt>
            <dd>
              <RelativeTime value={data.created_at} />
            </dd>
          </div>
          <div>
            <dt>Last change</dt>
            <dd>
              <RelativeTime value={data.updated_at} />
            </dd>
          </div>
          {data.sizing && (
            <div>
              <dt>Size</dt>
              <dd>
                {data.sizing.size} MRs, sized automatically for a failure rate of{" "}
                {(data.sizing.failure_rate * 100).toFixed(1)}% per MR
                {data.sizing.batches > 0
                  ? ` (seen over the last ${data.sizing.batches} batches)`
                  : " (the starting estimate: no batches seen yet)"}
              </dd>
            </div>
          )}
          {data.ahead_id && (
            <div>
              <dt>Built on</dt>
              <dd>
                <Link className="mono" to={batchPath(projectId, data.ahead_id, search)}>
                  {data.ahead_id}
                </Link>
                {data.target_sha && (
                  <>
                    {" "}
                    at <span className="mono">{data.target_sha.slice(0, 12)}</span>
                  </>
                )}
              </dd>
            </div>
          )}
          {data.batch_merge_request != null && (
            <div>
              <dt>Batch merge request</dt>
              <dd>!{data.batch_merge_request}</dd>
            </div>
          )}
          {data.sha && (
            <div>
              <dt>Batch commit</dt>
              <dd className="mono">{data.sha.slice(0, 12)}</dd>
            </div>
          )}
          {(data.retries_left > 0 || data.retrying) && (
            <div>
              <dt>Flaky retries left</dt>
              <dd>
                {data.retries_left}
                {data.retrying && " (retrying now)"}
              </dd>
            </div>
          )}
        </dl>
        {(data.pipeline_url || data.green_pipeline_url || data.red_pipeline_url) && (
          <p className="batch-links">
            {data.pipeline_url && (
              <a className="button" href={data.pipeline_url} target="_blank" rel="noreferrer">
                {running ? "Current pipeline" : "Last pipeline"}
              </a>
            )}
            {data.green_pipeline_url && (
              <a className="button batch-link-green" href={data.green_pipeline_url} target="_blank" rel="noreferrer">
                Green pipeline
              </a>
            )}
            {data.red_pipeline_url && (
              <a className="button batch-link-red" href={data.red_pipeline_url} target="_blank" rel="noreferrer">
                Red pipeline
              </a>
            )}
          </p>
        )}
      </div>

      <section className="card" aria-labelledby={membersHeading}>
        <div className="card-header">
          <h2 id={membersHeading}>Merge requests</h2>
          <span className="muted">in batch order</span>
        </div>
        {data.merge_requests.length === 0 ? (
          <EmptyState title="No merge requests in this batch" />
        ) : (
          <ol className="batch-members">
            {data.merge_requests.map((iid, index) => {
              const outcome = outcomeOf(data, iid);
              const title = titleOf(iid);
              return (
                <li key={iid} className="batch-member">
                  <span className="batch-member-index" aria-hidden="true">
                    {index + 1}
                  </span>
                  <div className="batch-member-body">
                    <Link className="mr-link" to={mergeRequestPath(projectId, iid, search)}>
                      <span className="mr-iid">!{iid}</span>
                      {title ? ` ${title}` : ""}
                    </Link>
                    <span className={`badge badge-outcome badge-outcome-${outcome ?? "pending"}`}>
                      {outcome ? OUTCOME_TEXT[outcome] : running ? "in progress" : "no outcome"}
                    </span>
                  </div>
                </li>
              );
            })}
          </ol>
        )}
      </section>

      {data.bisection && (
        <section className="card" aria-labelledby={bisectionHeading}>
          <div className="card-header">
            <h2 id={bisectionHeading}>Bisection</h2>
          </div>
          <Bisection bisection={data.bisection} projectId={projectId} search={search} />
        </section>
      )}

      <section className="card" aria-labelledby={stepsHeading}>
        <div className="card-header">
          <h2 id={stepsHeading}>Steps</h2>
        </div>
        {steps.length === 0 ? (
          <EmptyState title="No steps yet">The batch records each step as it happens.</EmptyState>
        ) : (
          <ol className="timeline">
            {steps.map((step, index) => (
              <li key={`${step.at ?? ""}-${step.kind}-${index}`} className={`timeline-entry tone-${stepTone(step)}`}>
                <span className="timeline-dot" aria-hidden="true" />
                <div className="timeline-body">
                  <div className="step-head">
                    <strong>{STEP_LABELS[step.kind] ?? step.kind}</strong>
                    {step.status && <span className={`badge badge-${stepTone(step)}`}>{step.status}</span>}
                    <RelativeTime value={step.at} />
                  </div>
                  {(step.merge_requests?.length ?? 0) > 0 && (
                    <p className="step-mrs">
                      {step.merge_requests?.map((iid) => (
                        <Link key={iid} to={mergeRequestPath(projectId, iid, search)}>
                          !{iid}
                        </Link>
                      ))}
                    </p>
                  )}
                  {step.note && <p className="timeline-summary">{step.note}</p>}
                  <p className="step-refs">
                    {step.pipeline_id != null &&
                      (step.pipeline_url ? (
                        <a href={step.pipeline_url} target="_blank" rel="noreferrer">
                          Pipeline #{step.pipeline_id}
                        </a>
                      ) : (
                        <span>Pipeline #{step.pipeline_id}</span>
                      ))}
                    {step.sha && <span className="mono muted">{step.sha.slice(0, 12)}</span>}
                  </p>
                </div>
              </li>
            ))}
          </ol>
        )}
      </section>
    </div>
  );
}

/** The members as a row: the green prefix, the suspects, and those after the red prefix. */
function Bisection({
  bisection,
  projectId,
  search,
}: {
  bisection: NonNullable<Batch["bisection"]>;
  projectId: number;
  search: string;
}) {
  const { members, good, bad } = bisection;
  const found = bad - good === 1;
  const culprit = found ? members[bad - 1] : undefined;
  // The round's prefixes still awaited; their pipelines run at once.
  const pending = (bisection.round ?? []).filter((length) => good < length && length < bad);
  return (
    <div className="card-body bisection">
      <p className="bisection-summary">
        {found && culprit !== undefined ? (
          <>
            The culprit is <strong>!{culprit}</strong>: the first {good} passed without it, the first {bad} failed with
            it.
          </>
        ) : (
          <>
            The first {good} of {members.length} passed (green prefix); the first {bad} failed (red prefix). The culprit
            is among the {bad - good} in between.
            {pending.length > 0 &&
              ` Testing the first ${pending.join(" and the first ")}${pending.length > 1 ? " at once" : ""}.`}
          </>
        )}
      </p>
      <ol className="bisection-row">
        {members.map((iid, index) => {
          const kind = index < good ? "good" : index < bad ? (iid === culprit ? "culprit" : "suspect") : "after";
          const label = { good: "passed", suspect: "suspect", culprit: "culprit", after: "after the red prefix" }[kind];
          return (
            <li key={iid} className={`bisection-cell bisection-${kind}`}>
              <Link to={mergeRequestPath(projectId, iid, search)}>!{iid}</Link>
              <span className="bisection-label">{label}</span>
            </li>
          );
        })}
      </ol>
    </div>
  );
}
