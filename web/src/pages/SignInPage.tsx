/** Signing in: the local stack's username/password form, or the button to Cognito's
 * hosted pages in the cloud. */
import { useState, type FormEvent } from "react";
import { useLocation, useNavigate } from "react-router-dom";
import type { Session } from "../auth/session";
import type { AppConfig } from "../config";
import { describeError } from "../components/states";
import { useDocumentTitle } from "../components/useDocumentTitle";
import "./SignInPage.css";

/** What other routes hand the sign-in page through the router's location state. */
export interface SignInState {
  /** Where the user wanted to go. */
  from?: string;
  /** Why they are here (the session ended). */
  notice?: string;
  /** A hosted sign-in that failed on the way back. */
  error?: string;
}

export function SignInPage({ config, session }: { config: AppConfig; session: Session }) {
  const location = useLocation();
  const navigate = useNavigate();
  const state = (location.state as SignInState | null) ?? {};
  const returnTo = state.from && state.from !== "/sign-in" ? state.from : "/";
  useDocumentTitle("Sign in");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(state.error ?? null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await session.signInWithPassword(username.trim(), password);
      navigate(returnTo, { replace: true });
    } catch (failure) {
      setError(describeError(failure));
      setBusy(false);
    }
  };

  const hosted = async () => {
    setBusy(true);
    setError(null);
    try {
      await session.beginHostedSignIn(returnTo);
    } catch (failure) {
      setError(describeError(failure));
      setBusy(false);
    }
  };

  return (
    <main className="sign-in" id="main">
      <div className="sign-in-card">
        <p className="sign-in-brand">
          <span className="brand-mark" aria-hidden="true">
            ⇶
          </span>{" "}
          Merge Assist
        </p>
        <h1>Sign in</h1>
        <p className="muted">The merge queue for your GitLab projects.</p>
        {state.notice && !error && (
          <p className="sign-in-notice notice tone-info" role="status">
            {state.notice}. Sign in again to continue.
          </p>
        )}
        {error && (
          <p className="sign-in-error notice tone-bad" role="alert">
            {error}
          </p>
        )}
        {config.signIn.kind === "password" ? (
          <form onSubmit={(event) => void submit(event)} aria-busy={busy}>
            <label className="field">
              <span>Username</span>
              <input
                name="username"
                autoComplete="username"
                required
                autoFocus
                value={username}
                onChange={(event) => setUsername(event.target.value)}
              />
            </label>
            <label className="field">
              <span>Password</span>
              <input
                name="password"
                type="password"
                autoComplete="current-password"
                required
                value={password}
                onChange={(event) => setPassword(event.target.value)}
              />
            </label>
            <button type="submit" className="button button-primary sign-in-submit" disabled={busy}>
              {busy && <span className="spinner" aria-hidden="true" />}
              Sign in
            </button>
          </form>
        ) : (
          <button
            type="button"
            className="button button-primary sign-in-submit"
            disabled={busy}
            onClick={() => void hosted()}
          >
            {busy && <span className="spinner" aria-hidden="true" />}
            Sign in with Cognito
          </button>
        )}
      </div>
    </main>
  );
}
