import { act, screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { auditEntry, mergeRequest, view } from "../test/shell-fixtures";
import { renderPage } from "../test/render";
import { MergeRequestPage } from "./MergeRequestPage";

const minutesAgo = (minutes: number) => new Date(Date.now() - minutes * 60_000).toISOString();

function renderMr(mr = mergeRequest(7, { title: "Speed up search" }), position: number | null = 3) {
  return renderPage(<MergeRequestPage />, {
    path: "/projects/:projectId/mrs/:iid",
    url: "/projects/1/mrs/7",
    routes: {
      "GET /projects/1/mrs/7": view(mr, position),
      "GET /projects/1/events": (call) =>
        call.query.get("cursor") === "older"
          ? { items: [auditEntry("e0", { summary: "Recognised for merge", at: minutesAgo(90) })], next_cursor: null }
          : {
              items: [
                auditEntry("e2", { summary: "Queued at position 3", actor: "alice", at: minutesAgo(5) }),
                auditEntry("e1", { summary: "Became ready", at: minutesAgo(30) }),
              ],
              next_cursor: "older",
            },
    },
  });
}

describe("MergeRequestPage", () => {
  it("shows the MR, its place in line and its timeline newest first", async () => {
    const page = renderMr();
    expect(await screen.findByRole("heading", { level: 1, name: "!7 Speed up search" })).toBeInTheDocument();
    expect(screen.getByText("Queued")).toBeInTheDocument();
    expect(screen.getByText("#3 on main")).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "Open in GitLab" })).toHaveAttribute(
      "href",
      "https://gitlab.test/demo/shop/-/merge_requests/7",
    );

    const timeline = screen.getByRole("region", { name: "Timeline" });
    await waitFor(() => expect(within(timeline).getAllByRole("listitem")).toHaveLength(2));
    const entries = within(timeline).getAllByRole("listitem");
    expect(entries[0]).toHaveTextContent("Queued at position 3");
    expect(entries[0]).toHaveTextContent("alice");
    expect(entries[1]).toHaveTextContent("Became ready");
    expect(page.api.callsTo("GET /projects/1/events")[0]?.query.get("merge_request")).toBe("7");

    await page.user.click(within(timeline).getByRole("button", { name: "Load older" }));
    await waitFor(() => expect(within(timeline).getAllByRole("listitem")).toHaveLength(3));
    expect(within(timeline).getAllByRole("listitem")[2]).toHaveTextContent("Recognised for merge");
    expect(within(timeline).queryByRole("button", { name: "Load older" })).not.toBeInTheDocument();
  });

  it("adds this MR's live events at the top and follows its status", async () => {
    const mr = mergeRequest(7, { title: "Speed up search" });
    const page = renderMr(mr);
    const timeline = await screen.findByRole("region", { name: "Timeline" });
    await waitFor(() => expect(within(timeline).getAllByRole("listitem")).toHaveLength(2));

    act(() => page.live.emit({ type: "event", project_id: 1, data: auditEntry("other", { merge_request: 8, summary: "Not mine" }) }));
    act(() =>
      page.live.emit({ type: "event", project_id: 1, data: auditEntry("e3", { summary: "Picked into a batch" }) }),
    );
    expect(within(timeline).getAllByRole("listitem")[0]).toHaveTextContent("Picked into a batch");
    expect(within(timeline).queryByText("Not mine")).not.toBeInTheDocument();

    act(() =>
      page.live.emit({
        type: "merge_request",
        project_id: 1,
        data: {
          ...mr,
          status: "rejected",
          version: 2,
          reasons: [{ code: "ci_failed", message: "The pipeline failed" }],
        },
      }),
    );
    expect(screen.getByText("Rejected")).toBeInTheDocument();
    expect(screen.getByRole("region", { name: "Why it was rejected" })).toHaveTextContent("The pipeline failed");
  });

  it("explains a missing MR", async () => {
    renderPage(<MergeRequestPage />, { path: "/projects/:projectId/mrs/:iid", url: "/projects/1/mrs/99", routes: {} });
    expect(await screen.findByRole("alert")).toHaveTextContent("Not found");
  });
});
