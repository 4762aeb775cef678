/** The queue board: what is being tested now, what waits in line and why the rest is not
 * moving, kept current by the live socket. */
import { useCallback, useEffect, useId, useMemo, useRef, useState, type ReactNode } from "react";
import { Link, useParams, useSearchParams } from "react-router-dom";
import { unwrap, type Batch, type MergeRequest, type MergeRequestView, type ProjectView } from "../api/client";
import { useApi, useLive } from "../app/context";
import { MergeRequestItem, type ItemVariant } from "../components/MergeRequestItem";
import { Elapsed, RelativeTime, useNow } from "../components/RelativeTime";
import { BatchStateBadge, isRunning } from "../components/StatusBadge";
import { EmptyState, ErrorState, Loading } from "../components/states";
import { isToday } from "../components/time";
import { useDocumentTitle } from "../components/useDocumentTitle";
import { useQuery } from "../hooks/useQuery";
import type { LiveMessage } from "../live/updates";
import "./BoardPage.css";

/** Positions are worked out by the server; after a queue change the list is fetched again,
 * once per burst of changes. */
const REFETCH_DELAY_MS = 300;
const MERGED_SHOWN = 10;

interface BoardData {
  project: ProjectView;
  /** Newest first. */
  batches: Batch[];
  /** Running batches (the cars of every branch's train) by id. */
  running: Record<string, Batch>;
}

export function outcomeOf(batch: Batch, iid: number): string | undefined {
  if (batch.landed?.includes(iid)) return "landed";
  if (batch.rejected?.includes(iid)) return "rejected";
  if (batch.requeued?.includes(iid)) return "requeued";
  if (batch.dropped?.includes(iid)) return "dropped";
  return undefined;
}

export function batchPath(projectId: number, batchId: string, search = ""): string {
  return `/projects/${projectId}/batches/${encodeURIComponent(batchId)}${search}`;
}

/** As the API lists them (`for_the_queue`): a not-ready MR without reasons was never judged
 * for the queue (never assigned to the bot, or the queue's own batch MR), so it is not shown. */
export function forTheQueue(mr: MergeRequest): boolean {
  return mr.status !== "not_ready" || (mr.reasons ?? []).length > 0;
}

/** Replaces the MR by iid (a stale version never overwrites a newer one). */
function upsert(items: MergeRequestView[], mr: MergeRequest): MergeRequestView[] {
  const index = items.findIndex((item) => item.merge_request.iid === mr.iid);
  if (index === -1) return [...items, { merge_request: mr, position: null }];
  const existing = items[index] as MergeRequestView;
  if (mr.version < existing.merge_request.version) return items;
  const next = [...items];
  next[index] = {
    merge_request: mr,
    position: mr.status === "queued" && existing.merge_request.status === "queued" ? existing.position : null,
  };
  return next;
}

function applyBatch(board: BoardData, batch: Batch): BoardData {
  const running = { ...board.running };
  if (isRunning(batch.state)) {
    // A new batch for a branch replaces the one that ran there before; a train car joins
    // the cars already running there.
    for (const [id, other] of Object.entries(running)) {
      const sameTrain = batch.strategy === "train" && other.strategy === "train";
      if (id !== batch.id && other.target_branch === batch.target_branch && !sameTrain) delete running[id];
    }
    running[batch.id] = batch;
  } else {
    delete running[batch.id];
  }
  const index = board.batches.findIndex((each) => each.id === batch.id);
  const batches = index === -1 ? [batch, ...board.batches] : board.batches.map((each) => (each.id === batch.id ? batch : each));
  return { ...board, running, batches };
}

/** A branch's running cars in train order, head car first: as the project lists them, then
 * any the live socket added since, oldest first. */
export function trainOrder(cars: Batch[], listed: readonly string[] = []): Batch[] {
  const rank = (car: Batch) => {
    const index = listed.indexOf(car.id);
    return index === -1 ? listed.length : index;
  };
  return [...cars].sort((a, b) => rank(a) - rank(b) || (a.created_at ?? "").localeCompare(b.created_at ?? ""));
}

function byUpdatedDesc(a: MergeRequestView, b: MergeRequestView): number {
  return (b.merge_request.updated_at ?? "").localeCompare(a.merge_request.updated_at ?? "");
}

export function BoardPage() {
  const params = useParams();
  const projectId = Number(params.projectId);
  const [searchParams] = useSearchParams();
  const target = searchParams.get("target") || null;
  const search = target ? `?target=${encodeURIComponent(target)}` : "";
  const api = useApi();
  const now = useNow();
  const [removed, setRemoved] = useState(false);
  const [showAllMerged, setShowAllMerged] = useState(false);

  const board = useQuery<BoardData>(async () => {
    const path = { project_id: projectId };
    const [project, batches] = await Promise.all([
      api.GET("/api/v1/projects/{project_id}", { params: { path } }).then(unwrap),
      api.GET("/api/v1/projects/{project_id}/batches", { params: { path, query: { limit: 20 } } }).then(unwrap),
    ]);
    // Every car of every branch's train (the head car is also in running_batches).
    const ids = [...new Set([...Object.values(project.running_cars ?? {}).flat(), ...Object.values(project.running_batches)])];
    const running = await Promise.all(
      ids.map((batch_id) => api.GET("/api/v1/batches/{batch_id}", { params: { path: { batch_id } } }).then(unwrap)),
    );
    return { project, batches, running: Object.fromEntries(running.map((batch) => [batch.id, batch])) };
  }, [api, projectId]);

  const loadMergeRequests = useCallback(
    async () =>
      unwrap(
        await api.GET("/api/v1/projects/{project_id}/mrs", {
          params: { path: { project_id: projectId }, query: target ? { target } : {} },
        }),
      ).items,
    [api, projectId, target],
  );
  const mrs = useQuery<MergeRequestView[]>(loadMergeRequests, [loadMergeRequests]);

  const setMergeRequests = mrs.setData;
  const mrsRef = useRef(mrs.data);
  mrsRef.current = mrs.data;
  const refetchTimer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const refetchGeneration = useRef(0);
  const scheduleRefetch = useCallback(() => {
    clearTimeout(refetchTimer.current);
    refetchTimer.current = setTimeout(() => {
      const generation = ++refetchGeneration.current;
      loadMergeRequests().then(
        (items) => {
          if (generation === refetchGeneration.current) setMergeRequests(() => items);
        },
        () => undefined, // The live copy stays; the next change or a reload fixes positions.
      );
    }, REFETCH_DELAY_MS);
  }, [loadMergeRequests, setMergeRequests]);
  useEffect(() => () => clearTimeout(refetchTimer.current), []);

  useLive(projectId, (message: LiveMessage) => {
    switch (message.type) {
      case "merge_request": {
        const mr = message.data;
        if (target && mr.target_branch !== target) return;
        if (!forTheQueue(mr)) return;
        const before = mrsRef.current?.find((item) => item.merge_request.iid === mr.iid);
        mrs.setData((current) => (current ? upsert(current, mr) : current));
        if (mr.status === "queued" || before?.merge_request.status === "queued") scheduleRefetch();
        break;
      }
      case "batch":
        board.setData((current) => (current ? applyBatch(current, message.data) : current));
        break;
      case "project":
        board.setData((current) =>
          current ? { ...current, project: { ...current.project, config: message.data } } : current,
        );
        break;
      case "project_removed":
        setRemoved(true);
        break;
      case "event":
        break;
    }
  });

  const groups = useMemo(() => {
    const items = mrs.data ?? [];
    const of = (...statuses: MergeRequest["status"][]) =>
      items.filter((item) => statuses.includes(item.merge_request.status));
    const queued = of("queued").sort(
      (a, b) =>
        (a.position ?? Number.MAX_SAFE_INTEGER) - (b.position ?? Number.MAX_SAFE_INTEGER) ||
        Number(b.merge_request.hotfix) - Number(a.merge_request.hotfix) ||
        b.merge_request.priority - a.merge_request.priority ||
        (a.merge_request.ready_since ?? "").localeCompare(b.merge_request.ready_since ?? ""),
    );
    return {
      inBatch: of("batching", "testing"),
      queued,
      notReady: of("not_ready").sort(byUpdatedDesc),
      rejected: of("rejected").sort(byUpdatedDesc),
      merged: of("merged").sort(byUpdatedDesc),
    };
  }, [mrs.data]);

  const projectPath = board.data?.project.config.path;
  useDocumentTitle(`Queue${projectPath ? ` · ${projectPath}` : ""}${target ? ` (${target})` : ""}`);

  const headingIds = {
    running: useId(),
    queued: useId(),
    notReady: useId(),
    rejected: useId(),
    merged: useId(),
  };

  if (!Number.isInteger(projectId)) {
    return <ErrorState error={new Error("This is not a project address.")} />;
  }
  const error = board.error ?? mrs.error;
  if (error && (!board.data || !mrs.data)) {
    return (
      <div className="page">
        <h1>Queue</h1>
        <ErrorState
          error={error}
          title="The queue could not be loaded"
          onRetry={() => {
            board.reload();
            mrs.reload();
          }}
        />
      </div>
    );
  }
  if (!board.data || !mrs.data) {
    return (
      <div className="page">
        <h1>Queue</h1>
        <Loading what="the queue" />
      </div>
    );
  }

  const { project } = board.data;
  const config = project.config;
  const multiBranch = (config.target_branches?.length ?? 0) > 1 && !target;
  const listProps = { search, showTarget: multiBranch };
  const runningBatches = Object.values(board.data.running).filter((batch) => !target || batch.target_branch === target);
  // Each branch's train, head car first (one car unless the strategy is train).
  const trains = [...new Set(runningBatches.map((batch) => batch.target_branch))]
    .sort((a, b) => a.localeCompare(b))
    .map((branch) => ({
      branch,
      cars: trainOrder(
        runningBatches.filter((batch) => batch.target_branch === branch),
        project.running_cars?.[branch],
      ),
    }));
  const inShownBatch = new Set(runningBatches.flatMap((batch) => batch.merge_requests));
  const looseInBatch = groups.inBatch.filter((item) => !inShownBatch.has(item.merge_request.iid));
  const byIid = new Map((mrs.data ?? []).map((item) => [item.merge_request.iid, item.merge_request]));
  const runningCount = runningBatches.reduce((sum, batch) => sum + batch.merge_requests.length, 0) + looseInBatch.length;
  const lastFinished = board.data.batches.find(
    (batch) => !isRunning(batch.state) && (!target || batch.target_branch === target),
  );
  const merged = showAllMerged ? groups.merged : groups.merged.slice(0, MERGED_SHOWN);

  return (
    <div className="page board">
      <div className="page-header">
        <div>
          <h1>Queue</h1>
          <p className="board-subtitle muted">
            <span className="mono">{config.path ?? `Project ${projectId}`}</span>
            {" · "}
            {target ? <span className="mono">{target}</span> : multiBranch ? "all target branches" : <span className="mono">{config.target_branches?.[0] ?? "default branch"}</span>}
            {" · "}
            {config.strategy === "serial"
              ? "one at a time"
              : `${config.batch_size === "auto" ? `batches sized automatically, up to ${config.batch_size_max}` : `batches of up to ${config.batch_size}`}${config.strategy === "train" ? `, ${config.train_depth} tested at once` : ""}`}
          </p>
        </div>
        {config.paused && <span className="badge badge-warn">Paused</span>}
      </div>

      {removed && (
        <div className="banner banner-warn" role="alert">
          This project was disconnected from Merge Assist. What you see is its last known state.
        </div>
      )}

      <dl className="summary stats" aria-label="Summary">
        <div className="summary-item">
          <dt>Queued</dt>
          <dd>{groups.queued.length}</dd>
        </div>
        <div className="summary-item">
          <dt>In running batch</dt>
          <dd>{runningCount}</dd>
        </div>
        <div className="summary-item">
          <dt>Merged today</dt>
          <dd>{groups.merged.filter((item) => isToday(item.merge_request.updated_at, now)).length}</dd>
        </div>
        <div className="summary-item">
          <dt>Rejected today</dt>
          <dd>{groups.rejected.filter((item) => isToday(item.merge_request.updated_at, now)).length}</dd>
        </div>
      </dl>

      <BoardSection id={headingIds.running} title="Running batch" count={runningCount} className="section-running">
        {config.paused && (
          <p className="notice-paused" role="note">
            <strong>Queue paused.</strong> No new batch starts until a project owner resumes the queue in Config.
          </p>
        )}
        {runningBatches.length === 0 && looseInBatch.length === 0 ? (
          <EmptyState title="No batch running">
            {groups.queued.length > 0 && !config.paused
              ? "The next batch starts shortly from the front of the queue."
              : "A batch starts when a merge request is ready to merge."}
            {lastFinished && (
              <>
                {" "}
                Last batch:{" "}
                <Link to={batchPath(projectId, lastFinished.id, search)}>
                  {lastFinished.state} on {lastFinished.target_branch}
                </Link>{" "}
                <RelativeTime value={lastFinished.updated_at} />.
              </>
            )}
          </EmptyState>
        ) : (
          <>
            {trains.map(({ branch, cars }) =>
              // A lone batch of the serial or batch strategy shows as it always did.
              cars.length === 1 && cars[0] && cars[0].strategy !== "train" ? (
                <RunningBatch key={branch} batch={cars[0]} byIid={byIid} {...listProps} />
              ) : (
                <ol key={branch} className="train" aria-label={`Train on ${branch}`}>
                  {cars.map((car, index) => (
                    <RunningBatch key={car.id} batch={car} car={index + 1} train={cars} byIid={byIid} {...listProps} />
                  ))}
                </ol>
              ),
            )}
            {looseInBatch.length > 0 && (
              <MrList label="Being batched" items={looseInBatch} variant="running" {...listProps} />
            )}
          </>
        )}
      </BoardSection>

      <BoardSection id={headingIds.queued} title="Queued" count={groups.queued.length}>
        {groups.queued.length === 0 ? (
          <EmptyState title="Nothing queued">
            Merge requests join the queue when they are approved, green and labelled ready to merge.
          </EmptyState>
        ) : (
          <MrList ordered items={groups.queued} variant="queued" {...listProps} />
        )}
      </BoardSection>

      <BoardSection id={headingIds.notReady} title="Not ready" count={groups.notReady.length}>
        {groups.notReady.length === 0 ? (
          <EmptyState title="Nothing waiting on its author" />
        ) : (
          <MrList items={groups.notReady} variant="not_ready" {...listProps} />
        )}
      </BoardSection>

      <BoardSection id={headingIds.rejected} title="Rejected" count={groups.rejected.length}>
        {groups.rejected.length === 0 ? (
          <EmptyState title="Nothing rejected" />
        ) : (
          <MrList items={groups.rejected} variant="rejected" {...listProps} />
        )}
      </BoardSection>

      <BoardSection id={headingIds.merged} title="Merged" count={groups.merged.length}>
        {groups.merged.length === 0 ? (
          <EmptyState title="Nothing merged yet" />
        ) : (
          <>
            <MrList items={merged} variant="merged" {...listProps} />
            {groups.merged.length > MERGED_SHOWN && (
              <button type="button" className="button button-link section-more" onClick={() => setShowAllMerged((value) => !value)}>
                {showAllMerged ? "Show fewer" : `Show all ${groups.merged.length}`}
              </button>
            )}
          </>
        )}
      </BoardSection>
    </div>
  );
}

/** A board list of merge requests; a queued list is ordered and shows each place in line. */
function MrList({
  items,
  variant,
  ordered = false,
  label,
  search,
  showTarget,
}: {
  items: MergeRequestView[];
  variant: ItemVariant;
  ordered?: boolean;
  label?: string;
  search: string;
  showTarget: boolean;
}) {
  const List = ordered ? "ol" : "ul";
  return (
    <List className="mr-list" aria-label={label}>
      {items.map((item) => (
        <MergeRequestItem
          key={item.merge_request.iid}
          mr={item.merge_request}
          position={ordered ? item.position : undefined}
          variant={variant}
          search={search}
          showTarget={showTarget}
        />
      ))}
    </List>
  );
}

function BoardSection({
  id,
  title,
  count,
  className = "",
  children,
}: {
  id: string;
  title: string;
  count: number;
  className?: string;
  children: ReactNode;
}) {
  return (
    <section className={`card board-section ${className}`} aria-labelledby={id}>
      <div className="card-header">
        <h2 id={id}>{title}</h2>
        <span className="badge badge-count" aria-label={`${count} ${count === 1 ? "merge request" : "merge requests"}`}>
          {count}
        </span>
      </div>
      {children}
    </section>
  );
}

/** What a batch was built on: the car ahead in the train shown (by position), another batch
 * (one no longer shown), or the target branch; with the base commit. */
function BatchBase({ batch, train, search }: { batch: Batch; train: Batch[]; search: string }) {
  const ahead = batch.ahead_id ? train.findIndex((car) => car.id === batch.ahead_id) : -1;
  const sha = batch.target_sha && <span className="mono">{batch.target_sha.slice(0, 12)}</span>;
  return (
    <span className="muted">
      Built on{" "}
      {!batch.ahead_id ? (
        <span className="mono">{batch.target_branch}</span>
      ) : ahead !== -1 ? (
        `car ${ahead + 1}`
      ) : (
        <Link to={batchPath(batch.project_id, batch.ahead_id, search)}>the batch ahead</Link>
      )}
      {sha && <> at {sha}</>}
    </span>
  );
}

/** A running batch; in a train (`car` given), one car of it, as an item of the train's list. */
function RunningBatch({
  batch,
  car,
  train = [batch],
  byIid,
  search,
  showTarget,
}: {
  batch: Batch;
  /** The car's position in its train, from 1 at the head. */
  car?: number;
  train?: Batch[];
  byIid: Map<number, MergeRequest>;
  search: string;
  showTarget: boolean;
}) {
  const bisection = batch.bisection;
  const Container = car === undefined ? "div" : "li";
  const name = car === undefined ? `Batch on ${batch.target_branch}` : `Car ${car} on ${batch.target_branch}`;
  return (
    <Container className="running-batch">
      <div className="running-batch-header">
        {car !== undefined && <strong>Car {car}</strong>}
        <BatchStateBadge state={batch.state} />
        <span className="mono">{batch.target_branch}</span>
        <span className="muted">
          {batch.merge_requests.length} {batch.merge_requests.length === 1 ? "merge request" : "merge requests"}
          {batch.created_at && (
            <>
              {" · "}
              <Elapsed since={batch.created_at} prefix="running for " />
            </>
          )}
          {batch.retrying && " · retrying a flaky pipeline"}
        </span>
        <BatchBase batch={batch} train={train} search={search} />
        <span className="running-batch-links">
          {batch.pipeline_url && (
            <a href={batch.pipeline_url} target="_blank" rel="noreferrer">
              Pipeline
            </a>
          )}
          <Link to={batchPath(batch.project_id, batch.id, search)}>Batch details</Link>
        </span>
      </div>
      {bisection && (
        <p className="bisection-note">
          <strong>Bisecting:</strong> the first {bisection.good} of {bisection.members.length} passed, the first{" "}
          {bisection.bad} failed; looking for the culprit among{" "}
          {bisection.members
            .slice(bisection.good, bisection.bad)
            .map((iid) => `!${iid}`)
            .join(", ") || "none"}
          .
        </p>
      )}
      <ol className="mr-list" aria-label={name}>
        {batch.merge_requests.map((iid) => {
          const mr = byIid.get(iid);
          const outcome = outcomeOf(batch, iid);
          if (!mr) {
            return (
              <li key={iid} className="mr-item">
                <div className="mr-body">
                  <div className="mr-title-row">
                    <Link className="mr-link" to={`/projects/${batch.project_id}/mrs/${iid}${search}`}>
                      <span className="mr-iid">!{iid}</span>
                    </Link>
                    {outcome && <span className={`badge badge-outcome badge-outcome-${outcome}`}>{outcome}</span>}
                  </div>
                </div>
              </li>
            );
          }
          return (
            <MergeRequestItem key={iid} mr={mr} variant="running" search={search} showTarget={showTarget} outcome={outcome} />
          );
        })}
      </ol>
    </Container>
  );
}
