/** What the end-to-end specs share: the running stack's endpoints, Cognito sign-in as the
 * dashboard does it, the API as an admin would call it, the GitLab simulator's scenario API,
 * and screenshots kept as artifacts. */
import { expect, test as base, type Page } from "@playwright/test";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ENDPOINTS_ENV = "MERGE_ASSIST_E2E_ENDPOINTS";
export const ARTIFACTS = fileURLToPath(new URL("./artifacts", import.meta.url));

export interface DemoUser {
  username: string;
  password: string;
  group: "admin" | "project_owner" | "priority_manager" | "viewer";
}

export interface Endpoints {
  api: string;
  dashboard: string;
  aws_endpoint: string;
  gitlab: string;
  gitlab_admin_token: string;
  gitlab_bot_username: string;
  user_pool_client_id: string;
  demo_users: DemoUser[];
}

export function endpoints(): Endpoints {
  const path = process.env[ENDPOINTS_ENV];
  if (!path) throw new Error(`${ENDPOINTS_ENV} is not set: run through playwright's global setup`);
  return JSON.parse(readFileSync(path, "utf-8")) as Endpoints;
}

export function user(group: DemoUser["group"]): DemoUser {
  const found = endpoints().demo_users.find((candidate) => candidate.group === group);
  if (!found) throw new Error(`no demo user in group ${group}`);
  return found;
}

/** An access token, got the way the dashboard's sign-in form gets it. */
export async function accessToken(who: DemoUser): Promise<string> {
  const stack = endpoints();
  const response = await fetch(stack.aws_endpoint, {
    method: "POST",
    headers: {
      "Content-Type": "application/x-amz-json-1.1",
      "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
    },
    body: JSON.stringify({
      AuthFlow: "USER_PASSWORD_AUTH",
      ClientId: stack.user_pool_client_id,
      AuthParameters: { USERNAME: who.username, PASSWORD: who.password },
    }),
  });
  const body = (await response.json()) as { AuthenticationResult?: { AccessToken: string } };
  if (!body.AuthenticationResult) throw new Error(`sign-in failed: ${JSON.stringify(body)}`);
  return body.AuthenticationResult.AccessToken;
}

/** The dashboard API, as `who`. */
export async function api<T>(
  who: DemoUser,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const response = await fetch(`${endpoints().api}${path}`, {
    method,
    headers: {
      Authorization: `Bearer ${await accessToken(who)}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

/** The GitLab simulator, as its admin. */
export async function gitlab<T>(method: string, path: string, body?: unknown): Promise<T> {
  const stack = endpoints();
  const response = await fetch(`${stack.gitlab}/api/v4${path}`, {
    method,
    headers: {
      "PRIVATE-TOKEN": stack.gitlab_admin_token,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`GitLab ${method} ${path}: ${response.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

export interface Scenario {
  projectId: number;
  path: string;
  iids: Record<string, number>;
}

export interface ScenarioMergeRequest {
  key: string;
  branch: string;
  title: string;
  files: Record<string, string>;
}

const MAINTAINER = 40;
const DEVELOPER = 30;

/** A GitLab project connected through the dashboard API (paused, so MRs gather), the demo
 * users granted their roles on it, and merge requests opened and assigned to the bot, queued
 * in the order given. */
export async function scenario(
  name: string,
  mergeRequests: ScenarioMergeRequest[],
  settings: Record<string, unknown> = {},
): Promise<Scenario> {
  const stack = endpoints();
  const admin = user("admin");
  await gitlab("POST", "/-/sim/users", { username: `dev-${name}`, name: "Dana Developer" });
  const project = await gitlab<{ id: number; path_with_namespace: string }>(
    "POST",
    "/-/sim/projects",
    {
      name,
      namespace: "e2e",
      files: { "README.md": "# Shop\n", "payments/client.py": "def pay(): ...\n" },
      members: { [stack.gitlab_bot_username]: MAINTAINER, [`dev-${name}`]: DEVELOPER },
    },
  );
  await gitlab("PUT", `/-/sim/projects/${project.id}/pipeline_rules`, {
    pending_s: 2,
    duration_s: 40,
  });
  await api(admin, "POST", "/projects", {
    project: project.path_with_namespace,
    settings: { batch_size: 5, paused: true, ...settings },
  });
  for (const group of ["project_owner", "priority_manager", "viewer"] as const) {
    await api(admin, "PUT", `/projects/${project.id}/grants/${user(group).username}`, {
      roles: [group],
    });
  }
  const iids: Record<string, number> = {};
  // One at a time, each queued before the next opens: the line's order is the order given.
  for (const [index, mr] of mergeRequests.entries()) {
    const created = await gitlab<{ iid: number }>(
      "POST",
      `/-/sim/projects/${project.id}/merge_requests`,
      {
        source_branch: mr.branch,
        title: mr.title,
        files: mr.files,
        author: `dev-${name}`,
        assignees: [stack.gitlab_bot_username],
      },
    );
    iids[mr.key] = created.iid;
    await expect
      .poll(async () => (await lineOrder(project.id)).length, {
        timeout: 60_000,
        message: `${mr.branch} was not queued`,
      })
      .toBe(index + 1);
  }
  return { projectId: project.id, path: project.path_with_namespace, iids };
}

/** Signs in through the dashboard's own form. */
export async function signIn(page: Page, who: DemoUser, path = "/"): Promise<void> {
  await page.goto(path);
  await page.getByLabel("Username").fill(who.username);
  await page.getByLabel("Password").fill(who.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("button", { name: "Sign out" })).toBeVisible();
}

/** A full-page screenshot kept in e2e/artifacts (CI keeps the folder). */
export async function keep(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

export interface QueuedItem {
  merge_request: { iid: number; title: string };
  position: number | null;
}

/** The queued MRs' iids in line order, as the API says. */
export async function lineOrder(projectId: number): Promise<number[]> {
  const list = await api<{ items: QueuedItem[] }>(
    user("admin"),
    "GET",
    `/projects/${projectId}/mrs?category=queued`,
  );
  return [...list.items]
    .sort((a, b) => (a.position ?? 0) - (b.position ?? 0))
    .map((item) => item.merge_request.iid);
}

export const test = base.extend({
  baseURL: async ({}, use) => {
    await use(endpoints().dashboard);
  },
});
export { expect };
