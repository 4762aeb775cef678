/** The live-update WebSocket: `{type, project_id, data}` messages for the projects the
 * signed-in user may view, reconnecting with backoff and a fresh token. */
import type { AuditEntry, Batch, MergeRequest, ProjectConfig } from "../api/client";
import { SignedOut } from "../auth/session";

export type LiveMessage =
  | { type: "merge_request"; project_id: number; data: MergeRequest }
  | { type: "batch"; project_id: number; data: Batch }
  | { type: "event"; project_id: number; data: AuditEntry }
  | { type: "project"; project_id: number; data: ProjectConfig }
  | { type: "project_removed"; project_id: number; data: unknown };

export type LiveState = "connecting" | "open" | "closed";

export interface LiveOptions {
  url: string;
  accessToken: () => Promise<string>;
  /** Follow one project only (the server checks the user may view it). */
  project?: number;
  onMessage: (message: LiveMessage) => void;
  onState?: (state: LiveState) => void;
  createSocket?: (url: string) => WebSocket;
}

const MAX_BACKOFF_MS = 30_000;

export function isLiveMessage(value: unknown): value is LiveMessage {
  if (typeof value !== "object" || value === null) return false;
  const message = value as Record<string, unknown>;
  return (
    typeof message.type === "string" &&
    typeof message.project_id === "number" &&
    ["merge_request", "batch", "event", "project", "project_removed"].includes(message.type)
  );
}

/** Opens the socket and keeps it open until the returned function is called. */
export function connectLive(options: LiveOptions): () => void {
  const create = options.createSocket ?? ((url: string) => new WebSocket(url));
  let socket: WebSocket | null = null;
  let stopped = false;
  let attempt = 0;
  let retry: ReturnType<typeof setTimeout> | undefined;

  const open = async (): Promise<void> => {
    options.onState?.("connecting");
    let token: string;
    try {
      token = await options.accessToken();
    } catch (error) {
      options.onState?.("closed");
      // Signed out: nothing to reconnect for. Anything else (offline) passes.
      if (!(error instanceof SignedOut)) retryLater();
      return;
    }
    if (stopped) return;
    const url = new URL(options.url, window.location.href);
    url.protocol = url.protocol.replace(/^http/, "ws");
    url.searchParams.set("token", token);
    if (options.project !== undefined) url.searchParams.set("project", String(options.project));
    socket = create(url.toString());
    socket.onopen = () => {
      attempt = 0;
      options.onState?.("open");
    };
    socket.onmessage = (event: MessageEvent) => {
      try {
        const message: unknown = JSON.parse(String(event.data));
        if (isLiveMessage(message)) options.onMessage(message);
      } catch {
        // Not ours; the API only sends JSON.
      }
    };
    socket.onclose = () => {
      socket = null;
      options.onState?.("closed");
      retryLater();
    };
  };

  function retryLater(): void {
    if (stopped) return;
    const delay = Math.min(1000 * 2 ** attempt, MAX_BACKOFF_MS);
    attempt += 1;
    retry = setTimeout(() => void open(), delay);
  }

  void open();
  return () => {
    stopped = true;
    clearTimeout(retry);
    socket?.close();
  };
}
