/** The queue order as the priority manager sees it: one line per target branch, hotfixes
 * pinned at the top (the server orders them first and refuses placements next to them),
 * and the request that reproduces a local move on the server. */
import type { MergeRequest, MergeRequestView } from "../../api/client";

export interface Line {
  branch: string;
  /** In queue order: hotfixes first, as the server sorted them. */
  items: MergeRequest[];
}

/** One line per branch: the chosen target only, or every configured target branch (in the
 * config's order) plus any branch that still has queued MRs after leaving the config. */
export function toLines(
  views: MergeRequestView[],
  configured: string[],
  target: string | undefined,
): Line[] {
  const sorted = [...views].sort(
    (a, b) => (a.position ?? Number.MAX_SAFE_INTEGER) - (b.position ?? Number.MAX_SAFE_INTEGER),
  );
  const branches = target ? [target] : [...configured];
  for (const view of sorted) {
    if (!target && !branches.includes(view.merge_request.target_branch)) {
      branches.push(view.merge_request.target_branch);
    }
  }
  return branches.map((branch) => ({
    branch,
    items: sorted
      .filter((view) => view.merge_request.target_branch === branch)
      .map((view) => view.merge_request),
  }));
}

export type Placement = { before: number } | { after: number };

/** Where `iid` stands in `order` as a request: right before the MR now after it, or, at
 * the end of the line, right after the MR now before it. Null when it has no neighbour
 * it may be placed next to (alone, or only hotfixes around it). */
export function placementFor(order: MergeRequest[], iid: number): Placement | null {
  const index = order.findIndex((mr) => mr.iid === iid);
  if (index < 0) return null;
  const next = order[index + 1];
  if (next && !next.hotfix) return { before: next.iid };
  const previous = order[index - 1];
  if (!next && previous && !previous.hotfix) return { after: previous.iid };
  return null;
}

export function moveItem<T>(items: T[], from: number, to: number): T[] {
  const copy = [...items];
  const [moved] = copy.splice(from, 1);
  if (moved === undefined) return items;
  copy.splice(to, 0, moved);
  return copy;
}

/** The line with `mr` updated in place; a new hotfix goes to the end of the hotfixes. */
export function withUpdated(line: Line, mr: MergeRequest): Line {
  const others = line.items.filter((item) => item.iid !== mr.iid);
  const index = line.items.findIndex((item) => item.iid === mr.iid);
  if (index < 0) return line;
  if (mr.hotfix && !line.items[index]?.hotfix) {
    const hotfixes = others.filter((item) => item.hotfix).length;
    others.splice(hotfixes, 0, mr);
    return { ...line, items: others };
  }
  const items = [...line.items];
  items[index] = mr;
  return { ...line, items };
}
