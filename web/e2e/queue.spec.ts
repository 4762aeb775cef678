/** The queue as its users see it: each role signs in, a priority manager reorders the queue,
 * a project owner sets the batch size and resumes it, and everyone watches merge requests move
 * from queued to merged, live, as batches land; a conflicting MR is rejected with its reason. */
import type { Browser, Locator, Page } from "@playwright/test";
import {
  api,
  expect,
  keep,
  lineOrder,
  scenario,
  signIn,
  test,
  user,
  type QueuedItem,
  type Scenario,
} from "./harness";

test.describe.configure({ mode: "serial" });

let shop: Scenario;
// The head of the line after the priority manager's move: the moved MR, then the one it passed.
let front = 0;
let behind = 0;

test.beforeAll(async () => {
  shop = await scenario("shop", [
    { key: "retry", branch: "feature/retry", title: "Add retries to the payment client", files: { "payments/retry.py": "RETRIES = 3\n" } },
    { key: "invoice", branch: "fix/invoice", title: "Fix a null check in invoice export", files: { "invoices/export.py": "OK = 1\n" } },
    { key: "install", branch: "docs/install", title: "Document the install steps", files: { "README.md": "# Shop\n\nRun `make`.\n" } },
    { key: "usage", branch: "docs/usage", title: "Document usage", files: { "README.md": "# Shop\n\nOpen the browser.\n" } },
  ]);
});

function board(page: Page) {
  return {
    queued: page.getByRole("region", { name: "Queued" }),
    running: page.getByRole("region", { name: "Running batch" }),
    merged: page.getByRole("region", { name: "Merged" }),
    rejected: page.getByRole("region", { name: "Rejected" }),
  };
}

/** The merge requests listed in a board section (their links; reasons are lists too). */
function listed(section: Locator) {
  return section.getByRole("link", { name: /^!\d+/ });
}

function mr(iid: number) {
  return new RegExp(`^!${iid}\\b`);
}

async function signedIn(browser: Browser, group: Parameters<typeof user>[0], path: string) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, user(group), path);
  return page;
}

test("a wrong password is refused with a clear message", async ({ page }) => {
  await page.goto("/");
  await page.getByLabel("Username").fill(user("viewer").username);
  await page.getByLabel("Password").fill("Not-the-password-1!");
  await page.getByRole("button", { name: "Sign in" }).click();

  await expect(page.getByRole("alert")).toContainText("Incorrect username or password.");
  await keep(page, "sign-in");
});

test("a viewer sees the queue in order, without the priority controls", async ({ page }) => {
  await signIn(page, user("viewer"), `/projects/${shop.projectId}`);
  const { queued } = board(page);

  await expect(page.getByRole("heading", { level: 1, name: "Queue" })).toBeVisible();
  await expect(listed(queued)).toHaveCount(4);
  await expect(queued.getByRole("link", { name: mr(shop.iids.retry!) })).toBeVisible();
  const nav = page.getByRole("navigation", { name: "Main" });
  await expect(nav.getByRole("link", { name: "Queue" })).toBeVisible();
  await expect(nav.getByRole("link", { name: "Priority" })).toHaveCount(0);
  await expect(page.getByRole("status").filter({ hasText: "Live" })).toBeVisible();
  await keep(page, "queue-board-viewer");
});

test("a priority manager moves a merge request to the front of the line", async ({ page }) => {
  await signIn(page, user("priority_manager"), `/projects/${shop.projectId}`);
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Priority" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Priority" })).toBeVisible();
  const order = page.getByRole("list", { name: "Queue order" });
  await expect(order.getByRole("listitem")).toHaveCount(4);
  const before = await lineOrder(shop.projectId);
  expect(before).toEqual([shop.iids.retry, shop.iids.invoice, shop.iids.install, shop.iids.usage]);
  [behind, front] = [shop.iids.retry!, shop.iids.invoice!];

  // The keyboard drag: pick the handle up, move it up one place, drop it.
  const handle = page.getByRole("button", { name: `Reorder !${front}` });
  await handle.focus();
  await page.keyboard.press("Space");
  await expect(handle).toHaveAttribute("aria-pressed", "true");
  await page.keyboard.press("ArrowUp");
  await expect(page.getByText(`!${front} would be number 1 of 4.`)).toBeAttached();
  await page.keyboard.press("Space");

  await expect(order.getByRole("listitem").first()).toContainText(`!${front}`);
  await expect.poll(async () => (await lineOrder(shop.projectId)).slice(0, 2)).toEqual([
    front,
    behind,
  ]);
  await keep(page, "priority");
});

test("the project owner sets the batch size; everyone watches the batches land live", async ({
  browser,
}) => {
  const watcher = await signedIn(browser, "viewer", `/projects/${shop.projectId}`);
  const { running, merged, rejected } = board(watcher);
  await expect(listed(board(watcher).queued)).toHaveCount(4);

  const owner = await signedIn(browser, "project_owner", `/projects/${shop.projectId}/config`);
  await expect(owner.getByRole("heading", { level: 1, name: "Config" })).toBeVisible();
  await owner.getByLabel("Batch size").fill("2");
  await owner.getByLabel("Paused").uncheck();
  await keep(owner, "config-edited");
  await owner.getByRole("button", { name: "Save changes" }).click();
  await expect(owner.getByRole("status").filter({ hasText: "Saved" })).toBeVisible();

  // The first batch: the two at the head of the line, the moved one first.
  await expect(running.getByRole("link", { name: mr(front) })).toBeVisible();
  await expect(running.getByRole("link", { name: mr(behind) })).toBeVisible();
  await keep(watcher, "queue-board-running-batch");
  await expect(merged.getByRole("link", { name: mr(front) })).toBeVisible({ timeout: 60_000 });
  await expect(merged.getByRole("link", { name: mr(behind) })).toBeVisible();

  // The second batch: both README edits cannot land; the later one is rejected, with why.
  await expect(merged.getByRole("link", { name: mr(shop.iids.install!) })).toBeVisible({
    timeout: 60_000,
  });
  await expect(listed(merged)).toHaveCount(3);
  await expect(listed(rejected)).toHaveCount(1);
  await expect(rejected.getByRole("link", { name: mr(shop.iids.usage!) })).toBeVisible();
  await expect(rejected).toContainText("conflicts with");
  await keep(watcher, "queue-board-landed");

  const config = await api<{ config: { batch_size: number } }>(
    user("admin"),
    "GET",
    `/projects/${shop.projectId}`,
  );
  expect(config.config.batch_size).toBe(2);
  await watcher.context().close();
  await owner.context().close();
});

test("a rejected merge request shows its reason and its timeline", async ({ page }) => {
  const rejected = await api<{ items: QueuedItem[] }>(
    user("admin"),
    "GET",
    `/projects/${shop.projectId}/mrs?category=rejected`,
  );
  const [{ merge_request: culprit }] = rejected.items as [QueuedItem];
  await signIn(page, user("viewer"), `/projects/${shop.projectId}`);
  await board(page).rejected.getByRole("link", { name: mr(culprit.iid) }).click();

  await expect(page.getByRole("heading", { level: 1 })).toContainText(
    `!${culprit.iid} ${culprit.title}`,
  );
  await expect(page.getByText(/conflicts with/).first()).toBeVisible();
  await expect(page.getByRole("link", { name: "Open in GitLab" })).toHaveAttribute("href", /merge_requests/);
  const timeline = page.getByRole("region", { name: "Timeline" });
  await expect(timeline.getByRole("listitem").first()).toBeVisible();
  await keep(page, "merge-request");
});

test("a landed batch shows its members and steps with pipeline links", async ({ page }) => {
  await signIn(page, user("viewer"), `/projects/${shop.projectId}`);
  const batches = await api<{ id: string; merge_requests: number[] }[]>(
    user("admin"),
    "GET",
    `/projects/${shop.projectId}/batches`,
  );
  const first = batches.find((batch) => batch.merge_requests.includes(front));
  expect(first).toBeDefined();
  await page.goto(`/projects/${shop.projectId}/batches/${first!.id}`);

  await expect(page.getByRole("heading", { level: 1 })).toContainText("Batch");
  const steps = page.getByRole("region", { name: "Steps" });
  await expect(steps.getByRole("link", { name: /^Pipeline #\d+/ }).first()).toBeVisible();
  await keep(page, "batch");
});

test("the event log lists what happened, newest first, and filters by action", async ({ page }) => {
  await signIn(page, user("project_owner"), `/projects/${shop.projectId}/events`);
  await expect(page.getByRole("heading", { level: 1, name: "Events" })).toBeVisible();
  const rows = page.getByRole("table").getByRole("row");
  await expect(rows.filter({ hasText: "Config changed" }).first()).toBeVisible();

  await page.getByLabel("Action").selectOption({ label: "Priority changed" });
  await expect(rows.filter({ hasText: "Config changed" })).toHaveCount(0);
  await expect(rows.filter({ hasText: "Priority changed" }).first()).toBeVisible();
  await keep(page, "events");
});

test("the health page shows GitLab and the project's queue", async ({ page }) => {
  await signIn(page, user("admin"), "/health");
  await expect(page.getByRole("heading", { level: 1, name: "Health" })).toBeVisible();
  await expect(page.getByText("GitLab reachable")).toBeVisible();
  const project = page.getByRole("region", { name: shop.path });
  await expect(project).toContainText("No problems");
  await keep(page, "health");
});

test("the board works at phone width", async ({ browser }) => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  await signIn(page, user("viewer"), `/projects/${shop.projectId}`);
  await expect(listed(board(page).merged).first()).toBeVisible();
  const overflow = await page.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
  );
  expect(overflow).toBeLessThanOrEqual(0);
  await keep(page, "queue-board-phone");
  await context.close();
});

test("signing out ends the session", async ({ page }) => {
  await signIn(page, user("viewer"), `/projects/${shop.projectId}`);
  await page.getByRole("button", { name: "Sign out" }).click();

  await expect(page.getByRole("button", { name: "Sign in" })).toBeVisible();
  await page.goto(`/projects/${shop.projectId}`);
  await expect(page.getByRole("button", { name: "Sign in" })).toBeVisible();
});
