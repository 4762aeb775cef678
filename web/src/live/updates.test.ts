import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { SignedOut } from "../auth/session";
import { connectLive, type LiveMessage, type LiveState } from "./updates";

class FakeSocket {
  static all: FakeSocket[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: (() => void) | null = null;
  closed = false;
  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  open() {
    this.onopen?.();
  }
  receive(data: unknown) {
    this.onmessage?.(new MessageEvent("message", { data: typeof data === "string" ? data : JSON.stringify(data) }));
  }
  drop() {
    this.onclose?.();
  }
  close() {
    this.closed = true;
    this.onclose?.();
  }
}

const batchMessage: LiveMessage = {
  type: "project",
  project_id: 1,
  data: {
    project_id: 1,
    batch_size: 5,
    batch_size_max: 8,
    train_depth: 2,
    ci_timeout_minutes: 60,
    skip_target_pipeline: false,
    flaky_retries: 0,
    bisect_ways: 3,
    landing: "push",
    strategy: "batch",
    paused: true,
    version: 2,
  },
};

describe("connectLive", () => {
  let messages: LiveMessage[];
  let states: LiveState[];
  let tokens: number;
  let stop: () => void;

  beforeEach(() => {
    vi.useFakeTimers();
    FakeSocket.all = [];
    messages = [];
    states = [];
    tokens = 0;
    stop = connectLive({
      url: "wss://live.test/ws",
      project: 1,
      accessToken: async () => `token-${++tokens}`,
      onMessage: (message) => messages.push(message),
      onState: (state) => states.push(state),
      createSocket: (url) => new FakeSocket(url) as unknown as WebSocket,
    });
  });
  afterEach(() => {
    stop();
    vi.useRealTimers();
  });

  const latest = () => FakeSocket.all.at(-1) as FakeSocket;

  it("connects with the token and the project, and reports its state", async () => {
    await vi.advanceTimersByTimeAsync(0);
    const url = new URL(latest().url);
    expect(url.searchParams.get("token")).toBe("token-1");
    expect(url.searchParams.get("project")).toBe("1");
    latest().open();
    expect(states).toEqual(["connecting", "open"]);
  });

  it("passes on its messages and ignores anything else", async () => {
    await vi.advanceTimersByTimeAsync(0);
    latest().open();
    latest().receive("not json");
    latest().receive({ type: "hello", project_id: 1, data: {} });
    latest().receive({ type: "batch", data: {} });
    latest().receive({ action: "ping" });
    latest().receive(batchMessage);
    expect(messages).toEqual([batchMessage]);
  });

  it("reconnects with a growing backoff and a fresh token, resetting once open", async () => {
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSocket.all).toHaveLength(1);

    latest().drop();
    await vi.advanceTimersByTimeAsync(999);
    expect(FakeSocket.all).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeSocket.all).toHaveLength(2);
    expect(new URL(latest().url).searchParams.get("token")).toBe("token-2");

    latest().drop();
    await vi.advanceTimersByTimeAsync(1999);
    expect(FakeSocket.all).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeSocket.all).toHaveLength(3);

    latest().drop();
    await vi.advanceTimersByTimeAsync(4000);
    expect(FakeSocket.all).toHaveLength(4);

    // Once a connection opens, the next drop starts again at a second.
    latest().open();
    latest().drop();
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeSocket.all).toHaveLength(5);
    expect(states.filter((state) => state === "closed")).toHaveLength(4);
  });

  it("never waits longer than 30 s between attempts", async () => {
    await vi.advanceTimersByTimeAsync(0);
    for (let attempt = 0; attempt < 8; attempt += 1) {
      latest().drop();
      await vi.advanceTimersByTimeAsync(30_000);
    }
    expect(FakeSocket.all).toHaveLength(9);
  });

  it("tries again when no token can be had for now, but not once signed out", async () => {
    stop();
    FakeSocket.all = [];
    const failures: Error[] = [new Error("offline"), new SignedOut("refused")];
    const stopAgain = connectLive({
      url: "wss://live.test/ws",
      accessToken: async () => {
        const failure = failures.shift();
        if (failure) throw failure;
        return "token";
      },
      onMessage: () => undefined,
      onState: (state) => states.push(state),
      createSocket: (url) => new FakeSocket(url) as unknown as WebSocket,
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(states.at(-1)).toBe("closed");
    await vi.advanceTimersByTimeAsync(1000);
    // The second attempt finds the session ended: no socket, and no more attempts.
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeSocket.all).toHaveLength(0);
    expect(failures).toHaveLength(0);
    stopAgain();
  });

  it("stays closed once stopped", async () => {
    await vi.advanceTimersByTimeAsync(0);
    latest().open();
    stop();
    expect(latest().closed).toBe(true);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeSocket.all).toHaveLength(1);
  });
});
