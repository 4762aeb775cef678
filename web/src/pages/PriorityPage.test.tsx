import { act, screen, waitFor, within } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { MergeRequest, MergeRequestView, ProjectView } from "../api/client";
import { meWith, renderPage, reply, type ApiCall, type FakeRoutes } from "../test/render";
import { PriorityPage } from "./PriorityPage";

function mr(iid: number, extra: Partial<MergeRequest> = {}): MergeRequest {
  return {
    project_id: 1,
    iid,
    title: `Change ${iid}`,
    sha: "abcdef1234",
    source_branch: `feature-${iid}`,
    target_branch: "main",
    status: "queued",
    priority: 0,
    hotfix: false,
    reasons: [],
    labels: [],
    assignee_ids: [],
    bot_assigned: true,
    draft: false,
    rebasing: false,
    strikes: 0,
    version: 1,
    ready_since: new Date(Date.now() - 20 * 60_000).toISOString(),
    updated_at: new Date().toISOString(),
    ...extra,
  };
}

function views(items: MergeRequest[]): { items: MergeRequestView[] } {
  const positions = new Map<string, number>();
  return {
    items: items.map((item) => {
      const position = (positions.get(item.target_branch) ?? 0) + 1;
      positions.set(item.target_branch, position);
      return { merge_request: item, position };
    }),
  };
}

function project(targetBranches = ["main"]): ProjectView {
  return {
    config: {
      project_id: 1,
      path: "demo/shop",
      target_branches: targetBranches,
      paused: false,
      skip_target_pipeline: false,
      batch_size: 5,
      batch_size_max: 8,
      train_depth: 2,
      strategy: "batch",
      landing: "push",
      ci_timeout_minutes: 60,
      flaky_retries: 0,
      bisect_ways: 3,
      version: 1,
      updated_at: new Date().toISOString(),
      labels: {
        batch_merge_request: "Merge Assist: Batch Merge Request",
        not_ready: "Merge Assist: Not Ready",
        ready_to_merge: "Merge Assist: Ready to Merge",
        recognised: "Merge Assist: Recognised for Merge",
        rejected: "Merge Assist: Rejected",
      },
    },
    roles: [],
    counts: {},
    running_batches: {},
    running_cars: {},
  };
}

const MANAGER = meWith({ 1: ["priority_manager"] });

/** The server's side of a placement: moves `iid` in `queue` (in place) as asked. */
function placing(queue: MergeRequest[], iid: number) {
  return (call: ApiCall) => {
    const body = call.body as { before?: number; after?: number };
    const from = queue.findIndex((item) => item.iid === iid);
    const [moved] = queue.splice(from, 1);
    const anchor = queue.findIndex((item) => item.iid === (body.before ?? body.after));
    queue.splice(body.before !== undefined ? anchor : anchor + 1, 0, moved!);
    return moved;
  };
}

function renderPriority(queue: MergeRequest[], routes: FakeRoutes = {}, me = MANAGER) {
  return renderPage(<PriorityPage />, {
    path: "/projects/:projectId/priority",
    url: "/projects/1/priority",
    me,
    routes: {
      "GET /projects/1": project(),
      "GET /projects/1/mrs": () => views(queue),
      ...routes,
    },
  });
}

function order(list: HTMLElement): string[] {
  return within(list)
    .getAllByRole("listitem")
    .map((item) => within(item).getByRole("link").textContent?.split(" ")[0] ?? "");
}

// jsdom lays nothing out; dnd-kit's keyboard sensor moves between the items' boxes, so
// each list item gets a box by its place in the list.
function stackedBoxes() {
  return vi.spyOn(Element.prototype, "getBoundingClientRect").mockImplementation(function (
    this: Element,
  ) {
    const item = this.closest("li");
    const index = item?.parentElement ? [...item.parentElement.children].indexOf(item) : 0;
    const top = item ? index * 60 : 0;
    const height = item ? 50 : 0;
    return {
      x: 0,
      y: top,
      top,
      left: 0,
      width: item ? 400 : 0,
      height,
      right: item ? 400 : 0,
      bottom: top + height,
      toJSON: () => ({}),
    } as DOMRect;
  });
}

describe("PriorityPage", () => {
  let boxes: ReturnType<typeof stackedBoxes>;
  beforeEach(() => {
    boxes = stackedBoxes();
  });
  afterEach(() => {
    boxes.mockRestore();
  });

  it("shows the queue in order with position, branch, priority and waiting time", async () => {
    renderPriority([mr(1, { priority: 5 }), mr(2), mr(3)]);
    const list = await screen.findByRole("list", { name: "Queue order" });
    expect(order(list)).toEqual(["!1", "!2", "!3"]);
    const first = within(list).getAllByRole("listitem")[0]!;
    expect(first).toHaveTextContent("#1");
    expect(first).toHaveTextContent("Change 1");
    expect(first).toHaveTextContent("feature-1");
    expect(first).toHaveTextContent("Priority 5");
    expect(first).toHaveTextContent("Waiting 20 min");
    expect(within(list).getByRole("link", { name: "!2 Change 2" })).toHaveAttribute(
      "href",
      "/projects/1/mrs/2",
    );
  });

  it("reorders with the keyboard and sends where the MR now stands", async () => {
    const queue = [mr(1), mr(2), mr(3)];
    const page = renderPriority(queue, {
      "POST /projects/1/mrs/3/priority": placing(queue, 3),
    });
    const list = await screen.findByRole("list", { name: "Queue order" });
    const handle = within(list).getByRole("button", { name: "Reorder !3" });
    handle.focus();
    await page.user.keyboard("[Space]");
    await page.user.keyboard("[ArrowUp]");
    await page.user.keyboard("[Space]");

    await waitFor(() => expect(page.api.callsTo("POST /projects/1/mrs/3/priority")).toHaveLength(1));
    expect(page.api.callsTo("POST /projects/1/mrs/3/priority")[0]!.body).toEqual({ before: 2 });
    expect(order(list)).toEqual(["!1", "!3", "!2"]);
    // The refetch after the move agrees with it.
    await waitFor(() => expect(page.api.callsTo("GET /projects/1/mrs")).toHaveLength(2));
    expect(order(screen.getByRole("list", { name: "Queue order" }))).toEqual(["!1", "!3", "!2"]);
  });

  it("puts the old order back and says why when the server refuses a move", async () => {
    const page = renderPriority([mr(1), mr(2), mr(3)], {
      "POST /projects/1/mrs/3/priority": reply(409, { message: "!2 is not queued for main" }),
    });
    const list = await screen.findByRole("list", { name: "Queue order" });
    within(list).getByRole("button", { name: "Reorder !3" }).focus();
    await page.user.keyboard("[Space]");
    await page.user.keyboard("[ArrowUp]");
    await page.user.keyboard("[Space]");

    expect(await screen.findByRole("alert")).toHaveTextContent("!2 is not queued for main");
    expect(order(list)).toEqual(["!1", "!2", "!3"]);
  });

  it("moves one step with the buttons", async () => {
    const queue = [mr(1), mr(2), mr(3)];
    const page = renderPriority(queue, {
      "POST /projects/1/mrs/2/priority": placing(queue, 2),
    });
    const list = await screen.findByRole("list", { name: "Queue order" });
    await page.user.click(screen.getByRole("button", { name: "Move !2 up" }));
    await waitFor(() => expect(page.api.callsTo("POST /projects/1/mrs/2/priority")).toHaveLength(1));
    expect(page.api.callsTo("POST /projects/1/mrs/2/priority")[0]!.body).toEqual({ before: 1 });
    expect(order(list)).toEqual(["!2", "!1", "!3"]);
    // At the top "up" is disabled, so the keyboard user lands on "down" instead.
    await waitFor(() => expect(screen.getByRole("button", { name: "Move !2 down" })).toHaveFocus());
    expect(screen.getByRole("button", { name: "Move !2 up" })).toBeDisabled();
    expect(await screen.findByText(/!2 is now number 1 in the queue for main/)).toBeInTheDocument();
  });

  it("does not refetch under a drag in progress, and catches up after it", async () => {
    const page = renderPriority([mr(1), mr(2), mr(3)]);
    const list = await screen.findByRole("list", { name: "Queue order" });
    within(list).getByRole("button", { name: "Reorder !2" }).focus();
    await page.user.keyboard("[Space]");
    act(() => page.live.emit({ type: "merge_request", project_id: 1, data: mr(5) }));
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(page.api.callsTo("GET /projects/1/mrs")).toHaveLength(1);
    await page.user.keyboard("[Escape]");
    await waitFor(() => expect(page.api.callsTo("GET /projects/1/mrs")).toHaveLength(2));
    expect(page.api.callsTo("POST /projects/1/mrs/2/priority")).toHaveLength(0);
  });

  it("moving the last-but-one MR down places it after the last", async () => {
    const queue = [mr(1), mr(2), mr(3)];
    const page = renderPriority(queue, {
      "POST /projects/1/mrs/2/priority": placing(queue, 2),
    });
    await screen.findByRole("list", { name: "Queue order" });
    await page.user.click(screen.getByRole("button", { name: "Move !2 down" }));
    await waitFor(() => expect(page.api.callsTo("POST /projects/1/mrs/2/priority")).toHaveLength(1));
    expect(page.api.callsTo("POST /projects/1/mrs/2/priority")[0]!.body).toEqual({ after: 3 });
  });

  it("marks a hotfix after confirmation and shows the badge at the top", async () => {
    const queue = [mr(1), mr(2), mr(3)];
    const page = renderPriority(queue, {
      "POST /projects/1/mrs/3/hotfix": () => {
        queue.splice(2, 1);
        queue.unshift(mr(3, { hotfix: true }));
        return mr(3, { hotfix: true });
      },
    });
    await screen.findByRole("list", { name: "Queue order" });
    await page.user.click(screen.getByRole("button", { name: "Mark !3 as hotfix" }));
    const confirm = screen.getByRole("group", { name: "Confirm hotfix for !3" });
    expect(confirm).toHaveTextContent("tested alone next, ahead of everyone");
    expect(page.api.callsTo("POST /projects/1/mrs/3/hotfix")).toHaveLength(0);
    await page.user.click(within(confirm).getByRole("button", { name: "Confirm hotfix" }));

    await waitFor(() => expect(page.api.callsTo("POST /projects/1/mrs/3/hotfix")).toHaveLength(1));
    const list = screen.getByRole("list", { name: "Queue order" });
    await waitFor(() => expect(order(list)).toEqual(["!3", "!1", "!2"]));
    const top = within(list).getAllByRole("listitem")[0]!;
    expect(within(top).getByText("Hotfix")).toBeInTheDocument();
    expect(within(top).getByRole("button", { name: "Withdraw hotfix for !3" })).toBeInTheDocument();
    // Nothing is placed around a hotfix: it has no handle and no move buttons.
    expect(within(top).queryByRole("button", { name: "Reorder !3" })).not.toBeInTheDocument();
  });

  it("withdraws a hotfix", async () => {
    const page = renderPriority([mr(3, { hotfix: true }), mr(1)], {
      "DELETE /projects/1/mrs/3/hotfix": () => mr(3),
    });
    await page.user.click(await screen.findByRole("button", { name: "Withdraw hotfix for !3" }));
    await waitFor(() => expect(page.api.callsTo("DELETE /projects/1/mrs/3/hotfix")).toHaveLength(1));
  });

  it("gives a viewer the order read-only, with the reason", async () => {
    renderPriority([mr(1), mr(2)], {}, meWith({ 1: ["viewer", "project_owner"] }));
    const list = await screen.findByRole("list", { name: "Queue order" });
    expect(order(list)).toEqual(["!1", "!2"]);
    expect(
      screen.getByText("Only priority managers and admins can reorder the queue."),
    ).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /Reorder|Move|hotfix/ })).not.toBeInTheDocument();
  });

  it("lists each target branch on its own when none is chosen", async () => {
    renderPriority([mr(1), mr(2, { target_branch: "release" }), mr(3)], {
      "GET /projects/1": project(["main", "release"]),
    });
    const main = await screen.findByRole("list", { name: "Queue order for main" });
    const release = screen.getByRole("list", { name: "Queue order for release" });
    expect(order(main)).toEqual(["!1", "!3"]);
    expect(order(release)).toEqual(["!2"]);
  });

  it("asks only for the chosen target branch", async () => {
    const page = renderPage(<PriorityPage />, {
      path: "/projects/:projectId/priority",
      url: "/projects/1/priority?target=release",
      me: MANAGER,
      routes: {
        "GET /projects/1": project(["main", "release"]),
        "GET /projects/1/mrs": views([mr(2, { target_branch: "release" })]),
      },
    });
    await screen.findByRole("list", { name: "Queue order" });
    const call = page.api.callsTo("GET /projects/1/mrs")[0] as ApiCall;
    expect(call.query.get("category")).toBe("queued");
    expect(call.query.get("target")).toBe("release");
  });

  it("says when nothing is queued", async () => {
    renderPriority([]);
    expect(await screen.findByText("Nothing is queued")).toBeInTheDocument();
  });

  it("refetches once after a burst of live updates", async () => {
    const page = renderPriority([mr(1)]);
    await screen.findByRole("list", { name: "Queue order" });
    expect(page.api.callsTo("GET /projects/1/mrs")).toHaveLength(1);
    act(() => {
      page.live.emit({ type: "merge_request", project_id: 1, data: mr(1) });
      page.live.emit({ type: "merge_request", project_id: 1, data: mr(2) });
      page.live.emit({ type: "merge_request", project_id: 2, data: mr(9) });
    });
    await waitFor(() => expect(page.api.callsTo("GET /projects/1/mrs")).toHaveLength(2));
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(page.api.callsTo("GET /projects/1/mrs")).toHaveLength(2);
  });
});
