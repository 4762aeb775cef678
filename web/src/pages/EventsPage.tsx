/** The event log: who did what to the queue, newest first, following the live stream or
 * holding new entries back while someone reads. */
import { useEffect, useId, useRef, useState } from "react";
import { Link, useParams } from "react-router-dom";
import { unwrap, type AuditEntry } from "../api/client";
import { useApi, useLive } from "../app/context";
import { EmptyState, ErrorState, Loading, describeError } from "../components/states";
import { useQuery } from "../hooks/useQuery";
import {
  ACTIONS,
  NO_FILTERS,
  actionToneClass,
  actionWords,
  actorName,
  fresh,
  isQueueActor,
  matches,
  mergeRequestOf,
  type EventFilters,
} from "./events/words";
import { RelativeTime } from "../components/RelativeTime";
import "./EventsPage.css";

const PAGE_SIZE = 50;

function prepend(incoming: AuditEntry[], items: AuditEntry[]): AuditEntry[] {
  return [...fresh(incoming, items), ...items];
}
/** Typing "123" asks the API once, not for !1, !12 and !123. */
const MR_FILTER_DELAY_MS = 300;

interface Log {
  items: AuditEntry[];
  nextCursor: string | null;
}

export function EventsPage() {
  const projectId = Number(useParams().projectId);
  return <EventLog key={projectId} projectId={projectId} />;
}

function EventLog({ projectId }: { projectId: number }) {
  const api = useApi();
  const ids = useId();

  const [filters, setFilters] = useState<EventFilters>(NO_FILTERS);
  const [serverMr, setServerMr] = useState<number | undefined>(undefined);
  const [liveTail, setLiveTail] = useState(true);
  const [pending, setPending] = useState<AuditEntry[]>([]);
  const [loadingOlder, setLoadingOlder] = useState(false);
  const [olderError, setOlderError] = useState<unknown>(null);

  const wantedMr = mergeRequestOf(filters);
  useEffect(() => {
    const timer = setTimeout(() => setServerMr(wantedMr), MR_FILTER_DELAY_MS);
    return () => clearTimeout(timer);
  }, [wantedMr]);

  const fetchPage = (cursor?: string) => {
    // One MR's timeline is asked of the API, so it reaches back further than the pages
    // loaded so far.
    return api
      .GET("/api/v1/projects/{project_id}/events", {
        params: {
          path: { project_id: projectId },
          query: {
            limit: PAGE_SIZE,
            ...(cursor ? { cursor } : {}),
            ...(serverMr !== undefined ? { merge_request: serverMr } : {}),
          },
        },
      })
      .then(unwrap);
  };

  const log = useQuery<Log>(async () => {
    const page = await fetchPage();
    return { items: page.items, nextCursor: page.next_cursor ?? null };
  }, [api, projectId, serverMr]);
  const { data, setData } = log;

  // A page of older entries answers for the log it was asked for; after the MR filter
  // changed it belongs to another one.
  const generation = useRef(0);
  useEffect(() => {
    generation.current += 1;
    setPending([]);
    setOlderError(null);
  }, [projectId, serverMr]);

  useLive(projectId, (message) => {
    if (message.type !== "event") return;
    const entry = message.data;
    if (serverMr !== undefined && entry.merge_request !== serverMr) return;
    if (liveTail) {
      setData((current) => current && { ...current, items: prepend([entry], current.items) });
    } else {
      setPending((held) => {
        const known = [...held, ...(data?.items ?? [])];
        return [...fresh([entry], known), ...held];
      });
    }
  });

  const showPending = () => {
    setData((current) => current && { ...current, items: prepend(pending, current.items) });
    setPending([]);
  };

  const toggleLiveTail = (on: boolean) => {
    setLiveTail(on);
    if (on) showPending();
  };

  const loadOlder = async () => {
    const cursor = data?.nextCursor;
    if (!cursor || loadingOlder) return;
    const asked = generation.current;
    setLoadingOlder(true);
    setOlderError(null);
    try {
      const page = await fetchPage(cursor);
      if (asked !== generation.current) return;
      setData(
        (current) =>
          current && {
            items: [...current.items, ...fresh(page.items, current.items)],
            nextCursor: page.next_cursor ?? null,
          },
      );
    } catch (error) {
      if (asked === generation.current) setOlderError(error);
    } finally {
      setLoadingOlder(false);
    }
  };

  const filtering = filters.action !== "" || filters.actor.trim() !== "" || wantedMr !== undefined;
  const shown = data ? data.items.filter((entry) => matches(entry, filters)) : [];

  let content;
  if (!data && log.error) {
    content = (
      <ErrorState error={log.error} onRetry={log.reload} title="The event log could not be loaded" />
    );
  } else if (!data) {
    content = <Loading what="events" />;
  } else if (data.items.length === 0 && !filtering) {
    content = (
      <EmptyState title="No events yet">
        Status changes, batch steps, priority and config changes appear here as they happen.
      </EmptyState>
    );
  } else if (shown.length === 0) {
    content = (
      <EmptyState title="No events match these filters">
        {data.nextCursor &&
          "Only the loaded events are searched; load older ones to look further back. "}
        <button type="button" className="button" onClick={() => setFilters(NO_FILTERS)}>
          Clear filters
        </button>
      </EmptyState>
    );
  } else {
    content = (
      <div className="events-scroll">
        <table className="events-table">
          <caption className="visually-hidden">Events, newest first</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Who</th>
              <th scope="col">What</th>
              <th scope="col">Summary</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((entry) => (
              <tr key={entry.id}>
                <td data-label="When" className="events-when">
                  <RelativeTime value={entry.at} />
                </td>
                <td data-label="Who">
                  <span
                    className={`events-actor${isQueueActor(entry.actor) ? " events-actor-queue" : ""}`}
                  >
                    {actorName(entry.actor)}
                  </span>
                </td>
                <td data-label="What">
                  <span className={`events-action ${actionToneClass(entry.action)}`.trim()}>
                    {actionWords(entry.action)}
                  </span>
                </td>
                <td data-label="Summary" className="events-summary">
                  <div>
                    <span>{entry.summary}</span>
                    {(entry.merge_request != null || entry.batch_id) && (
                      <span className="events-links">
                        {entry.merge_request != null && (
                          <Link to={`/projects/${projectId}/mrs/${entry.merge_request}`}>
                            !{entry.merge_request}
                          </Link>
                        )}
                        {entry.batch_id && (
                          <Link
                            to={`/projects/${projectId}/batches/${encodeURIComponent(entry.batch_id)}`}
                          >
                            Batch {entry.batch_id}
                          </Link>
                        )}
                      </span>
                    )}
                  </div>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    );
  }

  return (
    <div className="page events-page">
      <div className="events-heading">
        <h1>Events</h1>
        <p className="events-lede">
          Everything the queue and its people did in this project, newest first.
        </p>
      </div>

      <form
        className="events-filters"
        role="search"
        aria-label="Filter events"
        onSubmit={(event) => event.preventDefault()}
      >
        <div className="events-filter">
          <label htmlFor={`${ids}-action`}>Action</label>
          <select
            id={`${ids}-action`}
            value={filters.action}
            onChange={(event) => setFilters({ ...filters, action: event.target.value })}
          >
            <option value="">All</option>
            {ACTIONS.map((action) => (
              <option key={action} value={action}>
                {actionWords(action)}
              </option>
            ))}
          </select>
        </div>
        <div className="events-filter">
          <label htmlFor={`${ids}-actor`}>Actor</label>
          <input
            id={`${ids}-actor`}
            type="text"
            autoComplete="off"
            spellCheck={false}
            placeholder="username"
            value={filters.actor}
            onChange={(event) => setFilters({ ...filters, actor: event.target.value })}
          />
        </div>
        <div className="events-filter">
          <label htmlFor={`${ids}-mr`}>Merge request</label>
          <input
            id={`${ids}-mr`}
            type="number"
            inputMode="numeric"
            min={1}
            step={1}
            placeholder="iid"
            value={filters.mergeRequest}
            onChange={(event) => setFilters({ ...filters, mergeRequest: event.target.value })}
          />
        </div>
        <div className="events-filter events-live">
          <input
            id={`${ids}-live`}
            type="checkbox"
            checked={liveTail}
            onChange={(event) => toggleLiveTail(event.target.checked)}
          />
          <label htmlFor={`${ids}-live`}>Live tail</label>
        </div>
      </form>

      {pending.length > 0 && (
        <button type="button" className="button events-pending" onClick={showPending}>
          {pending.length} new {pending.length === 1 ? "event" : "events"} — show
        </button>
      )}

      {content}

      {data && (olderError != null || data.nextCursor) && (
        <div className="events-more">
          {olderError != null && (
            <p role="alert" className="events-older-error">
              Older events could not be loaded: {describeError(olderError)}
            </p>
          )}
          {data.nextCursor && (
            <button
              type="button"
              className="button"
              onClick={() => void loadOlder()}
              aria-busy={loadingOlder || undefined}
            >
              {loadingOlder && <span className="spinner" aria-hidden="true" />}
              Load older
            </button>
          )}
        </div>
      )}
    </div>
  );
}
