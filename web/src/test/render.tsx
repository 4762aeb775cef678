/** Renders a page the way the app does, around fakes: a real typed API client over a fake
 * `fetch` that answers by method and path, a live hub whose messages the test emits, a
 * signed-in user (`Me`) and a router at a given URL.
 *
 *     const page = renderPage(<PriorityPage />, {
 *       path: "/projects/:projectId/priority",
 *       url: "/projects/1/priority?target=main",
 *       me: meWith({ 1: ["priority_manager"] }),
 *       routes: {
 *         "GET /projects/1/mrs": { items: [] },
 *         "POST /projects/1/mrs/3/priority": (call) => reply(409, { message: "moved meanwhile" }),
 *       },
 *     });
 *     await page.user.click(...);
 *     expect(page.api.calls.at(-1)?.body).toEqual({ before: 2 });
 *     act(() => page.live.emit({ type: "event", project_id: 1, data: entry }));
 *
 * Route keys are "<METHOD> <path>" with the path after `/api/v1` and without the query
 * string; the query is in `call.query`. A route's value is the JSON body of a 200, a
 * `reply(status, body)`, or a function of the call returning either (for state that
 * changes between calls). A request without a route gets a 404 whose message names it,
 * so a missing route shows up in the page's error state and in `api.calls`. */
import { render, type RenderResult } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { ReactElement, ReactNode } from "react";
import { MemoryRouter, Route, Routes } from "react-router-dom";
import { createApiClient, type ApiClient, type Me, type Role } from "../api/client";
import { AppContext, type LiveHub, type LiveListener } from "../app/context";
import { MeContext } from "../app/access";
import type { Session } from "../auth/session";
import type { AppConfig } from "../config";
import type { LiveMessage } from "../live/updates";

export const API_URL = "http://api.test/api/v1";

export interface ApiCall {
  method: string;
  /** The path after `/api/v1`, e.g. `/projects/1/mrs`. */
  path: string;
  query: URLSearchParams;
  /** The parsed JSON body, or undefined when there was none. */
  body: unknown;
}

export interface Reply {
  readonly status: number;
  readonly body: unknown;
  readonly __reply: true;
}

/** An answer with a status other than 200 (or a 200 said explicitly). */
export function reply(status: number, body?: unknown): Reply {
  return { status, body, __reply: true };
}

/** A body, a `reply(...)`, or a function of the call returning either. */
export type RouteAnswer = ((call: ApiCall) => unknown) | object | string | number | boolean | null;
export type FakeRoutes = Record<string, RouteAnswer>;

function isReply(value: unknown): value is Reply {
  return typeof value === "object" && value !== null && (value as Reply).__reply === true;
}

export interface FakeApi {
  client: ApiClient;
  fetch: typeof fetch;
  /** Every request made, oldest first. */
  calls: ApiCall[];
  /** Add or replace routes after rendering. */
  routes: FakeRoutes;
  /** The calls with this "<METHOD> <path>" key. */
  callsTo(key: string): ApiCall[];
}

// The first signature types a route function's `call`; the second takes routes built
// elsewhere as a plain record.
export function fakeApi(routes?: FakeRoutes): FakeApi;
export function fakeApi(routes?: Record<string, unknown>): FakeApi;
export function fakeApi(routes: Record<string, unknown> = {}): FakeApi {
  const calls: ApiCall[] = [];
  const table: FakeRoutes = { ...(routes as FakeRoutes) };
  const fakeFetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const request = input instanceof Request ? input : new Request(input, init);
    const url = new URL(request.url);
    const path = url.pathname.replace(/^\/api\/v1/, "");
    const text = await request.text();
    const call: ApiCall = {
      method: request.method,
      path,
      query: url.searchParams,
      body: text ? (JSON.parse(text) as unknown) : undefined,
    };
    calls.push(call);
    const key = `${request.method} ${path}`;
    if (!(key in table)) {
      return Response.json({ message: `No fake route for ${key}` }, { status: 404 });
    }
    const route = table[key];
    const answer = typeof route === "function" ? (route as (c: ApiCall) => unknown)(call) : route;
    const { status, body } = isReply(answer) ? answer : { status: 200, body: answer };
    if (status === 204 || body === undefined) return new Response(null, { status });
    return Response.json(body, { status });
  };
  return {
    client: createApiClient(API_URL, async () => "token", fakeFetch as typeof fetch),
    fetch: fakeFetch as typeof fetch,
    calls,
    routes: table,
    callsTo: (key) => calls.filter((call) => `${call.method} ${call.path}` === key),
  };
}

export interface FakeLive extends LiveHub {
  /** Delivers a message to every subscriber, as the socket would. Wrap in `act()`. */
  emit(message: LiveMessage): void;
  subscribers(): number;
}

export function fakeLive(): FakeLive {
  const listeners = new Set<LiveListener>();
  return {
    subscribe(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    emit(message) {
      for (const listener of [...listeners]) listener(message);
    },
    subscribers: () => listeners.size,
  };
}

export const testConfig: AppConfig = {
  apiUrl: API_URL,
  websocketUrl: "ws://api.test/live",
  region: "eu-west-1",
  userPoolId: "eu-west-1_test",
  clientId: "test-client",
  signIn: { kind: "password", endpoint: "http://api.test/cognito" },
  gitlabUrl: "https://gitlab.test",
};

/** A session that is signed in as `username` and never talks to Cognito. */
export function stubSession(username = "alice"): Session {
  const stub: Partial<Session> = {
    identity: () => ({ username, groups: [] }),
    accessToken: async () => "token",
    signOut: async () => undefined,
    subscribe: () => () => undefined,
  };
  return stub as Session;
}

/** A `Me` with these roles per project id, and optionally global groups (["admin"]). */
export function meWith(projects: Record<number, Role[]>, groups: Role[] = [], username = "alice"): Me {
  return {
    username,
    groups,
    projects: Object.fromEntries(Object.entries(projects).map(([id, roles]) => [id, roles])),
  };
}

export interface RenderPageOptions {
  /** The route pattern the page is mounted at, e.g. "/projects/:projectId/priority". */
  path: string;
  /** Where the router starts, e.g. "/projects/1/priority?target=main". */
  url: string;
  me?: Me;
  routes?: FakeRoutes;
  /** Reuse an API or hub (e.g. to render twice against the same fake). */
  api?: FakeApi;
  live?: FakeLive;
  /** More routes beside the page's (a link's destination, to assert navigation). */
  extraRoutes?: ReactNode;
}

export interface RenderedPage extends RenderResult {
  api: FakeApi;
  live: FakeLive;
  user: ReturnType<typeof userEvent.setup>;
}

export function renderPage(page: ReactElement, options: RenderPageOptions): RenderedPage {
  const api = options.api ?? fakeApi(options.routes);
  const live = options.live ?? fakeLive();
  const me = options.me ?? meWith({}, ["admin"]);
  const user = userEvent.setup();
  const result = render(
    <AppContext.Provider
      value={{ config: testConfig, session: stubSession(me.username), api: api.client, live }}
    >
      <MeContext.Provider value={me}>
        <MemoryRouter initialEntries={[options.url]}>
          <Routes>
            <Route path={options.path} element={page} />
            {options.extraRoutes}
          </Routes>
        </MemoryRouter>
      </MeContext.Provider>
    </AppContext.Provider>,
  );
  return { ...result, api, live, user };
}
