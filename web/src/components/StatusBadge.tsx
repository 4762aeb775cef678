/** Status and batch-state badges: a colour and a word, never the colour alone. */
import type { Batch, StatusCategory } from "../api/client";
import "./badges.css";

const STATUS: Record<StatusCategory, { label: string; tone: string }> = {
  not_ready: { label: "Not ready", tone: "muted" },
  queued: { label: "Queued", tone: "info" },
  batching: { label: "Batching", tone: "warn" },
  testing: { label: "Testing", tone: "warn" },
  merged: { label: "Merged", tone: "ok" },
  rejected: { label: "Rejected", tone: "bad" },
};

const BATCH: Record<Batch["state"], { label: string; tone: string }> = {
  building: { label: "Building", tone: "warn" },
  testing: { label: "Testing", tone: "warn" },
  landing: { label: "Landing", tone: "info" },
  landed: { label: "Landed", tone: "ok" },
  failed: { label: "Failed", tone: "bad" },
  cancelled: { label: "Cancelled", tone: "muted" },
};

export function statusLabel(status: StatusCategory): string {
  return STATUS[status].label;
}

export function StatusBadge({ status }: { status: StatusCategory }) {
  const { label, tone } = STATUS[status];
  return <span className={`badge badge-${tone}`}>{label}</span>;
}

export function BatchStateBadge({ state }: { state: Batch["state"] }) {
  const { label, tone } = BATCH[state];
  return (
    <span className={`badge badge-${tone}`}>
      {(state === "building" || state === "testing" || state === "landing") && (
        <span className="badge-pulse" aria-hidden="true" />
      )}
      {label}
    </span>
  );
}

export function HotfixBadge() {
  return <span className="badge badge-hotfix">Hotfix</span>;
}

export function PriorityBadge({ priority }: { priority: number }) {
  if (priority === 0) return null;
  return (
    <span className="badge badge-outline" title="Higher goes first">
      Priority {priority > 0 ? `+${priority}` : priority}
    </span>
  );
}

export function isRunning(state: Batch["state"]): boolean {
  return state === "building" || state === "testing" || state === "landing";
}
