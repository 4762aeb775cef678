/** The app shell: config, session, the signed-in services (API client, `/me`, the live
 * socket) and the routes. */
import { useCallback, useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { Navigate, Outlet, Route, Routes, useLocation, useNavigate } from "react-router-dom";
import { createApiClient, unwrap, ApiError, type ApiClient, type Me } from "./api/client";
import { MeContext } from "./app/access";
import { AppContext, type AppServices } from "./app/context";
import { Layout, HomeRedirect, NotFoundPage } from "./app/Layout";
import { SocketHub } from "./app/live-hub";
import { Session, type Identity } from "./auth/session";
import { loadConfig as loadDeploymentConfig, type AppConfig } from "./config";
import { ErrorState, Loading, describeError } from "./components/states";
import { useQuery } from "./hooks/useQuery";
import type { LiveOptions } from "./live/updates";
import { BatchPage } from "./pages/BatchPage";
import { BoardPage } from "./pages/BoardPage";
import { ConfigPage } from "./pages/ConfigPage";
import { EventsPage } from "./pages/EventsPage";
import { HealthPage } from "./pages/HealthPage";
import { MergeRequestPage } from "./pages/MergeRequestPage";
import { PriorityPage } from "./pages/PriorityPage";
import { SignInPage, type SignInState } from "./pages/SignInPage";

export const SESSION_ENDED = "Your session has ended";

export interface AppProps {
  loadConfig?: () => Promise<AppConfig>;
  createSession?: (config: AppConfig) => Session;
  /** Opens the live socket; tests pass a fake. */
  connect?: (options: LiveOptions) => () => void;
  /** The API's transport; tests pass a fake. */
  fetcher?: typeof fetch;
}

type Boot =
  | { phase: "loading" }
  | { phase: "failed"; error: unknown }
  | {
      phase: "ready";
      config: AppConfig;
      session: Session;
      /** Where a completed hosted sign-in returns to. */
      returnTo: string | null;
      signInError: string | null;
    };

async function boot(
  load: () => Promise<AppConfig>,
  create: (config: AppConfig) => Session,
): Promise<Boot> {
  let config: AppConfig;
  try {
    config = await load();
  } catch (error) {
    return { phase: "failed", error };
  }
  const session = create(config);
  let returnTo: string | null = null;
  let signInError: string | null = null;
  try {
    returnTo = await session.completeHostedSignIn(new URL(window.location.href));
  } catch (error) {
    signInError = describeError(error);
  }
  return { phase: "ready", config, session, returnTo, signInError };
}

export function App({ loadConfig = loadDeploymentConfig, createSession, connect, fetcher }: AppProps) {
  const [state, setState] = useState<Boot>({ phase: "loading" });
  // Booting twice would spend the hosted sign-in's one-time code twice (StrictMode runs
  // effects twice), so the boot is started once per App.
  const booting = useRef<Promise<Boot> | null>(null);
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    let current = true;
    booting.current ??= boot(loadConfig, createSession ?? ((config) => new Session(config)));
    void booting.current.then((result) => {
      if (current) setState(result);
    });
    return () => {
      current = false;
    };
  }, [loadConfig, createSession, attempt]);

  if (state.phase === "loading") {
    return (
      <div className="full-page">
        <Loading what="Merge Assist" />
      </div>
    );
  }
  if (state.phase === "failed") {
    return (
      <main className="full-page">
        <div className="full-page-card" role="alert">
          <p className="brand-mark" aria-hidden="true">
            ⇶
          </p>
          <h1>Merge Assist cannot start</h1>
          <p>{describeError(state.error)}</p>
          <p className="muted">
            The dashboard reads its settings from <code>/config.json</code>, which the deployment
            writes. If this persists, the deployment is incomplete; ask whoever runs Merge Assist.
          </p>
          <button
            type="button"
            className="button button-primary"
            onClick={() => {
              booting.current = null;
              setState({ phase: "loading" });
              setAttempt((n) => n + 1);
            }}
          >
            Try again
          </button>
        </div>
      </main>
    );
  }
  return (
    <SignedInRoutes
      config={state.config}
      session={state.session}
      returnTo={state.returnTo}
      signInError={state.signInError}
      connect={connect}
      fetcher={fetcher}
    />
  );
}

function SignedInRoutes({
  config,
  session,
  returnTo,
  signInError,
  connect,
  fetcher,
}: {
  config: AppConfig;
  session: Session;
  returnTo: string | null;
  signInError: string | null;
  connect?: AppProps["connect"];
  fetcher?: typeof fetch;
}) {
  const navigate = useNavigate();
  const [identity, setIdentity] = useState<Identity | null>(() => session.identity());
  const [notice, setNotice] = useState<string | null>(null);
  const signingOut = useRef(false);

  useEffect(
    () =>
      session.subscribe((next) => {
        setIdentity(next);
        if (next) setNotice(null);
        else if (!signingOut.current) setNotice(SESSION_ENDED);
      }),
    [session],
  );

  // Cognito's redirect back: go where the user was, without the code in the address bar.
  const handledRedirect = useRef(false);
  useEffect(() => {
    if (handledRedirect.current) return;
    handledRedirect.current = true;
    if (returnTo !== null) navigate(returnTo, { replace: true });
    else if (signInError !== null) {
      navigate("/sign-in", { replace: true, state: { error: signInError } satisfies SignInState });
    }
  }, [navigate, returnTo, signInError]);

  const signOut = useCallback(async () => {
    signingOut.current = true;
    try {
      await session.signOut();
    } finally {
      signingOut.current = false;
    }
    navigate("/sign-in", { replace: true });
  }, [navigate, session]);

  return (
    <Routes>
      <Route
        path="/sign-in"
        element={<SignInRoute config={config} session={session} signedIn={identity !== null} />}
      />
      <Route
        element={
          <RequireSignedIn signedIn={identity !== null} notice={notice}>
            <SignedInShell config={config} session={session} connect={connect} fetcher={fetcher} />
          </RequireSignedIn>
        }
      >
        <Route element={<Layout onSignOut={signOut} />}>
          <Route index element={<HomeRedirect />} />
          <Route path="projects/:projectId" element={<BoardPage />} />
          <Route path="projects/:projectId/mrs/:iid" element={<MergeRequestPage />} />
          <Route path="projects/:projectId/batches/:batchId" element={<BatchPage />} />
          <Route path="projects/:projectId/priority" element={<PriorityPage />} />
          <Route path="projects/:projectId/config" element={<ConfigPage />} />
          <Route path="projects/:projectId/events" element={<EventsPage />} />
          <Route path="health" element={<HealthPage />} />
          <Route path="*" element={<NotFoundPage />} />
        </Route>
      </Route>
    </Routes>
  );
}

function SignInRoute({ config, session, signedIn }: { config: AppConfig; session: Session; signedIn: boolean }) {
  const location = useLocation();
  const from = (location.state as SignInState | null)?.from;
  if (signedIn) return <Navigate to={from ?? "/"} replace />;
  return <SignInPage config={config} session={session} />;
}

function RequireSignedIn({
  signedIn,
  notice,
  children,
}: {
  signedIn: boolean;
  notice: string | null;
  children: ReactNode;
}) {
  const location = useLocation();
  if (!signedIn) {
    const state: SignInState = {
      from: `${location.pathname}${location.search}${location.hash}`,
      ...(notice ? { notice } : {}),
    };
    return <Navigate to="/sign-in" replace state={state} />;
  }
  return <>{children}</>;
}

/** The services of a signed-in user; the pages render only once `/me` is known. */
function SignedInShell({
  config,
  session,
  connect,
  fetcher,
}: {
  config: AppConfig;
  session: Session;
  connect?: AppProps["connect"];
  fetcher?: typeof fetch;
}) {
  const api: ApiClient = useMemo(() => {
    const client = createApiClient(config.apiUrl, () => session.accessToken(), fetcher);
    // The API refusing the token ends the session, wherever the request came from.
    client.use({
      onResponse({ response }) {
        if (response.status === 401) session.forget();
        return response;
      },
    });
    return client;
  }, [config, session, fetcher]);

  const live = useMemo(
    () => new SocketHub({ url: config.websocketUrl, accessToken: () => session.accessToken() }, connect),
    [config, session, connect],
  );
  useEffect(() => {
    live.open();
    return () => live.close();
  }, [live]);

  const services: AppServices = useMemo(() => ({ config, session, api, live }), [config, session, api, live]);
  const me = useQuery<Me>(async () => unwrap(await api.GET("/api/v1/me")), [api]);

  if (me.error && !(me.error instanceof ApiError && me.error.status === 401)) {
    return (
      <main className="full-page">
        <div className="full-page-card">
          <h1>Merge Assist</h1>
          <ErrorState error={me.error} onRetry={me.reload} title="Your account could not be loaded" />
        </div>
      </main>
    );
  }
  if (!me.data) {
    return (
      <div className="full-page">
        <Loading what="your account" />
      </div>
    );
  }
  return (
    <AppContext.Provider value={services}>
      <MeContext.Provider value={me.data}>
        <Outlet />
      </MeContext.Provider>
    </AppContext.Provider>
  );
}
