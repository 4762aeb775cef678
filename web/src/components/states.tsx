/** The three states every data view has besides its data: loading, failed, empty. */
import type { ReactNode } from "react";
import { ApiError } from "../api/client";

export function Loading({ what }: { what: string }) {
  return (
    <div className="state state-loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" />
      Loading {what}…
    </div>
  );
}

export function describeError(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 401) return "Your session has ended. Sign in again.";
    if (error.status === 403) return "You do not have access to this. Ask an admin for a role.";
    if (error.status === 404) return "Not found. It may have been removed.";
    if (error.status === 502) return `GitLab refused or could not be reached: ${error.message}`;
    if (error.status === 503) return "The service is briefly unavailable. Try again.";
    return error.message;
  }
  if (error instanceof TypeError) return "The API cannot be reached. Check your connection.";
  return error instanceof Error ? error.message : String(error);
}

export function ErrorState({
  error,
  onRetry,
  title = "Something went wrong",
}: {
  error: unknown;
  onRetry?: () => void;
  title?: string;
}) {
  return (
    <div className="state state-error" role="alert">
      <strong>{title}</strong>
      <p>{describeError(error)}</p>
      {onRetry && (
        <button type="button" className="button" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function EmptyState({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="state state-empty">
      <strong>{title}</strong>
      {children && <p>{children}</p>}
    </div>
  );
}
