/** What every page needs: the deployment's config, the signed-in session, the API client
 * and the live-update stream. Provided once by `App`; tests provide their own. */
import { createContext, useContext, useEffect, useRef } from "react";
import type { ApiClient } from "../api/client";
import type { Session } from "../auth/session";
import type { AppConfig } from "../config";
import type { LiveMessage } from "../live/updates";

export type LiveListener = (message: LiveMessage) => void;

/** One WebSocket for the app; pages subscribe to what it brings. */
export interface LiveHub {
  subscribe(listener: LiveListener): () => void;
}

export interface AppServices {
  config: AppConfig;
  session: Session;
  api: ApiClient;
  live: LiveHub;
}

export const AppContext = createContext<AppServices | null>(null);

export function useServices(): AppServices {
  const services = useContext(AppContext);
  if (!services) throw new Error("useServices outside <AppContext.Provider>");
  return services;
}

export const useApi = (): ApiClient => useServices().api;

/** Calls `listener` for each live message of `projectId` (all projects when undefined)
 * while the component is mounted; the latest `listener` is always the one called. */
export function useLive(projectId: number | undefined, listener: LiveListener): void {
  const { live } = useServices();
  const latest = useRef(listener);
  latest.current = listener;
  useEffect(
    () =>
      live.subscribe((message) => {
        if (projectId === undefined || message.project_id === projectId) latest.current(message);
      }),
    [live, projectId],
  );
}
