/** The priority manager: the queue in order, per target branch, to reorder by drag and
 * drop (mouse, touch or keyboard) or with plain up/down buttons, and to mark hotfixes. */
import {
  DndContext,
  KeyboardSensor,
  PointerSensor,
  closestCenter,
  useSensor,
  useSensors,
  type Announcements,
  type DragEndEvent,
  type UniqueIdentifier,
} from "@dnd-kit/core";
import {
  SortableContext,
  sortableKeyboardCoordinates,
  useSortable,
  verticalListSortingStrategy,
} from "@dnd-kit/sortable";
import { CSS } from "@dnd-kit/utilities";
import { useCallback, useEffect, useId, useRef, useState, type ReactNode } from "react";
import { Link, useParams, useSearchParams } from "react-router-dom";
import { unwrap, type MergeRequest } from "../api/client";
import { canPrioritize, useMe } from "../app/access";
import { useApi, useLive } from "../app/context";
import { Elapsed } from "../components/RelativeTime";
import { EmptyState, ErrorState, Loading, describeError } from "../components/states";
import { useQuery } from "../hooks/useQuery";
import {
  moveItem,
  placementFor,
  toLines,
  withUpdated,
  type Line,
  type Placement,
} from "./priority/order";
import "./PriorityPage.css";

interface QueueData {
  paused: boolean;
  lines: Line[];
}

/** Live updates arrive in bursts (a batch moves several MRs at once): one refetch each. */
const REFETCH_DELAY_MS = 300;

export function PriorityPage() {
  const projectId = Number(useParams().projectId);
  const [searchParams] = useSearchParams();
  const target = searchParams.get("target") || undefined;
  // Another project or branch is another list: nothing of this one's state (a drag, an
  // optimistic order, a pending refetch) may carry over to it.
  return (
    <PriorityManager key={`${projectId}:${target ?? ""}`} projectId={projectId} target={target} />
  );
}

function PriorityManager({ projectId, target }: { projectId: number; target: string | undefined }) {
  const api = useApi();
  const me = useMe();
  const editable = canPrioritize(me, projectId);

  const query = useQuery<QueueData>(async () => {
    const [project, queued] = await Promise.all([
      api
        .GET("/api/v1/projects/{project_id}", { params: { path: { project_id: projectId } } })
        .then(unwrap),
      api
        .GET("/api/v1/projects/{project_id}/mrs", {
          params: {
            path: { project_id: projectId },
            query: { category: "queued", ...(target ? { target } : {}) },
          },
        })
        .then(unwrap),
    ]);
    return {
      paused: project.config.paused ?? false,
      lines: toLines(queued.items, project.config.target_branches ?? [], target),
    };
  }, [api, projectId, target]);
  const { data, setData, reload } = query;

  const [failure, setFailure] = useState<string | null>(null);
  const [announcement, setAnnouncement] = useState("");
  const [saving, setSaving] = useState(false);
  const savingRef = useRef(false);
  const dragging = useRef(false);
  const stale = useRef(false);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  const refetchSoon = useCallback(() => {
    clearTimeout(timer.current);
    timer.current = setTimeout(() => {
      // A refetch in the middle of a drag would yank the list from under the pointer.
      if (dragging.current || savingRef.current) {
        stale.current = true;
        return;
      }
      stale.current = false;
      reload();
    }, REFETCH_DELAY_MS);
  }, [reload]);
  useEffect(() => () => clearTimeout(timer.current), []);

  useLive(projectId, (message) => {
    if (message.type === "merge_request" || message.type === "project") refetchSoon();
  });

  const onDragState = useCallback(
    (active: boolean) => {
      dragging.current = active;
      if (!active && stale.current) refetchSoon();
    },
    [refetchSoon],
  );

  /** Sends a change, with the local order already showing it; puts the old order back
   * (and says why) when the server refuses. */
  const send = useCallback(
    async (
      optimistic: ((lines: Line[]) => Line[]) | null,
      request: () => Promise<MergeRequest>,
      done: (mr: MergeRequest) => string,
    ): Promise<boolean> => {
      if (savingRef.current || !data) return false;
      const before = data;
      savingRef.current = true;
      setSaving(true);
      setFailure(null);
      if (optimistic) {
        setData((current) => current && { ...current, lines: optimistic(current.lines) });
      }
      try {
        const mr = await request();
        setData(
          (current) =>
            current && {
              ...current,
              lines: current.lines.map((line) =>
                line.branch === mr.target_branch ? withUpdated(line, mr) : line,
              ),
            },
        );
        setAnnouncement(done(mr));
        return true;
      } catch (error) {
        setData(() => before);
        setFailure(describeError(error));
        setAnnouncement("");
        return false;
      } finally {
        savingRef.current = false;
        setSaving(false);
        // The server decides the final order (positions, other MRs' moves meanwhile).
        refetchSoon();
      }
    },
    [data, setData, refetchSoon],
  );

  const place = useCallback(
    (branch: string, order: MergeRequest[], iid: number): Promise<boolean> => {
      const placement = placementFor(order, iid);
      if (!placement) return Promise.resolve(false);
      const position = order.findIndex((mr) => mr.iid === iid) + 1;
      return send(
        (lines) => lines.map((line) => (line.branch === branch ? { ...line, items: order } : line)),
        () =>
          api
            .POST("/api/v1/projects/{project_id}/mrs/{iid}/priority", {
              params: { path: { project_id: projectId, iid } },
              body: placement,
            })
            .then(unwrap),
        () =>
          `!${iid} is now number ${position} in the queue for ${branch}. ` +
          `${describePlacement(placement)}.`,
      );
    },
    [api, projectId, send],
  );

  const setHotfix = useCallback(
    (iid: number, hotfix: boolean) =>
      send(
        null,
        () => {
          const options = { params: { path: { project_id: projectId, iid } } };
          return (
            hotfix
              ? api.POST("/api/v1/projects/{project_id}/mrs/{iid}/hotfix", options)
              : api.DELETE("/api/v1/projects/{project_id}/mrs/{iid}/hotfix", options)
          ).then(unwrap);
        },
        () =>
          hotfix
            ? `!${iid} is now a hotfix: it is tested alone, next.`
            : `!${iid} is no longer a hotfix and goes back to its place by priority.`,
      ),
    [api, projectId, send],
  );

  let body: ReactNode;
  if (!data && query.error) {
    body = (
      <ErrorState error={query.error} onRetry={reload} title="The queue could not be loaded" />
    );
  } else if (!data) {
    body = <Loading what="the queue" />;
  } else if (data.lines.every((line) => line.items.length === 0)) {
    body = (
      <EmptyState title="Nothing is queued">
        Merge requests appear here once they are ready to merge and waiting for a batch
        {target ? ` into ${target}` : ""}.
      </EmptyState>
    );
  } else {
    const grouped = data.lines.length > 1;
    body = data.lines.map((line) => (
      <QueueLine
        key={line.branch}
        line={line}
        grouped={grouped}
        projectId={projectId}
        editable={editable}
        saving={saving}
        onPlace={place}
        onHotfix={setHotfix}
        onDragState={onDragState}
      />
    ));
  }

  return (
    <div className="page priority-page">
      <div className="page-heading">
        <h1>Priority</h1>
        <p className="page-lede">
          The order queued merge requests go into batches{target ? ` for ${target}` : ""}. The
          top of each list goes first.
        </p>
      </div>
      {!editable && (
        <div className="notice tone-info" role="note">
          <strong>Only priority managers and admins can reorder the queue.</strong> You can see
          the order here; ask a project owner or an admin for the priority manager role to
          change it.
        </div>
      )}
      {data?.paused && (
        <p className="notice tone-warn">
          This project is paused: running batches finish, no new batch starts until it is
          resumed in Config.
        </p>
      )}
      {failure && (
        <div className="priority-failure notice tone-bad" role="alert">
          <span>
            <strong>The queue was not changed.</strong> {failure}
          </span>
          <button type="button" className="button" onClick={() => setFailure(null)}>
            Dismiss
          </button>
        </div>
      )}
      <p className="visually-hidden" aria-live="polite">
        {announcement}
      </p>
      {body}
    </div>
  );
}

function describePlacement(placement: Placement): string {
  return "before" in placement
    ? `It goes before !${placement.before}`
    : `It goes after !${placement.after}`;
}

interface QueueLineProps {
  line: Line;
  grouped: boolean;
  projectId: number;
  editable: boolean;
  saving: boolean;
  onPlace: (branch: string, order: MergeRequest[], iid: number) => Promise<boolean>;
  onHotfix: (iid: number, hotfix: boolean) => Promise<boolean>;
  onDragState: (dragging: boolean) => void;
}

function QueueLine({
  line,
  grouped,
  projectId,
  editable,
  saving,
  onPlace,
  onHotfix,
  onDragState,
}: QueueLineProps) {
  const headingId = useId();
  const instructionsId = useId();
  const hotfixes = line.items.filter((mr) => mr.hotfix);
  const movable = line.items.filter((mr) => !mr.hotfix);
  const [focusAfterMove, setFocusAfterMove] = useState<{
    iid: number;
    direction: "up" | "down";
  } | null>(null);
  const sensors = useSensors(
    // A few pixels of travel before a drag starts, so a click on the handle stays a click.
    useSensor(PointerSensor, { activationConstraint: { distance: 4 } }),
    useSensor(KeyboardSensor, { coordinateGetter: sortableKeyboardCoordinates }),
  );

  // Buttons that moved with their item keep the keyboard user's place; at either end of
  // the line the pressed button is disabled, so focus goes to its sibling.
  useEffect(() => {
    if (!focusAfterMove) return;
    const { iid, direction } = focusAfterMove;
    const pressed = document.getElementById(moveButtonId(projectId, iid, direction));
    const other = document.getElementById(
      moveButtonId(projectId, iid, direction === "up" ? "down" : "up"),
    );
    const target = pressed instanceof HTMLButtonElement && !pressed.disabled ? pressed : other;
    target?.focus();
    setFocusAfterMove(null);
  }, [focusAfterMove, line, projectId]);

  const positionOf = (id: UniqueIdentifier) =>
    hotfixes.length + movable.findIndex((mr) => mr.iid === id) + 1;
  const total = line.items.length;
  const announcements: Announcements = {
    onDragStart: ({ active }) =>
      `Picked up !${active.id}, number ${positionOf(active.id)} of ${total}. ` +
      "Use the up and down arrow keys to move it, Space to drop it, Escape to cancel.",
    onDragOver: ({ active, over }) =>
      over
        ? `!${active.id} would be number ${positionOf(over.id)} of ${total}.`
        : `!${active.id} is no longer over the queue.`,
    onDragEnd: ({ active, over }) =>
      over
        ? `!${active.id} dropped at number ${positionOf(over.id)} of ${total}.`
        : `!${active.id} dropped outside the queue; its place is unchanged.`,
    onDragCancel: ({ active }) =>
      `Reordering cancelled. !${active.id} stays number ${positionOf(active.id)}.`,
  };

  const onDragEnd = ({ active, over }: DragEndEvent) => {
    onDragState(false);
    if (!over || active.id === over.id) return;
    const from = movable.findIndex((mr) => mr.iid === active.id);
    const to = movable.findIndex((mr) => mr.iid === over.id);
    if (from < 0 || to < 0) return;
    void onPlace(line.branch, [...hotfixes, ...moveItem(movable, from, to)], Number(active.id));
  };

  const moveByOne = async (iid: number, direction: "up" | "down") => {
    const from = movable.findIndex((mr) => mr.iid === iid);
    const to = direction === "up" ? from - 1 : from + 1;
    if (from < 0 || to < 0 || to >= movable.length) return;
    const moved = await onPlace(line.branch, [...hotfixes, ...moveItem(movable, from, to)], iid);
    if (moved) setFocusAfterMove({ iid, direction });
  };

  const label = grouped ? `Queue order for ${line.branch}` : "Queue order";
  const itemProps = { projectId, editable, saving, grouped, total, onHotfix };

  return (
    <section className="priority-line" aria-labelledby={grouped ? headingId : undefined}>
      {grouped && (
        <h2 id={headingId} className="priority-line-title">
          <span className="visually-hidden">Target branch </span>
          <code>{line.branch}</code>
          <span className="priority-count">{line.items.length} queued</span>
        </h2>
      )}
      {line.items.length === 0 ? (
        <p className="priority-line-empty">Nothing queued for {line.branch}.</p>
      ) : (
        <>
          {editable && (
            <p id={instructionsId} className="visually-hidden">
              To reorder with the keyboard, focus an MR&apos;s reorder handle, press Space to pick
              it up, the arrow keys to move it, and Space again to drop it; Escape cancels.
            </p>
          )}
          <DndContext
            sensors={sensors}
            collisionDetection={closestCenter}
            onDragStart={() => onDragState(true)}
            onDragCancel={() => onDragState(false)}
            onDragEnd={onDragEnd}
            accessibility={{
              announcements,
              screenReaderInstructions: {
                draggable:
                  "To pick up a merge request, press Space or Enter. Use the up and down " +
                  "arrow keys to move it in the queue. Press Space or Enter again to drop it, " +
                  "or Escape to cancel.",
              },
            }}
          >
            <SortableContext
              items={movable.map((mr) => mr.iid)}
              strategy={verticalListSortingStrategy}
            >
              <ol className="priority-list" aria-label={label} aria-busy={saving || undefined}>
                {hotfixes.map((mr, index) => (
                  <StaticItem key={mr.iid} mr={mr} position={index + 1} {...itemProps} />
                ))}
                {movable.map((mr, index) => (
                  <SortableItem
                    key={mr.iid}
                    mr={mr}
                    position={hotfixes.length + index + 1}
                    first={index === 0}
                    last={index === movable.length - 1}
                    onMove={moveByOne}
                    {...itemProps}
                  />
                ))}
              </ol>
            </SortableContext>
          </DndContext>
        </>
      )}
    </section>
  );
}

function moveButtonId(projectId: number, iid: number, direction: "up" | "down"): string {
  return `priority-${projectId}-${iid}-${direction}`;
}

interface ItemProps {
  mr: MergeRequest;
  position: number;
  projectId: number;
  editable: boolean;
  saving: boolean;
  grouped: boolean;
  total: number;
  onHotfix: (iid: number, hotfix: boolean) => Promise<boolean>;
}

/** A hotfix: pinned at the top, not draggable (the server places nothing around it). */
function StaticItem(props: ItemProps) {
  return (
    <li className="priority-item priority-item-hotfix">
      <span className="priority-pin" title="Hotfixes stay at the top">
        <svg viewBox="0 0 16 16" width="16" height="16" aria-hidden="true" focusable="false">
          <path
            fill="currentColor"
            d="M4.5 1h7l-1 1.5v4l2.5 2.5v1.5H8.75V15h-1.5v-4.5H3V9l2.5-2.5v-4z"
          />
        </svg>
      </span>
      <ItemBody {...props} />
    </li>
  );
}

const MOVES = [
  { direction: "up", arrow: "↑", word: "Up" },
  { direction: "down", arrow: "↓", word: "Down" },
] as const;

function SortableItem(
  props: ItemProps & {
    first: boolean;
    last: boolean;
    onMove: (iid: number, direction: "up" | "down") => Promise<void>;
  },
) {
  const { mr, editable, first, last, onMove, projectId, saving } = props;
  const sortable = useSortable({ id: mr.iid, disabled: !editable });
  const { attributes, listeners, setNodeRef, setActivatorNodeRef, transform, transition } = sortable;
  const isDragging = sortable.isDragging;
  const style = { transform: CSS.Transform.toString(transform), transition };
  return (
    <li
      ref={setNodeRef}
      style={style}
      className={`priority-item${isDragging ? " priority-item-dragging" : ""}`}
    >
      {editable && (
        <button
          type="button"
          ref={setActivatorNodeRef}
          className="priority-handle"
          {...attributes}
          {...listeners}
          aria-label={`Reorder !${mr.iid}`}
        >
          <span aria-hidden="true">⠿</span>
        </button>
      )}
      <ItemBody {...props}>
        {editable &&
          MOVES.map(({ direction, arrow, word }) => (
            <button
              key={direction}
              type="button"
              id={moveButtonId(projectId, mr.iid, direction)}
              className="button priority-move"
              aria-label={`Move !${mr.iid} ${direction}`}
              disabled={direction === "up" ? first : last}
              aria-disabled={saving || undefined}
              onClick={() => void onMove(mr.iid, direction)}
            >
              <span aria-hidden="true">{arrow} </span>
              {word}
            </button>
          ))}
      </ItemBody>
    </li>
  );
}

function ItemBody({
  mr,
  position,
  projectId,
  editable,
  saving,
  grouped,
  onHotfix,
  children,
}: ItemProps & { children?: ReactNode }) {
  const [confirming, setConfirming] = useState(false);
  const confirmRef = useRef<HTMLButtonElement>(null);
  const markRef = useRef<HTMLButtonElement>(null);
  const wasConfirming = useRef(false);
  useEffect(() => {
    if (confirming) confirmRef.current?.focus();
    else if (wasConfirming.current) markRef.current?.focus();
    wasConfirming.current = confirming;
  }, [confirming]);

  return (
    <div className="priority-body">
      <div className="priority-main">
        <span className="priority-position">#{position}</span>
        <span className="priority-heading">
          <Link className="priority-link" to={`/projects/${projectId}/mrs/${mr.iid}`}>
            <span className="priority-iid">!{mr.iid}</span>{" "}
            <span className="priority-title">{mr.title || "(no title)"}</span>
          </Link>
          {mr.hotfix && <span className="badge badge-hotfix">Hotfix</span>}
        </span>
      </div>
      <div className="priority-meta">
        <span title="Source branch">
          <code>{mr.source_branch}</code>
          {!grouped && (
            <>
              {" → "}
              <code>{mr.target_branch}</code>
            </>
          )}
        </span>
        <span>Priority {mr.priority ?? 0}</span>
        {mr.ready_since && (
          <span>
            Waiting <Elapsed since={mr.ready_since} />
          </span>
        )}
        {(mr.strikes ?? 0) > 0 && (
          <span className="priority-strikes" title="Times a red batch was blamed on this MR">
            {mr.strikes} {mr.strikes === 1 ? "strike" : "strikes"}
          </span>
        )}
      </div>
      {editable && (
        <div className="priority-actions">
          {children}
          {mr.hotfix ? (
            <button
              type="button"
              className="button priority-hotfix-button"
              aria-label={`Withdraw hotfix for !${mr.iid}`}
              aria-disabled={saving || undefined}
              onClick={() => void onHotfix(mr.iid, false)}
            >
              Withdraw hotfix
            </button>
          ) : confirming ? (
            <div
              className="priority-confirm"
              role="group"
              aria-label={`Confirm hotfix for !${mr.iid}`}
              onKeyDown={(event) => {
                if (event.key === "Escape") setConfirming(false);
              }}
            >
              <p>
                A hotfix is tested alone next, ahead of everyone; a running batch finishes first.
              </p>
              <button
                ref={confirmRef}
                type="button"
                className="button button-primary"
                onClick={async () => {
                  if (await onHotfix(mr.iid, true)) setConfirming(false);
                }}
              >
                Confirm hotfix
              </button>
              <button type="button" className="button" onClick={() => setConfirming(false)}>
                Cancel
              </button>
            </div>
          ) : (
            <button
              ref={markRef}
              type="button"
              className="button priority-hotfix-button"
              aria-label={`Mark !${mr.iid} as hotfix`}
              onClick={() => setConfirming(true)}
            >
              Hotfix…
            </button>
          )}
        </div>
      )}
    </div>
  );
}
