/** One merge request in a list: "!iid title" linking to its page, and what matters about
 * it in the list it is in (place in line, waiting time, reasons, when it merged). */
import { Link } from "react-router-dom";
import type { MergeRequest } from "../api/client";
import { Reasons } from "./Reasons";
import { Elapsed, RelativeTime } from "./RelativeTime";
import { HotfixBadge, PriorityBadge, StatusBadge } from "./StatusBadge";
import "./MergeRequestItem.css";

export type ItemVariant = "queued" | "not_ready" | "rejected" | "merged" | "running";

export function mergeRequestPath(projectId: number, iid: number, search = ""): string {
  return `/projects/${projectId}/mrs/${iid}${search}`;
}

export function MergeRequestItem({
  mr,
  position,
  variant,
  search = "",
  showTarget = false,
  outcome,
}: {
  mr: MergeRequest;
  position?: number | null;
  variant: ItemVariant;
  /** The page's `?target=…`, carried to the MR page. */
  search?: string;
  showTarget?: boolean;
  /** In a batch: what became of it. */
  outcome?: string;
}) {
  return (
    <li className={`mr-item mr-item-${variant}${mr.hotfix ? " mr-item-hotfix" : ""}`}>
      {variant === "queued" && (
        <span className="mr-position" aria-label={position ? `Position ${position}` : "Position unknown"}>
          {position ? `#${position}` : "#–"}
        </span>
      )}
      <div className="mr-body">
        <div className="mr-title-row">
          <Link className="mr-link" to={mergeRequestPath(mr.project_id, mr.iid, search)}>
            <span className="mr-iid">!{mr.iid}</span> {mr.title || mr.source_branch}
          </Link>
          {mr.hotfix && <HotfixBadge />}
          <PriorityBadge priority={mr.priority} />
          {variant === "running" && <StatusBadge status={mr.status} />}
          {outcome && <span className={`badge badge-outcome badge-outcome-${outcome}`}>{outcome}</span>}
        </div>
        <div className="mr-meta">
          <span className="mr-branch" title="Source branch">
            {mr.source_branch}
            {showTarget && (
              <>
                {" → "}
                <span title="Target branch">{mr.target_branch}</span>
              </>
            )}
          </span>
          {variant === "queued" && mr.ready_since && <Elapsed since={mr.ready_since} prefix="waiting " />}
          {variant === "merged" && <RelativeTime value={mr.updated_at} prefix="merged " />}
          {variant === "rejected" && <RelativeTime value={mr.updated_at} prefix="rejected " />}
          {variant === "not_ready" && mr.draft && <span>draft</span>}
          {mr.strikes > 0 && variant !== "merged" && (
            <span title="Times it was in a red batch">
              {mr.strikes} {mr.strikes === 1 ? "strike" : "strikes"}
            </span>
          )}
        </div>
        {(variant === "not_ready" || variant === "rejected") && (
          <Reasons reasons={mr.reasons} tone={variant === "rejected" ? "bad" : "muted"} />
        )}
      </div>
    </li>
  );
}
