/** One merge request: where it stands, why, and everything that happened to it. */
import { useCallback, useEffect, useId, useRef, useState } from "react";
import { Link, useParams, useSearchParams } from "react-router-dom";
import { unwrap, type AuditEntry, type MergeRequestView } from "../api/client";
import { useApi, useLive } from "../app/context";
import { Reasons } from "../components/Reasons";
import { Elapsed, RelativeTime } from "../components/RelativeTime";
import { HotfixBadge, StatusBadge } from "../components/StatusBadge";
import { EmptyState, ErrorState, Loading, describeError } from "../components/states";
import { useDocumentTitle } from "../components/useDocumentTitle";
import { useQuery } from "../hooks/useQuery";
import { batchPath } from "./BoardPage";
import "./MergeRequestPage.css";

const PAGE_SIZE = 50;

const ACTION_LABELS: Record<AuditEntry["action"], string> = {
  project_connected: "Project connected",
  project_disconnected: "Project disconnected",
  config_changed: "Config changed",
  priority_changed: "Priority changed",
  hotfix: "Hotfix",
  grant_changed: "Access changed",
  status_changed: "Status changed",
  batch_step: "Batch",
};

interface Timeline {
  items: AuditEntry[];
  nextCursor: string | null;
}

function mergeEntries(newer: AuditEntry[], older: AuditEntry[]): AuditEntry[] {
  const seen = new Set<string>();
  const result: AuditEntry[] = [];
  for (const entry of [...newer, ...older]) {
    if (seen.has(entry.id)) continue;
    seen.add(entry.id);
    result.push(entry);
  }
  return result.sort((a, b) => b.at.localeCompare(a.at));
}

export function MergeRequestPage() {
  const params = useParams();
  const projectId = Number(params.projectId);
  const iid = Number(params.iid);
  const [searchParams] = useSearchParams();
  const target = searchParams.get("target");
  const search = target ? `?target=${encodeURIComponent(target)}` : "";
  const api = useApi();
  const timelineHeading = useId();
  const reasonsHeading = useId();

  const loadView = useCallback(
    async () =>
      unwrap(
        await api.GET("/api/v1/projects/{project_id}/mrs/{iid}", {
          params: { path: { project_id: projectId, iid } },
        }),
      ),
    [api, projectId, iid],
  );
  const view = useQuery<MergeRequestView>(loadView, [loadView]);

  const loadEvents = useCallback(
    async (cursor: string | null) =>
      unwrap(
        await api.GET("/api/v1/projects/{project_id}/events", {
          params: {
            path: { project_id: projectId },
            query: { merge_request: iid, limit: PAGE_SIZE, ...(cursor ? { cursor } : {}) },
          },
        }),
      ),
    [api, projectId, iid],
  );
  const timeline = useQuery<Timeline>(async () => {
    const page = await loadEvents(null);
    return { items: page.items, nextCursor: page.next_cursor ?? null };
  }, [loadEvents]);
  const [olderLoading, setOlderLoading] = useState(false);
  const [olderError, setOlderError] = useState<unknown>(null);

  const loadOlder = async () => {
    const cursor = timeline.data?.nextCursor;
    if (!cursor) return;
    setOlderLoading(true);
    setOlderError(null);
    try {
      const page = await loadEvents(cursor);
      timeline.setData((current) => ({
        items: mergeEntries(current?.items ?? [], page.items),
        nextCursor: page.next_cursor ?? null,
      }));
    } catch (error) {
      setOlderError(error);
    } finally {
      setOlderLoading(false);
    }
  };

  // The place in line is the server's to work out; re-read it when the MR changes in line.
  const positionTimer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => () => clearTimeout(positionTimer.current), []);
  useLive(projectId, (message) => {
    if (message.type === "merge_request" && message.data.iid === iid) {
      const mr = message.data;
      view.setData((current) =>
        current && mr.version < current.merge_request.version
          ? current
          : { merge_request: mr, position: mr.status === "queued" ? (current?.position ?? null) : null },
      );
      if (mr.status === "queued") {
        clearTimeout(positionTimer.current);
        positionTimer.current = setTimeout(() => {
          loadView().then((fresh) => view.setData(() => fresh), () => undefined);
        }, 300);
      }
    } else if (message.type === "event" && message.data.merge_request === iid) {
      const entry = message.data;
      timeline.setData((current) => ({
        items: mergeEntries([entry], current?.items ?? []),
        nextCursor: current?.nextCursor ?? null,
      }));
    }
  });

  useDocumentTitle(view.data ? `!${iid} ${view.data.merge_request.title}` : `!${iid}`);

  const crumbs = (
    <nav aria-label="Breadcrumbs" className="breadcrumbs">
      <Link to={`/projects/${projectId}${search}`}>Queue</Link> › !{iid}
    </nav>
  );

  if (view.error && !view.data) {
    return (
      <div className="page">
        {crumbs}
        <h1>!{iid}</h1>
        <ErrorState error={view.error} onRetry={view.reload} title="This merge request could not be loaded" />
      </div>
    );
  }
  if (!view.data) {
    return (
      <div className="page">
        {crumbs}
        <Loading what={`!${iid}`} />
      </div>
    );
  }

  const mr = view.data.merge_request;
  const position = view.data.position;
  const reasons = mr.reasons ?? [];

  return (
    <div className="page mr-page">
      {crumbs}
      <div className="mr-page-header">
        <div className="mr-page-badges">
          <StatusBadge status={mr.status} />
          {mr.hotfix && <HotfixBadge />}
          {mr.draft && <span className="badge badge-muted">Draft</span>}
        </div>
        <h1>
          !{mr.iid} {mr.title || mr.source_branch}
        </h1>
        <p className="mr-page-branches mono">
          <span title="Source branch">{mr.source_branch}</span>
          <span aria-hidden="true"> → </span>
          <span className="visually-hidden"> into </span>
          <span title="Target branch">{mr.target_branch}</span>
        </p>
        <div className="mr-page-actions">
          {mr.web_url && (
            <a className="button" href={mr.web_url} target="_blank" rel="noreferrer">
              Open in GitLab
            </a>
          )}
          {mr.batch_id && (
            <Link className="button" to={batchPath(projectId, mr.batch_id, search)}>
              View batch
            </Link>
          )}
        </div>
      </div>

      {reasons.length > 0 && (
        <section className={`card mr-reasons mr-reasons-${mr.status}`} aria-labelledby={reasonsHeading}>
          <div className="card-header">
            <h2 id={reasonsHeading}>{mr.status === "rejected" ? "Why it was rejected" : "Why it is not ready"}</h2>
          </div>
          <div className="card-body">
            <Reasons reasons={reasons} tone={mr.status === "rejected" ? "bad" : "muted"} />
          </div>
        </section>
      )}

      <div className="card card-body">
        <dl className="facts">
          {mr.status === "queued" && (
            <div>
              <dt>Position in line</dt>
              <dd>{position ? `#${position} on ${mr.target_branch}` : "Being worked out"}</dd>
            </div>
          )}
          <div>
            <dt>Priority</dt>
            <dd>
              {mr.hotfix ? "Hotfix: ahead of everything, landed alone" : mr.priority === 0 ? "Normal (0)" : mr.priority}
            </dd>
          </div>
          {mr.ready_since && (
            <div>
              <dt>Ready since</dt>
              <dd>
                <RelativeTime value={mr.ready_since} />
                {mr.status === "queued" && (
                  <span className="muted">
                    {" "}
                    (<Elapsed since={mr.ready_since} prefix="waiting " />)
                  </span>
                )}
              </dd>
            </div>
          )}
          <div>
            <dt>Batch</dt>
            <dd>{mr.batch_id ? <Link to={batchPath(projectId, mr.batch_id, search)}>{mr.batch_id}</Link> : "None"}</dd>
          </div>
          <div>
            <dt>Strikes</dt>
            <dd title="Times it was in a red batch">{mr.strikes}</dd>
          </div>
          <div>
            <dt>Head commit</dt>
            <dd className="mono">{mr.sha.slice(0, 12)}</dd>
          </div>
          <div>
            <dt>Last change</dt>
            <dd>
              <RelativeTime value={mr.updated_at} />
            </dd>
          </div>
          {(mr.labels?.length ?? 0) > 0 && (
            <div className="facts-wide">
              <dt>Labels</dt>
              <dd className="labels">
                {mr.labels?.map((label) => (
                  <span key={label} className="badge badge-outline">
                    {label}
                  </span>
                ))}
              </dd>
            </div>
          )}
        </dl>
      </div>

      <section className="card" aria-labelledby={timelineHeading}>
        <div className="card-header">
          <h2 id={timelineHeading}>Timeline</h2>
        </div>
        {timeline.error && !timeline.data ? (
          <ErrorState error={timeline.error} onRetry={timeline.reload} title="The timeline could not be loaded" />
        ) : !timeline.data ? (
          <Loading what="the timeline" />
        ) : timeline.data.items.length === 0 ? (
          <EmptyState title="Nothing has happened to it yet">Events appear here as Merge Assist acts on it.</EmptyState>
        ) : (
          <>
            <ol className="timeline">
              {timeline.data.items.map((entry) => (
                <li key={entry.id} className={`timeline-entry timeline-${entry.action}`}>
                  <span className="timeline-dot" aria-hidden="true" />
                  <div className="timeline-body">
                    <div className="timeline-meta">
                      <RelativeTime value={entry.at} />
                      <span className="timeline-actor">{entry.actor}</span>
                      <span className="badge badge-outline">{ACTION_LABELS[entry.action] ?? entry.action}</span>
                    </div>
                    <p className="timeline-summary">{entry.summary}</p>
                    {entry.batch_id && entry.batch_id !== mr.batch_id && (
                      <Link className="timeline-link" to={batchPath(projectId, entry.batch_id, search)}>
                        Batch {entry.batch_id}
                      </Link>
                    )}
                  </div>
                </li>
              ))}
            </ol>
            {olderError !== null && (
              <p role="alert" className="timeline-error">
                Older events could not be loaded: {describeError(olderError)}
              </p>
            )}
            {timeline.data.nextCursor && (
              <button type="button" className="button button-link section-more" onClick={() => void loadOlder()} disabled={olderLoading}>
                {olderLoading ? "Loading…" : "Load older"}
              </button>
            )}
          </>
        )}
      </section>
    </div>
  );
}
