/** Who is signed in, and their Cognito tokens.
 *
 * The cloud signs in on Cognito's hosted pages with the authorization code grant and PKCE;
 * the local stack signs in with a plain form that speaks Cognito's own `InitiateAuth`
 * (USER_PASSWORD_AUTH) to moto. Either way the tokens are refreshed shortly before the
 * access token expires, and on demand when a request finds it stale. */
import type { AppConfig } from "../config";

export interface Tokens {
  accessToken: string;
  idToken: string;
  refreshToken: string;
  /** When the access token expires, in ms since the epoch. */
  expiresAt: number;
}

export interface Identity {
  username: string;
  groups: string[];
}

export class SignInError extends Error {}
/** The session ended (signed out, or the refresh token was refused). */
export class SignedOut extends Error {}
/** Cognito could not be reached: the session stands and the refresh is tried again. */
export class Unreachable extends SignInError {}

const STORAGE_KEY = "merge-assist.session";
const PKCE_KEY = "merge-assist.pkce";
/** Refresh this long before the access token expires. */
const REFRESH_MARGIN_MS = 5 * 60 * 1000;
/** After a refresh that could not reach Cognito, try again this much later. */
const REFRESH_RETRY_MS = 30 * 1000;

interface CognitoResult {
  AccessToken: string;
  IdToken: string;
  RefreshToken?: string;
  ExpiresIn: number;
}

export function decodeJwt(token: string): Record<string, unknown> {
  const part = token.split(".")[1];
  if (!part) throw new SignInError("not a JWT");
  const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
}

function base64Url(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export async function pkcePair(): Promise<{ verifier: string; challenge: string }> {
  const verifier = base64Url(crypto.getRandomValues(new Uint8Array(32)));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return { verifier, challenge: base64Url(new Uint8Array(digest)) };
}

type Listener = (identity: Identity | null) => void;

export interface SessionOptions {
  storage?: Storage;
  fetcher?: typeof fetch;
  now?: () => number;
  /** Where the browser goes (hosted sign-in and sign-out); tests replace it. */
  navigate?: (url: string) => void;
  /** The dashboard's own URL, where Cognito sends the user back. */
  redirectUri?: string;
}

export class Session {
  private tokens: Tokens | null;
  private refreshing: Promise<Tokens> | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly listeners = new Set<Listener>();
  private readonly storage: Storage;
  private readonly fetcher: typeof fetch;
  private readonly now: () => number;
  private readonly navigate: (url: string) => void;
  private readonly redirectUri: string;

  constructor(
    private readonly config: AppConfig,
    options: SessionOptions = {},
  ) {
    this.storage = options.storage ?? window.localStorage;
    this.fetcher = options.fetcher ?? ((input, init) => fetch(input, init));
    this.now = options.now ?? Date.now;
    this.navigate = options.navigate ?? ((url) => window.location.assign(url));
    this.redirectUri = options.redirectUri ?? `${window.location.origin}/`;
    this.tokens = this.load();
    this.schedule();
  }

  get kind(): AppConfig["signIn"]["kind"] {
    return this.config.signIn.kind;
  }

  identity(): Identity | null {
    if (!this.tokens) return null;
    const claims = decodeJwt(this.tokens.accessToken);
    const groups = claims["cognito:groups"];
    return {
      username: String(claims.username ?? claims.sub ?? ""),
      groups: Array.isArray(groups) ? groups.map(String) : [],
    };
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A fresh access token, refreshed first when it expires soon. */
  async accessToken(): Promise<string> {
    if (!this.tokens) throw new SignedOut("not signed in");
    if (this.tokens.expiresAt - this.now() > REFRESH_MARGIN_MS) return this.tokens.accessToken;
    try {
      return (await this.refresh()).accessToken;
    } catch (error) {
      // Offline for a moment: the token in hand is still good until it expires.
      if (error instanceof Unreachable && this.tokens && this.tokens.expiresAt > this.now()) {
        return this.tokens.accessToken;
      }
      throw error;
    }
  }

  async refresh(): Promise<Tokens> {
    if (!this.tokens) throw new SignedOut("not signed in");
    this.refreshing ??= this.exchangeRefreshToken(this.tokens.refreshToken)
      .then((tokens) => {
        this.store(tokens);
        return tokens;
      })
      .catch((error: unknown) => {
        if (error instanceof Unreachable) {
          this.retryRefresh();
          throw error;
        }
        this.store(null);
        throw error instanceof SignedOut ? error : new SignedOut(String(error));
      })
      .finally(() => {
        this.refreshing = null;
      });
    return this.refreshing;
  }

  /** The local stack's sign-in form. */
  async signInWithPassword(username: string, password: string): Promise<void> {
    if (this.config.signIn.kind !== "password") {
      throw new SignInError("this deployment signs in on Cognito's hosted pages");
    }
    const answer = await this.cognito("InitiateAuth", {
      AuthFlow: "USER_PASSWORD_AUTH",
      ClientId: this.config.clientId,
      AuthParameters: { USERNAME: username, PASSWORD: password },
    });
    const result = answer.AuthenticationResult as CognitoResult | undefined;
    if (!result?.RefreshToken) {
      const challenge = typeof answer.ChallengeName === "string" ? answer.ChallengeName : "";
      throw new SignInError(
        challenge ? `Cognito asks for ${challenge}, which this form does not handle` : "no tokens",
      );
    }
    this.store(this.fromCognito(result, result.RefreshToken));
  }

  /** Off to Cognito's hosted sign-in page; it comes back to `redirectUri` with a code. */
  async beginHostedSignIn(returnTo: string = "/"): Promise<void> {
    const signIn = this.config.signIn;
    if (signIn.kind !== "hosted-ui") throw new SignInError("no hosted sign-in here");
    const { verifier, challenge } = await pkcePair();
    const state = base64Url(crypto.getRandomValues(new Uint8Array(16)));
    window.sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state, returnTo }));
    const query = new URLSearchParams({
      response_type: "code",
      client_id: this.config.clientId,
      redirect_uri: this.redirectUri,
      scope: signIn.scopes.join(" "),
      state,
      code_challenge: challenge,
      code_challenge_method: "S256",
    });
    this.navigate(`${signIn.domain}/oauth2/authorize?${query.toString()}`);
  }

  /** Completes a hosted sign-in when `url` is Cognito's redirect back; returns the path
   * the user was on before, or null when `url` is no such redirect. */
  async completeHostedSignIn(url: URL): Promise<string | null> {
    const signIn = this.config.signIn;
    const code = url.searchParams.get("code");
    const error = url.searchParams.get("error");
    if (signIn.kind !== "hosted-ui" || (!code && !error)) return null;
    const saved = window.sessionStorage.getItem(PKCE_KEY);
    window.sessionStorage.removeItem(PKCE_KEY);
    if (error) {
      throw new SignInError(url.searchParams.get("error_description") ?? error);
    }
    const pending = saved ? (JSON.parse(saved) as { verifier: string; state: string; returnTo: string }) : null;
    if (!pending || pending.state !== url.searchParams.get("state")) {
      throw new SignInError("this sign-in was not started here; please sign in again");
    }
    const result = await this.tokenEndpoint({
      grant_type: "authorization_code",
      client_id: this.config.clientId,
      code: code ?? "",
      redirect_uri: this.redirectUri,
      code_verifier: pending.verifier,
    });
    this.store(this.fromCognito(result, result.RefreshToken ?? ""));
    return pending.returnTo;
  }

  /** Ends the session here and revokes its refresh token; on the hosted pages, ends
   * Cognito's own session too. */
  async signOut(): Promise<void> {
    const tokens = this.tokens;
    this.store(null);
    if (!tokens) return;
    const signIn = this.config.signIn;
    try {
      if (signIn.kind === "hosted-ui") {
        await this.fetcher(`${signIn.domain}/oauth2/revoke`, {
          method: "POST",
          headers: { "Content-Type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ token: tokens.refreshToken, client_id: this.config.clientId }),
        });
      } else {
        await this.cognito("RevokeToken", {
          Token: tokens.refreshToken,
          ClientId: this.config.clientId,
        });
      }
    } catch {
      // Signed out here regardless; the refresh token expires on its own.
    }
    if (signIn.kind === "hosted-ui") {
      const query = new URLSearchParams({
        client_id: this.config.clientId,
        logout_uri: this.redirectUri,
      });
      this.navigate(`${signIn.domain}/logout?${query.toString()}`);
    }
  }

  /** Drops the tokens here only, when the API refused them: no revocation, no redirect. */
  forget(): void {
    if (this.tokens) this.store(null);
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.listeners.clear();
  }

  // -- plumbing ---------------------------------------------------------------------

  private async exchangeRefreshToken(refreshToken: string): Promise<Tokens> {
    if (this.config.signIn.kind === "hosted-ui") {
      const result = await this.tokenEndpoint({
        grant_type: "refresh_token",
        client_id: this.config.clientId,
        refresh_token: refreshToken,
      });
      return this.fromCognito(result, refreshToken);
    }
    const answer = await this.cognito("InitiateAuth", {
      AuthFlow: "REFRESH_TOKEN_AUTH",
      ClientId: this.config.clientId,
      AuthParameters: { REFRESH_TOKEN: refreshToken },
    }).catch((error: unknown) => {
      if (error instanceof Unreachable) throw error;
      throw new SignedOut(error instanceof Error ? error.message : String(error));
    });
    const result = answer.AuthenticationResult as CognitoResult | undefined;
    if (!result) throw new SignedOut("the refresh token was refused");
    return this.fromCognito(result, result.RefreshToken ?? refreshToken);
  }

  private fromCognito(result: CognitoResult, refreshToken: string): Tokens {
    return {
      accessToken: result.AccessToken,
      idToken: result.IdToken,
      refreshToken,
      expiresAt: this.now() + result.ExpiresIn * 1000,
    };
  }

  private async tokenEndpoint(form: Record<string, string>): Promise<CognitoResult> {
    const signIn = this.config.signIn;
    if (signIn.kind !== "hosted-ui") throw new SignInError("no token endpoint here");
    let response: Response;
    try {
      response = await this.fetcher(`${signIn.domain}/oauth2/token`, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(form),
      });
    } catch {
      throw new Unreachable("the sign-in service cannot be reached");
    }
    const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    if (!response.ok) {
      const message = String(body.error_description ?? body.error ?? response.status);
      throw form.grant_type === "refresh_token" ? new SignedOut(message) : new SignInError(message);
    }
    return {
      AccessToken: String(body.access_token),
      IdToken: String(body.id_token),
      RefreshToken: typeof body.refresh_token === "string" ? body.refresh_token : undefined,
      ExpiresIn: Number(body.expires_in ?? 3600),
    };
  }

  private async cognito(action: string, body: unknown): Promise<Record<string, unknown>> {
    const signIn = this.config.signIn;
    const endpoint =
      signIn.kind === "password"
        ? signIn.endpoint
        : `https://cognito-idp.${this.config.region}.amazonaws.com/`;
    let response: Response;
    try {
      response = await this.fetcher(endpoint, {
        method: "POST",
        headers: {
          "Content-Type": "application/x-amz-json-1.1",
          "X-Amz-Target": `AWSCognitoIdentityProviderService.${action}`,
        },
        body: JSON.stringify(body),
      });
    } catch {
      throw new Unreachable("the sign-in service cannot be reached");
    }
    const answer = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    if (!response.ok) {
      const type = String(answer.__type ?? "");
      if (type.endsWith("NotAuthorizedException") || type.endsWith("UserNotFoundException")) {
        throw new SignInError("Incorrect username or password.");
      }
      throw new SignInError(String(answer.message ?? answer.Message ?? `HTTP ${response.status}`));
    }
    return answer;
  }

  private load(): Tokens | null {
    try {
      const raw = this.storage.getItem(STORAGE_KEY);
      return raw ? (JSON.parse(raw) as Tokens) : null;
    } catch {
      return null;
    }
  }

  private store(tokens: Tokens | null): void {
    this.tokens = tokens;
    if (tokens) this.storage.setItem(STORAGE_KEY, JSON.stringify(tokens));
    else this.storage.removeItem(STORAGE_KEY);
    this.schedule();
    const identity = this.identity();
    for (const listener of this.listeners) listener(identity);
  }

  private retryRefresh(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.refresh().catch(() => undefined);
    }, REFRESH_RETRY_MS);
  }

  /** Refreshes silently shortly before the access token expires. */
  private schedule(): void {
    clearTimeout(this.timer);
    if (!this.tokens) return;
    const delay = Math.max(this.tokens.expiresAt - this.now() - REFRESH_MARGIN_MS, 1000);
    this.timer = setTimeout(() => {
      this.refresh().catch(() => undefined);
    }, delay);
  }
}
