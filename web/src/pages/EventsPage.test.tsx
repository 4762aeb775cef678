import { act, screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import type { AuditEntry } from "../api/client";
import { meWith, renderPage, reply, type FakeRoutes } from "../test/render";
import { EventsPage } from "./EventsPage";

let clock = Date.now();
function entry(id: string, extra: Partial<AuditEntry> = {}): AuditEntry {
  clock -= 60_000;
  return {
    project_id: 1,
    id,
    at: new Date(clock).toISOString(),
    action: "status_changed",
    actor: "merge-assist",
    summary: `summary of ${id}`,
    merge_request: null,
    batch_id: null,
    details: {},
    ...extra,
  };
}

function renderEvents(routes: FakeRoutes) {
  return renderPage(<EventsPage />, {
    path: "/projects/:projectId/events",
    url: "/projects/1/events",
    me: meWith({ 1: ["viewer"] }),
    routes,
  });
}

function rows(): HTMLElement[] {
  const table = screen.getByRole("table");
  return within(table).getAllByRole("row").slice(1);
}

describe("EventsPage", () => {
  it("lists events newest first with who, what and links", async () => {
    const page = renderEvents({
      "GET /projects/1/events": {
        items: [
          entry("e1", { merge_request: 7, batch_id: "b-3", summary: "!7 queued → testing" }),
          entry("e2", { actor: "alice", action: "config_changed", summary: "batch_size 5 → 8" }),
        ],
        next_cursor: null,
      },
    });
    await screen.findByRole("table");
    expect(page.api.callsTo("GET /projects/1/events")[0]!.query.get("limit")).toBe("50");
    const [first, second] = rows();
    expect(within(first!).getByText("Merge Assist")).toBeInTheDocument();
    expect(within(first!).getByText("Status changed")).toBeInTheDocument();
    expect(within(first!).getByText("!7 queued → testing")).toBeInTheDocument();
    expect(within(first!).getByRole("link", { name: "!7" })).toHaveAttribute("href", "/projects/1/mrs/7");
    expect(within(first!).getByRole("link", { name: "Batch b-3" })).toHaveAttribute(
      "href",
      "/projects/1/batches/b-3",
    );
    expect(within(first!).getByText(/min ago/).tagName).toBe("TIME");
    expect(within(second!).getByText("alice")).toBeInTheDocument();
    expect(within(second!).getByText("Config changed")).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Load older" })).not.toBeInTheDocument();
  });

  it("prepends live events, once each", async () => {
    const page = renderEvents({
      "GET /projects/1/events": { items: [entry("old")], next_cursor: null },
    });
    await screen.findByRole("table");
    expect(screen.getByLabelText("Live tail")).toBeChecked();
    const live = entry("new", { summary: "!9 new → queued", merge_request: 9 });
    act(() => {
      page.live.emit({ type: "event", project_id: 1, data: live });
      page.live.emit({ type: "event", project_id: 1, data: live });
      page.live.emit({ type: "event", project_id: 2, data: entry("elsewhere") });
    });
    expect(rows()).toHaveLength(2);
    expect(rows()[0]).toHaveTextContent("!9 new → queued");
  });

  it("holds live events back while the live tail is off", async () => {
    const page = renderEvents({
      "GET /projects/1/events": { items: [entry("old")], next_cursor: null },
    });
    await screen.findByRole("table");
    await page.user.click(screen.getByLabelText("Live tail"));
    act(() => {
      page.live.emit({ type: "event", project_id: 1, data: entry("n1", { summary: "first new" }) });
      page.live.emit({ type: "event", project_id: 1, data: entry("n2", { summary: "second new" }) });
    });
    expect(rows()).toHaveLength(1);
    await page.user.click(screen.getByRole("button", { name: "2 new events — show" }));
    expect(rows().map((row) => row.textContent)).toEqual([
      expect.stringContaining("second new"),
      expect.stringContaining("first new"),
      expect.stringContaining("summary of old"),
    ]);
    expect(screen.queryByRole("button", { name: /new events/ })).not.toBeInTheDocument();
  });

  it("filters the loaded events by action and actor", async () => {
    const page = renderEvents({
      "GET /projects/1/events": {
        items: [
          entry("a", { action: "priority_changed", actor: "alice", summary: "!3 moved before !2" }),
          entry("b", { action: "status_changed", summary: "!2 queued → testing" }),
          entry("c", { action: "priority_changed", actor: "bob", summary: "!4 priority 0 → 5" }),
        ],
        next_cursor: null,
      },
    });
    await screen.findByRole("table");
    await page.user.selectOptions(screen.getByLabelText("Action"), "Priority changed");
    expect(rows()).toHaveLength(2);
    await page.user.type(screen.getByLabelText("Actor"), "bo");
    expect(rows()).toHaveLength(1);
    expect(rows()[0]).toHaveTextContent("!4 priority 0 → 5");

    await page.user.clear(screen.getByLabelText("Actor"));
    await page.user.type(screen.getByLabelText("Actor"), "nobody");
    expect(screen.getByText("No events match these filters")).toBeInTheDocument();
    await page.user.click(screen.getByRole("button", { name: "Clear filters" }));
    expect(rows()).toHaveLength(3);
  });

  it("asks the API for one merge request's events", async () => {
    const page = renderEvents({
      "GET /projects/1/events": (call) =>
        call.query.get("merge_request") === "12"
          ? { items: [entry("m", { merge_request: 12, summary: "!12 rejected" })], next_cursor: null }
          : { items: [entry("x", { merge_request: 3 })], next_cursor: null },
    });
    await screen.findByRole("table");
    await page.user.type(screen.getByLabelText("Merge request"), "12");
    await waitFor(() => expect(screen.getByRole("table")).toHaveTextContent("!12 rejected"));
    const calls = page.api.callsTo("GET /projects/1/events");
    expect(calls.at(-1)!.query.get("merge_request")).toBe("12");
    // Typing "12" is one request for !12, not one for !1 first.
    expect(calls.filter((call) => call.query.get("merge_request") === "1")).toHaveLength(0);
    expect(rows()).toHaveLength(1);
  });

  it("follows only the chosen merge request live", async () => {
    const page = renderEvents({
      "GET /projects/1/events": { items: [entry("m", { merge_request: 12 })], next_cursor: null },
    });
    await screen.findByRole("table");
    await page.user.type(screen.getByLabelText("Merge request"), "12");
    await waitFor(() =>
      expect(page.api.callsTo("GET /projects/1/events").at(-1)!.query.get("merge_request")).toBe("12"),
    );
    act(() => {
      page.live.emit({ type: "event", project_id: 1, data: entry("o", { merge_request: 4, summary: "other" }) });
      page.live.emit({ type: "event", project_id: 1, data: entry("t", { merge_request: 12, summary: "this one" }) });
    });
    expect(rows()).toHaveLength(2);
    expect(rows()[0]).toHaveTextContent("this one");
  });

  it("loads older events with the cursor", async () => {
    const page = renderEvents({
      "GET /projects/1/events": (call) =>
        call.query.get("cursor") === "page-2"
          ? { items: [entry("older", { summary: "an older one" })], next_cursor: null }
          : { items: [entry("newer")], next_cursor: "page-2" },
    });
    await screen.findByRole("table");
    await page.user.click(screen.getByRole("button", { name: "Load older" }));
    await waitFor(() => expect(rows()).toHaveLength(2));
    expect(page.api.callsTo("GET /projects/1/events").at(-1)!.query.get("cursor")).toBe("page-2");
    expect(rows()[1]).toHaveTextContent("an older one");
    expect(screen.queryByRole("button", { name: "Load older" })).not.toBeInTheDocument();
  });

  it("says when there are no events, and when they cannot be loaded", async () => {
    renderEvents({ "GET /projects/1/events": { items: [], next_cursor: null } });
    expect(await screen.findByText("No events yet")).toBeInTheDocument();
  });

  it("shows the API's refusal", async () => {
    renderEvents({ "GET /projects/1/events": reply(500, { message: "the store is down" }) });
    expect(await screen.findByRole("alert")).toHaveTextContent("the store is down");
  });
});
