import { act, screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import type { Batch, MergeRequest, MergeRequestView } from "../api/client";
import { batch, mergeRequest, projectView, view } from "../test/shell-fixtures";
import { renderPage } from "../test/render";
import { BoardPage } from "./BoardPage";

function region(name: string) {
  return screen.getByRole("region", { name });
}

function renderBoard(initial: MergeRequestView[], options: { paused?: boolean; batches?: Batch[] } = {}) {
  // The server's state: the board refetches the list after queue changes, so the fake
  // answers with whatever the test last made true.
  const server = { items: initial };
  const page = renderPage(<BoardPage />, {
    path: "/projects/:projectId",
    url: "/projects/1",
    routes: {
      "GET /projects/1": projectView({ paused: options.paused ?? false }),
      "GET /projects/1/batches": options.batches ?? [],
      "GET /projects/1/mrs": () => ({ items: server.items }),
    },
  });
  return { ...page, server };
}

function change(server: { items: MergeRequestView[] }, mr: MergeRequest, position: number | null = null) {
  server.items = server.items.map((item) => (item.merge_request.iid === mr.iid ? view(mr, position) : item));
}

describe("BoardPage", () => {
  it("shows the sections in order with counts, positions, hotfixes and reasons", async () => {
    renderBoard([
      view(mergeRequest(1, { title: "Add checkout" }), 2),
      view(mergeRequest(5, { title: "Fix outage", hotfix: true, priority: 3 }), 1),
      view(
        mergeRequest(2, {
          title: "Refactor cart",
          status: "not_ready",
          reasons: [{ code: "approvals", message: "Needs 1 more approval" }],
        }),
      ),
      view(
        mergeRequest(3, {
          title: "Bump deps",
          status: "rejected",
          reasons: [{ code: "ci_failed", message: "The batch pipeline failed on this change" }],
        }),
      ),
      view(mergeRequest(4, { title: "Old work", status: "merged" })),
    ]);

    await screen.findByRole("region", { name: "Queued" });
    expect(screen.getByRole("heading", { level: 1, name: "Queue" })).toBeInTheDocument();
    expect(screen.getAllByRole("heading", { level: 2 }).map((heading) => heading.textContent)).toEqual([
      "Running batch",
      "Queued",
      "Not ready",
      "Rejected",
      "Merged",
    ]);

    const queued = region("Queued");
    expect(within(queued).getByLabelText("2 merge requests")).toHaveTextContent("2");
    const items = within(queued).getAllByRole("listitem");
    // In position order: the hotfix (#1) before !1 (#2).
    expect(items[0]).toHaveTextContent("#1");
    expect(within(items[0] as HTMLElement).getByRole("link")).toHaveTextContent(/^!5 Fix outage/);
    expect(within(items[0] as HTMLElement).getByText("Hotfix")).toBeInTheDocument();
    expect(within(items[0] as HTMLElement).getByText("Priority +3")).toBeInTheDocument();
    expect(items[1]).toHaveTextContent("#2");
    expect(within(queued).getByRole("link", { name: /^!1 Add checkout/ })).toHaveAttribute("href", "/projects/1/mrs/1");

    expect(within(region("Not ready")).getByText("Needs 1 more approval")).toBeVisible();
    const rejected = region("Rejected");
    expect(within(rejected).getByText("The batch pipeline failed on this change")).toBeVisible();
    expect(within(rejected).getByText(/^rejected /)).toBeInTheDocument();
    expect(within(region("Merged")).getByRole("link", { name: /^!4 Old work/ })).toBeInTheDocument();
    expect(within(region("Running batch")).getByText("No batch running")).toBeInTheDocument();
  });

  it("says the queue is paused", async () => {
    renderBoard([], { paused: true });
    const running = await screen.findByRole("region", { name: "Running batch" });
    expect(within(running).getByText("Queue paused.")).toBeInTheDocument();
    expect(within(running).getByText("No batch running")).toBeInTheDocument();
  });

  it("moves an MR from Queued to the running batch to Merged as live messages arrive", async () => {
    const first = mergeRequest(1, { title: "Add checkout" });
    const page = renderBoard([view(first, 1), view(mergeRequest(2, { title: "Second" }), 2)]);
    await screen.findByRole("region", { name: "Queued" });
    expect(within(region("Queued")).getByRole("link", { name: /^!1 Add checkout/ })).toBeInTheDocument();
    const loadsBefore = page.api.callsTo("GET /projects/1/mrs").length;

    // Picked into a batch: it leaves the queue and !2 moves up to #1.
    const batching = { ...first, status: "batching" as const, batch_id: "b1", version: 2 };
    change(page.server, batching);
    page.server.items = page.server.items.map((item) =>
      item.merge_request.iid === 2 ? view(item.merge_request, 1) : item,
    );
    act(() => page.live.emit({ type: "merge_request", project_id: 1, data: batching }));
    act(() =>
      page.live.emit({
        type: "batch",
        project_id: 1,
        data: batch("b1", {
          state: "testing",
          merge_requests: [1],
          pipeline_url: "https://gitlab.test/demo/shop/-/pipelines/77",
        }),
      }),
    );

    const running = region("Running batch");
    expect(within(running).getByRole("link", { name: /^!1 Add checkout/ })).toBeInTheDocument();
    expect(within(running).getAllByText("Testing").length).toBeGreaterThan(0);
    expect(within(running).getByRole("link", { name: "Pipeline" })).toHaveAttribute(
      "href",
      "https://gitlab.test/demo/shop/-/pipelines/77",
    );
    expect(within(running).getByRole("link", { name: "Batch details" })).toHaveAttribute("href", "/projects/1/batches/b1");
    expect(within(region("Queued")).queryByRole("link", { name: /^!1 / })).not.toBeInTheDocument();
    // Positions come from the server, fetched once after the change.
    await waitFor(() => expect(page.api.callsTo("GET /projects/1/mrs").length).toBe(loadsBefore + 1));
    await waitFor(() => expect(within(region("Queued")).getAllByRole("listitem")[0]).toHaveTextContent("#1"));

    // Landed: merged, and the batch is no longer running.
    const merged = { ...batching, status: "merged" as const, version: 3 };
    change(page.server, merged);
    act(() => page.live.emit({ type: "merge_request", project_id: 1, data: merged }));
    act(() =>
      page.live.emit({ type: "batch", project_id: 1, data: batch("b1", { state: "landed", merge_requests: [1], landed: [1], version: 2 }) }),
    );
    expect(within(region("Merged")).getByRole("link", { name: /^!1 Add checkout/ })).toBeInTheDocument();
    expect(within(region("Running batch")).getByText("No batch running")).toBeInTheDocument();
    expect(within(region("Merged")).getByLabelText("1 merge request")).toBeInTheDocument();
  });

  it("ignores messages about other projects and stale versions", async () => {
    const first = mergeRequest(1, { title: "Add checkout", version: 5 });
    const page = renderBoard([view(first, 1)]);
    await screen.findByRole("region", { name: "Queued" });
    act(() =>
      page.live.emit({ type: "merge_request", project_id: 2, data: { ...first, project_id: 2, status: "merged" } }),
    );
    act(() => page.live.emit({ type: "merge_request", project_id: 1, data: { ...first, status: "merged", version: 4 } }));
    expect(within(region("Queued")).getByRole("link", { name: /^!1 Add checkout/ })).toBeInTheDocument();
  });

  it("leaves out merge requests never judged for the queue, such as its own batch MR", async () => {
    const page = renderBoard([view(mergeRequest(1, { title: "Add checkout" }), 1)]);
    await screen.findByRole("region", { name: "Queued" });
    const batchMr = mergeRequest(9, { title: "Merge Assist batch into main: !1", status: "not_ready", reasons: [] });
    const draft = mergeRequest(8, {
      title: "Rework the cart",
      status: "not_ready",
      reasons: [{ code: "draft", message: "it is a draft" }],
    });

    act(() => page.live.emit({ type: "merge_request", project_id: 1, data: batchMr }));
    act(() => page.live.emit({ type: "merge_request", project_id: 1, data: draft }));

    const notReady = region("Not ready");
    expect(within(notReady).getByRole("link", { name: /^!8 Rework the cart/ })).toBeInTheDocument();
    expect(within(notReady).queryByRole("link", { name: /^!9/ })).not.toBeInTheDocument();
  });

  it("shows the running batch from the project, with bisection status", async () => {
    renderPage(<BoardPage />, {
      path: "/projects/:projectId",
      url: "/projects/1",
      routes: {
        "GET /projects/1": projectView({}, { main: "b9" }),
        "GET /projects/1/batches": [],
        "GET /batches/b9": batch("b9", {
          merge_requests: [4, 5, 6],
          target_sha: "0123456789abcdef",
          bisection: { members: [4, 5, 6], good: 1, bad: 3, round: [] },
        }),
        "GET /projects/1/mrs": {
          items: [4, 5, 6].map((iid) => view(mergeRequest(iid, { status: "testing", batch_id: "b9" }))),
        },
      },
    });
    const running = await screen.findByRole("region", { name: "Running batch" });
    await waitFor(() => expect(within(running).getAllByRole("listitem")).toHaveLength(3));
    expect(within(running).getByText(/looking for the culprit among !5, !6/)).toBeInTheDocument();
    expect(within(running).getByText(/^Built on/)).toHaveTextContent("Built on main at 0123456789ab");
  });

  it("shows a train's cars in order, each with its base and pipeline", async () => {
    const page = renderPage(<BoardPage />, {
      path: "/projects/:projectId",
      url: "/projects/1",
      routes: {
        "GET /projects/1": projectView({ strategy: "train", train_depth: 2 }, { main: "car-a" }, { main: ["car-a", "car-b"] }),
        "GET /projects/1/batches": [],
        "GET /batches/car-a": batch("car-a", {
          strategy: "train",
          merge_requests: [4, 5],
          target_sha: "aaaa1111bbbb2222",
          pipeline_url: "https://gitlab.test/demo/shop/-/pipelines/41",
          batch_branch: "merge-assist/train/main/1",
        }),
        "GET /batches/car-b": batch("car-b", {
          strategy: "train",
          state: "building",
          merge_requests: [6],
          ahead_id: "car-a",
          target_sha: "cccc3333dddd4444",
          batch_branch: "merge-assist/train/main/2",
        }),
        "GET /projects/1/mrs": {
          items: [
            view(mergeRequest(4, { title: "Fast checkout", status: "testing", batch_id: "car-a" })),
            view(mergeRequest(5, { status: "testing", batch_id: "car-a" })),
            view(mergeRequest(6, { title: "Cart badge", status: "testing", batch_id: "car-b" })),
          ],
        },
      },
    });
    const running = await screen.findByRole("region", { name: "Running batch" });
    const train = await within(running).findByRole("list", { name: "Train on main" });
    expect(within(running).getByLabelText("3 merge requests")).toBeInTheDocument();
    expect(page.api.callsTo("GET /batches/car-a")).toHaveLength(1);
    expect(page.api.callsTo("GET /batches/car-b")).toHaveLength(1);
    expect(screen.getByText(/batches of up to 5, 2 tested at once/)).toBeInTheDocument();

    const cars = [...train.children] as HTMLElement[];
    expect(cars).toHaveLength(2);
    const [first, second] = cars as [HTMLElement, HTMLElement];

    expect(first).toHaveTextContent(/^Car 1/);
    expect(within(first.firstElementChild as HTMLElement).getByText("Testing")).toBeInTheDocument();
    expect(first).toHaveTextContent("Built on main at aaaa1111bbbb");
    expect(within(first).getByRole("link", { name: "Pipeline" })).toHaveAttribute(
      "href",
      "https://gitlab.test/demo/shop/-/pipelines/41",
    );
    expect(within(first).getByRole("link", { name: "Batch details" })).toHaveAttribute("href", "/projects/1/batches/car-a");
    const firstMrs = within(first).getByRole("list", { name: "Car 1 on main" });
    expect(within(firstMrs).getAllByRole("listitem")).toHaveLength(2);
    expect(within(firstMrs).getByRole("link", { name: /^!4 Fast checkout/ })).toBeInTheDocument();

    expect(second).toHaveTextContent(/^Car 2/);
    expect(within(second.firstElementChild as HTMLElement).getByText("Building")).toBeInTheDocument();
    expect(second).toHaveTextContent("Built on car 1 at cccc3333dddd");
    expect(within(second).queryByRole("link", { name: "Pipeline" })).not.toBeInTheDocument();
    expect(within(second).getByRole("link", { name: "Batch details" })).toHaveAttribute("href", "/projects/1/batches/car-b");
    const secondMrs = within(second).getByRole("list", { name: "Car 2 on main" });
    expect(within(secondMrs).getByRole("link", { name: /^!6 Cart badge/ })).toBeInTheDocument();
  });

  it("adds a car that starts behind the running ones to the train", async () => {
    const page = renderPage(<BoardPage />, {
      path: "/projects/:projectId",
      url: "/projects/1",
      routes: {
        "GET /projects/1": projectView({ strategy: "train" }, { main: "car-a" }),
        "GET /projects/1/batches": [],
        "GET /batches/car-a": batch("car-a", { strategy: "train", merge_requests: [4] }),
        "GET /projects/1/mrs": { items: [] },
      },
    });
    const train = await screen.findByRole("list", { name: "Train on main" });
    expect(train.children).toHaveLength(1);
    act(() =>
      page.live.emit({
        type: "batch",
        project_id: 1,
        data: batch("car-b", { strategy: "train", state: "building", merge_requests: [5], ahead_id: "car-a" }),
      }),
    );
    const cars = [...screen.getByRole("list", { name: "Train on main" }).children];
    expect(cars.map((car) => car.querySelector("strong")?.textContent)).toEqual(["Car 1", "Car 2"]);
    expect(cars[1]).toHaveTextContent("Built on car 1");

    // The head car lands: the next one leads the train.
    act(() =>
      page.live.emit({
        type: "batch",
        project_id: 1,
        data: batch("car-a", { strategy: "train", state: "landed", merge_requests: [4], landed: [4], version: 2 }),
      }),
    );
    const left = [...screen.getByRole("list", { name: "Train on main" }).children] as HTMLElement[];
    expect(left).toHaveLength(1);
    expect(left[0]).toHaveTextContent(/^Car 1/);
    expect(within(left[0] as HTMLElement).getByRole("link", { name: "the batch ahead" })).toHaveAttribute(
      "href",
      "/projects/1/batches/car-a",
    );
  });

  it("offers a retry when the queue cannot be loaded", async () => {
    renderPage(<BoardPage />, { path: "/projects/:projectId", url: "/projects/1", routes: {} });
    expect(await screen.findByRole("alert")).toHaveTextContent("The queue could not be loaded");
    expect(screen.getByRole("button", { name: "Try again" })).toBeInTheDocument();
  });
});
