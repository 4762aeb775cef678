import { act, screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import type { Health } from "../api/client";
import { renderPage, type FakeRoutes } from "../test/render";
import { HealthPage } from "./HealthPage";

function health(extra: Partial<Health> = {}): Health {
  return {
    status: "ok",
    version: "1.4.0",
    checked_at: new Date(Date.now() - 5 * 60_000).toISOString(),
    store: "ok",
    gitlab: { url: "https://gitlab.example.com", reachable: true, error: null },
    projects: [
      {
        project_id: 1,
        path: "demo/shop",
        paused: false,
        queue: { messages: 2, in_flight: 1, dead_letters: 0 },
        executions: { RUNNING: 1, SUCCEEDED: 4 },
        problems: [],
      },
    ],
    ...extra,
  };
}

function renderHealth(routes: FakeRoutes) {
  return renderPage(<HealthPage />, { path: "/health", url: "/health", routes });
}

describe("HealthPage", () => {
  it("shows a healthy deployment", async () => {
    renderHealth({ "GET /health": health() });
    expect(await screen.findByText("All systems healthy")).toBeInTheDocument();
    expect(screen.getByText("GitLab reachable")).toBeInTheDocument();
    const card = screen.getByRole("region", { name: "demo/shop" });
    expect(within(card).getByText("Queue messages").nextSibling).toHaveTextContent("2");
    expect(within(card).getByText("In flight").nextSibling).toHaveTextContent("1");
    expect(within(card).getByText("Dead letters").nextSibling).toHaveTextContent("0");
    expect(within(card).getByText(/Running/)).toHaveTextContent("Running: 1");
    expect(within(card).getByText("No problems")).toBeInTheDocument();
    expect(screen.getByText(/^Checked/)).toHaveTextContent("Checked 5 min ago");
  });

  it("shows dead letters as a problem, with how to replay them", async () => {
    renderHealth({
      "GET /health": health({
        status: "degraded",
        projects: [
          {
            project_id: 7,
            path: "demo/api",
            paused: true,
            queue: { messages: 0, in_flight: 0, dead_letters: 3 },
            executions: { FAILED: 2 },
            problems: [
              "3 event(s) in the dead-letter queue",
              "2 batch execution(s) failed in the last 24 hours",
            ],
          },
        ],
      }),
    });
    const card = await screen.findByRole("region", { name: "demo/api" });
    expect(screen.getByText("Something needs attention")).toBeInTheDocument();
    expect(within(card).getByText("Dead letters").parentElement).toHaveClass("health-stat-bad");
    expect(within(card).getByText("merge-assist dlq redrive --project 7")).toBeInTheDocument();
    expect(within(card).getByText("3 event(s) in the dead-letter queue")).toBeInTheDocument();
    expect(within(card).queryByText("No problems")).not.toBeInTheDocument();
    expect(within(card).getByText(/Paused/)).toBeInTheDocument();
  });

  it("says when GitLab is unreachable, and why", async () => {
    renderHealth({
      "GET /health": health({
        status: "degraded",
        gitlab: { url: "https://gitlab.example.com", reachable: false, error: "ConnectTimeout" },
      }),
    });
    expect(await screen.findByText("GitLab unreachable")).toBeInTheDocument();
    expect(screen.getByText("ConnectTimeout")).toBeInTheDocument();
    expect(screen.getByText(/GitLab cannot be reached/)).toBeInTheDocument();
  });

  it("checks again on Refresh", async () => {
    const page = renderHealth({ "GET /health": health() });
    await screen.findByText("All systems healthy");
    page.api.routes["GET /health"] = health({
      gitlab: { url: "https://gitlab.example.com", reachable: false, error: "HTTPError" },
      status: "degraded",
    });
    await page.user.click(screen.getByRole("button", { name: "Refresh" }));
    expect(await screen.findByText("GitLab unreachable")).toBeInTheDocument();
    await waitFor(() => expect(page.api.callsTo("GET /health")).toHaveLength(2));
  });

  it("checks again every 30 seconds, but not while the tab is hidden", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    try {
      const page = renderHealth({ "GET /health": health() });
      await screen.findByText("All systems healthy");
      await act(async () => {
        vi.advanceTimersByTime(30_000);
      });
      await waitFor(() => expect(page.api.callsTo("GET /health")).toHaveLength(2));

      Object.defineProperty(document, "visibilityState", { value: "hidden", configurable: true });
      await act(async () => {
        vi.advanceTimersByTime(60_000);
      });
      expect(page.api.callsTo("GET /health")).toHaveLength(2);

      // Back in view after a long while: it checks at once.
      Object.defineProperty(document, "visibilityState", { value: "visible", configurable: true });
      act(() => {
        document.dispatchEvent(new Event("visibilitychange"));
      });
      await waitFor(() => expect(page.api.callsTo("GET /health")).toHaveLength(3));
    } finally {
      Reflect.deleteProperty(document, "visibilityState");
      vi.useRealTimers();
    }
  });
});
