/** The app's one live-update socket, shared: pages subscribe to its messages through
 * `useLive`, the header shows whether it is connected. */
import { useCallback, useSyncExternalStore } from "react";
import { connectLive, type LiveMessage, type LiveOptions, type LiveState } from "../live/updates";
import { useServices, type LiveHub, type LiveListener } from "./context";

/** A hub that also knows whether its socket is open (the header's indicator). */
export interface ConnectedHub extends LiveHub {
  state(): LiveState;
  subscribeState(listener: () => void): () => void;
}

type Connect = (options: LiveOptions) => () => void;

export class SocketHub implements ConnectedHub {
  private readonly listeners = new Set<LiveListener>();
  private readonly stateListeners = new Set<() => void>();
  private current: LiveState = "connecting";
  private stopSocket: (() => void) | null = null;

  constructor(
    private readonly options: Omit<LiveOptions, "onMessage" | "onState">,
    private readonly connect: Connect = connectLive,
  ) {}

  /** Opens the socket (once; again after `close`). Subscribers stay across reopening, so a
   * remount of the shell does not lose the pages' subscriptions. */
  open(): void {
    if (this.stopSocket) return;
    this.stopSocket = this.connect({
      ...this.options,
      onMessage: (message) => this.publish(message),
      onState: (state) => this.setState(state),
    });
  }

  private setState(state: LiveState): void {
    if (state === this.current) return;
    this.current = state;
    for (const listener of [...this.stateListeners]) listener();
  }

  subscribe(listener: LiveListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  state(): LiveState {
    return this.current;
  }

  subscribeState(listener: () => void): () => void {
    this.stateListeners.add(listener);
    return () => {
      this.stateListeners.delete(listener);
    };
  }

  /** Delivers a message to every subscriber; one failing subscriber must not starve the
   * others, so each is called on its own. */
  publish(message: LiveMessage): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(message);
      } catch (error) {
        console.error("live update listener failed", error);
      }
    }
  }

  close(): void {
    this.stopSocket?.();
    this.stopSocket = null;
    this.setState("closed");
  }
}

function isConnected(hub: LiveHub): hub is ConnectedHub {
  return typeof (hub as Partial<ConnectedHub>).subscribeState === "function";
}

const noSubscription = (): (() => void) => () => undefined;

/** The socket's state; a hub that cannot tell (a test's) counts as open. */
export function useLiveState(): LiveState {
  const { live } = useServices();
  const connected = isConnected(live) ? live : null;
  const subscribe = useCallback(
    (listener: () => void) => (connected ? connected.subscribeState(listener) : noSubscription()),
    [connected],
  );
  return useSyncExternalStore(subscribe, () => (connected ? connected.state() : "open"));
}
