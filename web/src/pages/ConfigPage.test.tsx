import { act, screen, waitFor } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import type { ProjectConfig, ProjectView } from "../api/client";
import { meWith, renderPage, reply, type FakeRoutes } from "../test/render";
import { ConfigPage } from "./ConfigPage";

function config(extra: Partial<ProjectConfig> = {}): ProjectConfig {
  return {
    project_id: 1,
    path: "demo/shop",
    target_branches: ["main"],
    batch_size: 5,
    batch_size_max: 8,
    train_depth: 2,
    strategy: "batch",
    landing: "push",
    skip_target_pipeline: false,
    ci_timeout_minutes: 60,
    flaky_retries: 0,
    bisect_ways: 3,
    paused: false,
    version: 3,
    updated_at: new Date(Date.now() - 3_600_000).toISOString(),
    ...extra,
  };
}

function view(extra: Partial<ProjectConfig> = {}): ProjectView {
  return { config: config(extra), roles: ["project_owner"], counts: {}, running_batches: {}, running_cars: {} };
}

const OWNER = meWith({ 1: ["project_owner"] });

function renderConfig(routes: FakeRoutes = {}, me = OWNER) {
  return renderPage(<ConfigPage />, {
    path: "/projects/:projectId/config",
    url: "/projects/1/config",
    me,
    routes: { "GET /projects/1": view(), ...routes },
  });
}

describe("ConfigPage", () => {
  it("shows the config with a line of help per field", async () => {
    renderConfig();
    expect(await screen.findByLabelText("Batch size")).toHaveValue(5);
    expect(screen.getByLabelText("Strategy")).toHaveValue("batch");
    expect(screen.getByLabelText("Landing")).toHaveValue("push");
    expect(screen.getByLabelText("CI timeout (minutes)")).toHaveValue(60);
    expect(screen.getByLabelText("Flaky retries")).toHaveValue(0);
    expect(screen.getByLabelText("Target branches")).toHaveValue("main");
    expect(screen.getByLabelText("Paused")).not.toBeChecked();
    expect(screen.getByLabelText("Skip target pipeline")).not.toBeChecked();
    expect(screen.getByLabelText("Skip target pipeline")).toHaveAccessibleDescription(
      /not to test again the tree that just passed \(ci\.skip\)/,
    );
    expect(screen.getByLabelText("Batch size")).toHaveAccessibleDescription(
      /How many queued MRs are tested together in one pipeline/,
    );
    expect(screen.getByLabelText("Paused")).toHaveAccessibleDescription(
      "Running batches finish; no new batch starts.",
    );
  });

  it("sends only the changed fields and shows what was saved", async () => {
    const page = renderConfig({
      "PUT /projects/1/config": (call) => ({ ...config(), ...(call.body as object), version: 4 }),
    });
    const batchSize = await screen.findByLabelText("Batch size");
    await page.user.clear(batchSize);
    await page.user.type(batchSize, "8");
    await page.user.click(screen.getByLabelText("Paused"));
    await page.user.click(screen.getByLabelText("Skip target pipeline"));
    expect(screen.getByText("Unsaved changes")).toBeInTheDocument();
    await page.user.click(screen.getByRole("button", { name: "Save changes" }));

    await waitFor(() => expect(screen.getByRole("status")).toHaveTextContent("Saved"));
    expect(page.api.callsTo("PUT /projects/1/config")[0]!.body).toEqual({
      batch_size: 8,
      skip_target_pipeline: true,
      paused: true,
    });
    expect(screen.getByRole("status")).toHaveTextContent(
      "Batch size 8, Skip target pipeline yes, Paused yes",
    );
    expect(screen.getByLabelText("Batch size")).toHaveValue(8);
    expect(screen.queryByText("Unsaved changes")).not.toBeInTheDocument();
  });

  it("switches to automatic sizing and bounds it", async () => {
    const page = renderConfig({
      "PUT /projects/1/config": (call) => ({ ...config(), ...(call.body as object), version: 4 }),
    });
    const sizing = await screen.findByLabelText("Batch sizing");
    expect(sizing).toHaveValue("fixed");
    await page.user.selectOptions(sizing, "auto");
    const largest = screen.getByLabelText("Largest automatic batch");
    await page.user.clear(largest);
    await page.user.type(largest, "1");
    await page.user.click(screen.getByRole("button", { name: "Save changes" }));
    expect(screen.getByText("Largest automatic batch must be between 2 and 50.")).toBeInTheDocument();
    expect(page.api.callsTo("PUT /projects/1/config")).toHaveLength(0);

    await page.user.clear(largest);
    await page.user.type(largest, "12");
    await page.user.click(screen.getByRole("button", { name: "Save changes" }));

    await waitFor(() => expect(screen.getByRole("status")).toHaveTextContent("Saved"));
    expect(page.api.callsTo("PUT /projects/1/config")[0]!.body).toEqual({
      batch_size: "auto",
      batch_size_max: 12,
    });
    expect(screen.getByRole("status")).toHaveTextContent(
      "Batch size auto, Largest automatic batch 12",
    );
  });

  it("switches to the train strategy and bounds its depth", async () => {
    const page = renderConfig({
      "PUT /projects/1/config": (call) => ({ ...config(), ...(call.body as object), version: 4 }),
    });
    const strategy = await screen.findByLabelText("Strategy");
    await page.user.selectOptions(strategy, "train");
    const depth = screen.getByLabelText("Train depth");
    expect(depth).toHaveValue(2);
    expect(depth).toHaveAccessibleDescription(/how many batches are tested at once/);
    await page.user.clear(depth);
    await page.user.type(depth, "9");
    await page.user.click(screen.getByRole("button", { name: "Save changes" }));
    expect(screen.getByText("Train depth must be between 1 and 8.")).toBeInTheDocument();
    expect(depth).toHaveFocus();
    expect(page.api.callsTo("PUT /projects/1/config")).toHaveLength(0);

    await page.user.clear(depth);
    await page.user.type(depth, "3");
    await page.user.click(screen.getByRole("button", { name: "Save changes" }));

    await waitFor(() => expect(screen.getByRole("status")).toHaveTextContent("Saved"));
    expect(page.api.callsTo("PUT /projects/1/config")[0]!.body).toEqual({
      strategy: "train",
      train_depth: 3,
    });
    expect(screen.getByRole("status")).toHaveTextContent("Strategy train, Train depth 3");
    expect(screen.getByLabelText("Strategy")).toHaveValue("train");
  });

  it("sends target branches as a list", async () => {
    const page = renderConfig({
      "PUT /projects/1/config": (call) => ({ ...config(), ...(call.body as object), version: 4 }),
    });
    const branches = await screen.findByLabelText("Target branches");
    await page.user.clear(branches);
    await page.user.type(branches, "main, release/2.0{Enter}hotfix");
    await page.user.click(screen.getByRole("button", { name: "Save changes" }));
    await waitFor(() => expect(page.api.callsTo("PUT /projects/1/config")).toHaveLength(1));
    expect(page.api.callsTo("PUT /projects/1/config")[0]!.body).toEqual({
      target_branches: ["main", "release/2.0", "hotfix"],
    });
  });

  it("shows the API's message when it refuses the change", async () => {
    const page = renderConfig({
      "PUT /projects/1/config": reply(400, { message: "serial strategy needs batch_size 1" }),
    });
    await page.user.selectOptions(await screen.findByLabelText("Strategy"), "serial");
    await page.user.click(screen.getByRole("button", { name: "Save changes" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("serial strategy needs batch_size 1");
    expect(screen.getByText("Unsaved changes")).toBeInTheDocument();
  });

  it("says when the config changed meanwhile and reloads it", async () => {
    let current = view();
    const page = renderConfig({
      "GET /projects/1": () => current,
      "PUT /projects/1/config": reply(409, { message: "changed meanwhile" }),
    });
    const batchSize = await screen.findByLabelText("Batch size");
    await page.user.clear(batchSize);
    await page.user.type(batchSize, "9");
    await page.user.click(screen.getByRole("button", { name: "Save changes" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("The config changed meanwhile");

    current = view({ batch_size: 12, version: 5 });
    await page.user.click(screen.getByRole("button", { name: "Reload" }));
    await waitFor(() => expect(screen.getByLabelText("Batch size")).toHaveValue(12));
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
  });

  it("stops an out-of-range batch size before it reaches the API", async () => {
    const page = renderConfig();
    const batchSize = await screen.findByLabelText("Batch size");
    await page.user.clear(batchSize);
    await page.user.type(batchSize, "0");
    await page.user.click(screen.getByRole("button", { name: "Save changes" }));

    expect(await screen.findByText("Batch size must be between 1 and 50.")).toBeInTheDocument();
    expect(screen.getByLabelText("Batch size")).toHaveAttribute("aria-invalid", "true");
    expect(screen.getByLabelText("Batch size")).toHaveFocus();
    expect(page.api.callsTo("PUT /projects/1/config")).toHaveLength(0);
  });

  it("rejects a branch name git would not accept", async () => {
    const page = renderConfig();
    const branches = await screen.findByLabelText("Target branches");
    await page.user.clear(branches);
    await page.user.type(branches, "main, bad name");
    await page.user.click(screen.getByRole("button", { name: "Save changes" }));
    expect(await screen.findByText(/Not a valid branch name: bad name/)).toBeInTheDocument();
    expect(page.api.callsTo("PUT /projects/1/config")).toHaveLength(0);
  });

  it("resets edits", async () => {
    const page = renderConfig();
    const retries = await screen.findByLabelText("Flaky retries");
    await page.user.clear(retries);
    await page.user.type(retries, "2");
    await page.user.click(screen.getByRole("button", { name: "Reset" }));
    expect(screen.getByLabelText("Flaky retries")).toHaveValue(0);
    expect(screen.queryByText("Unsaved changes")).not.toBeInTheDocument();
  });

  it("is read-only for a viewer", async () => {
    renderConfig({}, meWith({ 1: ["viewer", "priority_manager"] }));
    expect(await screen.findByLabelText("Batch size")).toBeDisabled();
    expect(screen.getByLabelText("Paused")).toBeDisabled();
    expect(screen.getByText(/Only project owners and admins can change the config/)).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Save changes" })).not.toBeInTheDocument();
  });

  it("follows a change saved elsewhere while the form is clean", async () => {
    const page = renderConfig();
    await screen.findByLabelText("Batch size");
    act(() =>
      page.live.emit({ type: "project", project_id: 1, data: config({ batch_size: 7, version: 4 }) }),
    );
    expect(screen.getByLabelText("Batch size")).toHaveValue(7);
  });

  it("keeps the user's edits and warns when a change arrives meanwhile", async () => {
    const page = renderConfig();
    const retries = await screen.findByLabelText("Flaky retries");
    await page.user.clear(retries);
    await page.user.type(retries, "2");
    act(() =>
      page.live.emit({ type: "project", project_id: 1, data: config({ batch_size: 7, version: 4 }) }),
    );
    expect(screen.getByRole("alert")).toHaveTextContent("This config was changed by someone else");
    expect(screen.getByLabelText("Flaky retries")).toHaveValue(2);
    expect(screen.getByLabelText("Batch size")).toHaveValue(5);
  });
});
