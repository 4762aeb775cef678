import { act, screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { batch, mergeRequest, view } from "../test/shell-fixtures";
import { renderPage } from "../test/render";
import { BatchPage } from "./BatchPage";

const at = (minutes: number) => new Date(Date.now() - minutes * 60_000).toISOString();

const red = batch("1-main-abc", {
  state: "testing",
  merge_requests: [4, 5, 6],
  landed: [4],
  rejected: [5],
  requeued: [6],
  red_pipeline_url: "https://gitlab.test/demo/shop/-/pipelines/301",
  green_pipeline_url: "https://gitlab.test/demo/shop/-/pipelines/302",
  bisection: { members: [4, 5, 6], good: 1, bad: 2, round: [] },
  sizing: { size: 3, failure_rate: 0.1234, batches: 12 },
  steps: [
    { kind: "selected", at: at(20), merge_requests: [4, 5, 6], note: "3 ready merge requests" },
    {
      kind: "tested",
      at: at(15),
      merge_requests: [4, 5, 6],
      note: "",
      status: "failed",
      pipeline_id: 301,
      pipeline_url: "https://gitlab.test/demo/shop/-/pipelines/301",
    },
    {
      kind: "bisected",
      at: at(10),
      merge_requests: [4],
      note: "testing the first 1",
      status: "success",
      pipeline_id: 302,
      pipeline_url: "https://gitlab.test/demo/shop/-/pipelines/302",
    },
  ],
});

function renderBatch() {
  return renderPage(<BatchPage />, {
    path: "/projects/:projectId/batches/:batchId",
    url: "/projects/1/batches/1-main-abc",
    routes: {
      "GET /batches/1-main-abc": red,
      "GET /projects/1/mrs": { items: [view(mergeRequest(4, { title: "Fast checkout" }))] },
    },
  });
}

describe("BatchPage", () => {
  it("lists members with outcomes and the steps with their pipelines", async () => {
    renderBatch();
    expect(await screen.findByRole("heading", { level: 1, name: "Batch on main" })).toBeInTheDocument();

    expect(screen.getByText("Size").nextElementSibling).toHaveTextContent(
      "3 MRs, sized automatically for a failure rate of 12.3% per MR (seen over the last 12 batches)",
    );

    const members = screen.getByRole("region", { name: "Merge requests" });
    const items = within(members).getAllByRole("listitem");
    expect(items.map((item) => within(item).getByRole("link").textContent)).toEqual(["!4 Fast checkout", "!5", "!6"]);
    expect(items[0]).toHaveTextContent("landed");
    expect(items[1]).toHaveTextContent("rejected");
    expect(items[2]).toHaveTextContent("requeued");
    expect(within(members).getByRole("link", { name: "!5" })).toHaveAttribute("href", "/projects/1/mrs/5");

    const steps = screen.getByRole("region", { name: "Steps" });
    const stepItems = within(steps).getAllByRole("listitem");
    expect(stepItems).toHaveLength(3);
    expect(stepItems[0]).toHaveTextContent("Selected");
    expect(stepItems[0]).toHaveTextContent("3 ready merge requests");
    expect(within(stepItems[1] as HTMLElement).getByRole("link", { name: "Pipeline #301" })).toHaveAttribute(
      "href",
      "https://gitlab.test/demo/shop/-/pipelines/301",
    );
    expect(stepItems[1]).toHaveTextContent("failed");
    expect(within(steps).getByRole("link", { name: "Pipeline #302" })).toBeInTheDocument();

    expect(screen.getByRole("link", { name: "Red pipeline" })).toHaveAttribute("href", "https://gitlab.test/demo/shop/-/pipelines/301");
    expect(screen.getByRole("link", { name: "Green pipeline" })).toBeInTheDocument();
    const bisection = screen.getByRole("region", { name: "Bisection" });
    expect(bisection).toHaveTextContent("The culprit is !5");
  });

  it("links a train car to the car it was built on", async () => {
    renderPage(<BatchPage />, {
      path: "/projects/:projectId/batches/:batchId",
      url: "/projects/1/batches/car-2",
      routes: {
        "GET /batches/car-2": batch("car-2", {
          strategy: "train",
          merge_requests: [7],
          ahead_id: "car-1",
          target_sha: "c0ffee1234567890",
          batch_branch: "merge-assist/train/main/2",
        }),
        "GET /projects/1/mrs": { items: [] },
      },
    });
    await screen.findByRole("heading", { level: 1, name: "Batch on main" });
    expect(screen.getByText("Strategy").nextElementSibling).toHaveTextContent("Train");
    const builtOn = screen.getByText("Built on").nextElementSibling as HTMLElement;
    expect(builtOn).toHaveTextContent("car-1 at c0ffee123456");
    expect(within(builtOn).getByRole("link", { name: "car-1" })).toHaveAttribute("href", "/projects/1/batches/car-1");
  });

  it("names the prefixes a bisection round tests at once", async () => {
    renderPage(<BatchPage />, {
      path: "/projects/:projectId/batches/:batchId",
      url: "/projects/1/batches/b-6",
      routes: {
        "GET /batches/b-6": batch("b-6", {
          state: "testing",
          merge_requests: [1, 2, 3, 4, 5, 6],
          bisection: { members: [1, 2, 3, 4, 5, 6], good: 2, bad: 6, round: [2, 4, 5] },
        }),
        "GET /projects/1/mrs": { items: [] },
      },
    });
    const bisection = await screen.findByRole("region", { name: "Bisection" });
    // The first 2 answered green; the first 4 and 5 still run.
    expect(bisection).toHaveTextContent("The culprit is among the 4 in between. Testing the first 4 and the first 5 at once.");
  });

  it("says nothing of a base batch when built on the target branch", async () => {
    renderBatch();
    await screen.findByRole("heading", { level: 1, name: "Batch on main" });
    expect(screen.queryByText("Built on")).not.toBeInTheDocument();
  });

  it("follows the batch live", async () => {
    const page = renderBatch();
    await screen.findByRole("region", { name: "Steps" });
    act(() =>
      page.live.emit({
        type: "batch",
        project_id: 1,
        data: {
          ...red,
          state: "landed",
          version: 2,
          steps: [...(red.steps ?? []), { kind: "landed", at: at(1), merge_requests: [4], note: "pushed to main" }],
        },
      }),
    );
    expect(screen.getByText("Landed", { selector: ".badge" })).toBeInTheDocument();
    expect(within(screen.getByRole("region", { name: "Steps" })).getAllByRole("listitem")).toHaveLength(4);
  });
});
