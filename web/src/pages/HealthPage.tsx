/** What on-call looks at first: is GitLab reachable, and per project is anything stuck
 * (dead letters), failing (executions) or paused. Refreshes itself while it is visible. */
import { useEffect, useRef } from "react";
import { Link } from "react-router-dom";
import { unwrap, type Health } from "../api/client";
import { useApi } from "../app/context";
import { RelativeTime } from "../components/RelativeTime";
import { ErrorState, Loading, describeError } from "../components/states";
import { useQuery } from "../hooks/useQuery";
import "./HealthPage.css";

type ProjectHealth = Health["projects"][number];

const REFRESH_MS = 30_000;

/** The Step Functions statuses, the bad ones first; any other is listed after them. */
const EXECUTION_ORDER = ["FAILED", "TIMED_OUT", "ABORTED", "RUNNING", "SUCCEEDED", "PENDING_REDRIVE"];
const BAD_EXECUTIONS = new Set(["FAILED", "TIMED_OUT", "ABORTED"]);

function words(status: string): string {
  const lower = status.toLowerCase().replace(/_/g, " ");
  return lower.charAt(0).toUpperCase() + lower.slice(1);
}

export function HealthPage() {
  const api = useApi();
  const query = useQuery(() => api.GET("/api/v1/health").then(unwrap), [api]);
  const { data, error, loading, reload } = query;

  // A hidden tab does not poll; coming back to it refreshes at once when it is stale.
  const lastLoaded = useRef(0);
  useEffect(() => {
    if (data) lastLoaded.current = Date.now();
  }, [data]);
  useEffect(() => {
    const tick = () => {
      if (document.visibilityState === "visible") reload();
    };
    const timer = setInterval(tick, REFRESH_MS);
    const onVisible = () => {
      const stale = Date.now() - lastLoaded.current >= REFRESH_MS;
      if (document.visibilityState === "visible" && stale) reload();
    };
    document.addEventListener("visibilitychange", onVisible);
    return () => {
      clearInterval(timer);
      document.removeEventListener("visibilitychange", onVisible);
    };
  }, [reload]);

  const refreshFailed = Boolean(error) && data !== undefined;

  let body;
  if (!data && error) {
    body = <ErrorState error={error} onRetry={reload} title="Health could not be checked" />;
  } else if (!data) {
    body = <Loading what="health" />;
  } else {
    const healthy = data.status === "ok";
    const troubled = data.projects.filter((project) => project.problems.length > 0).length;
    body = (
      <>
        <section
          className={`health-banner notice ${healthy ? "tone-ok" : "tone-bad"}`}
          aria-labelledby="health-overall"
        >
          <h2 id="health-overall">{healthy ? "All systems healthy" : "Something needs attention"}</h2>
          <p>
            {healthy
              ? "GitLab is reachable, the store answers and no project reports a problem."
              : [
                  data.store !== "ok" ? "The store cannot be read." : null,
                  !data.gitlab.reachable ? "GitLab cannot be reached." : null,
                  troubled > 0
                    ? `${troubled} ${troubled === 1 ? "project has" : "projects have"} problems.`
                    : null,
                ]
                  .filter(Boolean)
                  .join(" ") || `Status: ${data.status}.`}
          </p>
          <p className="health-version">Version {data.version}</p>
        </section>

        <div className="health-grid">
          <section className="health-card" aria-labelledby="health-gitlab">
            <h2 id="health-gitlab">GitLab</h2>
            <p className={data.gitlab.reachable ? "health-ok" : "health-bad"}>
              <span aria-hidden="true">{data.gitlab.reachable ? "✓ " : "✕ "}</span>
              {data.gitlab.reachable ? "GitLab reachable" : "GitLab unreachable"}
            </p>
            {!data.gitlab.reachable && data.gitlab.error && (
              <p className="health-detail">
                Error: <code>{data.gitlab.error}</code>. Check the bot&apos;s access token and that
                the API can reach GitLab.
              </p>
            )}
            <p className="health-detail">
              <a href={data.gitlab.url} target="_blank" rel="noreferrer">
                {data.gitlab.url}
              </a>
            </p>
          </section>
          <section className="health-card" aria-labelledby="health-store">
            <h2 id="health-store">Store</h2>
            <p className={data.store === "ok" ? "health-ok" : "health-bad"}>
              <span aria-hidden="true">{data.store === "ok" ? "✓ " : "✕ "}</span>
              {data.store === "ok" ? "Store reachable" : `Store ${data.store}`}
            </p>
          </section>
        </div>

        <h2 className="health-projects-title">Projects</h2>
        {data.projects.length === 0 ? (
          <p className="health-detail">No connected projects you can see.</p>
        ) : (
          <div className="health-grid">
            {data.projects.map((project) => (
              <ProjectCard key={project.project_id} project={project} />
            ))}
          </div>
        )}
      </>
    );
  }

  return (
    <div className="page health-page">
      <div className="page-header">
        <h1>Health</h1>
        <div className="health-refresh">
          {data && (
            <span className="health-checked">
              Checked <RelativeTime value={data.checked_at} />
            </span>
          )}
          <button type="button" className="button" onClick={reload} aria-busy={loading || undefined}>
            {loading && data && <span className="spinner" aria-hidden="true" />}
            Refresh
          </button>
        </div>
      </div>
      {refreshFailed && (
        <p className="health-stale notice tone-warn" role="alert">
          The last refresh failed ({describeError(error)}); showing the previous check.
        </p>
      )}
      {body}
    </div>
  );
}

function ProjectCard({ project }: { project: ProjectHealth }) {
  const titleId = `health-project-${project.project_id}`;
  const dead = project.queue?.dead_letters ?? 0;
  const rank = (status: string) => EXECUTION_ORDER.indexOf(status) + 1 || EXECUTION_ORDER.length + 1;
  const executions = Object.entries(project.executions).sort(
    ([a], [b]) => rank(a) - rank(b) || a.localeCompare(b),
  );
  return (
    <section
      className={`health-card${project.problems.length > 0 ? " health-card-bad" : ""}`}
      aria-labelledby={titleId}
    >
      <h3 id={titleId}>
        <Link to={`/projects/${project.project_id}`}>
          {project.path ?? `Project ${project.project_id}`}
        </Link>
      </h3>
      {project.paused && <p className="health-paused">Paused: no new batch starts</p>}

      {project.queue ? (
        <dl className="health-stats stats">
          <div>
            <dt>Queue messages</dt>
            <dd>{project.queue.messages}</dd>
          </div>
          <div>
            <dt>In flight</dt>
            <dd>{project.queue.in_flight}</dd>
          </div>
          <div className={dead > 0 ? "health-stat-bad" : undefined}>
            <dt>Dead letters</dt>
            <dd>{dead}</dd>
          </div>
        </dl>
      ) : (
        <p className="health-detail">Queue depth unknown.</p>
      )}
      {dead > 0 && (
        <p className="health-hint">
          {dead === 1 ? "An event" : `${dead} events`} could not be processed. After fixing the
          cause, replay {dead === 1 ? "it" : "them"} with{" "}
          <code className="health-command">merge-assist dlq redrive --project {project.project_id}</code>
        </p>
      )}

      <h4>Executions in the last 24 h</h4>
      {executions.length === 0 ? (
        <p className="health-detail">None.</p>
      ) : (
        <ul className="health-executions">
          {executions.map(([status, count]) => (
            <li
              key={status}
              className={BAD_EXECUTIONS.has(status) && count > 0 ? "health-bad" : undefined}
            >
              {words(status)}: <strong>{count}</strong>
            </li>
          ))}
        </ul>
      )}

      <h4>Problems</h4>
      {project.problems.length === 0 ? (
        <p className="health-ok">No problems</p>
      ) : (
        <ul className="health-problems">
          {project.problems.map((problem) => (
            <li key={problem}>{problem}</li>
          ))}
        </ul>
      )}
    </section>
  );
}
