/** How the event log names what happened and who did it. */
import type { AuditEntry, Schemas } from "../../api/client";

export type AuditAction = Schemas["AuditAction"];

export const ACTION_WORDS: Record<AuditAction, string> = {
  status_changed: "Status changed",
  batch_step: "Batch step",
  config_changed: "Config changed",
  priority_changed: "Priority changed",
  hotfix: "Hotfix",
  grant_changed: "Grant changed",
  project_connected: "Project connected",
  project_disconnected: "Project disconnected",
};

export const ACTIONS = Object.keys(ACTION_WORDS) as AuditAction[];

/** The tone class (see styles.css) an action's tag is tinted with; the rest stay plain. */
const ACTION_TONES: Partial<Record<AuditAction, string>> = {
  hotfix: "hotfix",
  config_changed: "info",
  grant_changed: "info",
  priority_changed: "info",
  project_disconnected: "bad",
};

export function actionToneClass(action: string): string {
  const tone = ACTION_TONES[action as AuditAction];
  return tone ? `tone-${tone}` : "";
}

export function actionWords(action: string): string {
  return ACTION_WORDS[action as AuditAction] ?? action.replace(/_/g, " ");
}

/** The queue's own actors, as people call them; anyone else is a username. */
const QUEUE_ACTORS: Record<string, string> = {
  "merge-assist": "Merge Assist",
  watcher: "Merge Assist (watcher)",
};

export function actorName(actor: string): string {
  return QUEUE_ACTORS[actor] ?? actor;
}

export function isQueueActor(actor: string): boolean {
  return actor in QUEUE_ACTORS;
}

export interface EventFilters {
  action: string;
  actor: string;
  mergeRequest: string;
}

export const NO_FILTERS: EventFilters = { action: "", actor: "", mergeRequest: "" };

/** The merge request number the filter asks for, when it is one. */
export function mergeRequestOf(filters: EventFilters): number | undefined {
  const text = filters.mergeRequest.trim().replace(/^!/, "");
  if (!/^\d+$/.test(text)) return undefined;
  const iid = Number(text);
  return iid > 0 ? iid : undefined;
}

export function matches(entry: AuditEntry, filters: EventFilters): boolean {
  if (filters.action && entry.action !== filters.action) return false;
  const actor = filters.actor.trim().toLowerCase();
  if (
    actor &&
    !entry.actor.toLowerCase().includes(actor) &&
    !actorName(entry.actor).toLowerCase().includes(actor)
  ) {
    return false;
  }
  const iid = mergeRequestOf(filters);
  if (iid !== undefined && entry.merge_request !== iid) return false;
  return true;
}

/** `incoming` entries not already in `known`, in their order; the log's ids are stable, so
 * an entry seen live and then in a page is one entry. */
export function fresh(incoming: AuditEntry[], known: AuditEntry[]): AuditEntry[] {
  const seen = new Set(known.map((entry) => entry.id));
  return incoming.filter((entry) => {
    if (seen.has(entry.id)) return false;
    seen.add(entry.id);
    return true;
  });
}
