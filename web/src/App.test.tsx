import { act, render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter } from "react-router-dom";
import { describe, expect, it, vi } from "vitest";
import { App } from "./App";
import { Session } from "./auth/session";
import { ConfigError } from "./config";
import type { LiveOptions } from "./live/updates";
import { MemoryStorage, fakeCognito, passwordConfig } from "./test/cognito";
import { fakeApi, reply, type FakeRoutes } from "./test/render";
import { projectView } from "./test/shell-fixtures";

/** Signing in, `/me`, the projects and the board are several round trips. */
const SLOW = { timeout: 3000 };

function boardRoutes() {
  return {
    "GET /me": { username: "alice", groups: [], projects: { "1": ["viewer"] } },
    "GET /projects": [projectView()],
    "GET /projects/1": projectView(),
    "GET /projects/1/batches": [],
    "GET /projects/1/mrs": { items: [] },
  };
}

function renderApp(url: string, routes: FakeRoutes = boardRoutes()) {
  const storage = new MemoryStorage();
  const cognito = fakeCognito();
  const api = fakeApi(routes);
  const sockets: LiveOptions[] = [];
  const connect = vi.fn((options: LiveOptions) => {
    sockets.push(options);
    return () => undefined;
  });
  const sessions: Session[] = [];
  const createSession = (config: typeof passwordConfig) => {
    const session = new Session(config, { storage, fetcher: cognito.fetcher });
    sessions.push(session);
    return session;
  };
  const user = userEvent.setup();
  render(
    <MemoryRouter initialEntries={[url]}>
      <App
        loadConfig={async () => passwordConfig}
        createSession={createSession}
        connect={connect}
        fetcher={api.fetch}
      />
    </MemoryRouter>,
  );
  return { user, api, sockets, connect, storage, sessions };
}

async function signIn(user: ReturnType<typeof userEvent.setup>) {
  await user.type(await screen.findByLabelText("Username"), "alice");
  await user.type(screen.getByLabelText("Password"), "correct horse");
  await user.click(screen.getByRole("button", { name: "Sign in" }));
}

describe("App", () => {
  it("shows a full-page error when the config cannot be loaded", async () => {
    render(
      <MemoryRouter>
        <App loadConfig={() => Promise.reject(new ConfigError("config.json could not be loaded (HTTP 404)"))} />
      </MemoryRouter>,
    );
    const alert = await screen.findByRole("alert");
    expect(within(alert).getByRole("heading", { name: "Merge Assist cannot start" })).toBeInTheDocument();
    expect(alert).toHaveTextContent("config.json could not be loaded (HTTP 404)");
    expect(within(alert).getByRole("button", { name: "Try again" })).toBeInTheDocument();
  });

  it("sends a signed-out user to sign in, then to where they were going, live", async () => {
    const app = renderApp("/projects/1");
    expect(await screen.findByRole("heading", { name: "Sign in" })).toBeInTheDocument();
    await signIn(app.user);

    expect(await screen.findByRole("heading", { level: 1, name: "Queue" }, SLOW)).toBeInTheDocument();
    expect(await screen.findByRole("region", { name: "Queued" }, SLOW)).toBeInTheDocument();
    expect(within(screen.getByRole("banner")).getByText("alice")).toBeInTheDocument();
    // One socket for the whole app, shown as reconnecting until it opens.
    expect(app.connect).toHaveBeenCalledTimes(1);
    expect(within(screen.getByRole("banner")).getByRole("status")).toHaveTextContent("Reconnecting…");
    act(() => app.sockets[0]?.onState?.("open"));
    expect(within(screen.getByRole("banner")).getByRole("status")).toHaveTextContent("Live");
  });

  it("ends the session when the API refuses the token", async () => {
    const routes = { ...boardRoutes(), "GET /projects/1/mrs": reply(401, { message: "token expired" }) };
    const app = renderApp("/projects/1", routes);
    await signIn(app.user);
    expect(await screen.findByText(/Your session has ended/, {}, SLOW)).toBeInTheDocument();
    expect(screen.getByRole("heading", { name: "Sign in" })).toBeInTheDocument();
    expect(app.sessions[0]?.identity()).toBeNull();
  });

  it("signs out from the header", async () => {
    const app = renderApp("/");
    await signIn(app.user);
    await screen.findByRole("region", { name: "Queued" }, SLOW);
    await app.user.click(screen.getByRole("button", { name: "Sign out" }));
    expect(await screen.findByRole("heading", { name: "Sign in" })).toBeInTheDocument();
    expect(screen.queryByText(/Your session has ended/)).not.toBeInTheDocument();
  });

  it("explains an empty installation", async () => {
    const app = renderApp("/", { ...boardRoutes(), "GET /projects": [] });
    await signIn(app.user);
    expect(await screen.findByText("No projects yet", {}, SLOW)).toBeInTheDocument();
  });
});
