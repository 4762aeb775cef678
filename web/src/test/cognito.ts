/** A stand-in for Cognito's `InitiateAuth` / token endpoints, for the session's tests. */
import type { AppConfig } from "../config";

export function fakeJwt(claims: Record<string, unknown>): string {
  const encode = (value: unknown) =>
    btoa(JSON.stringify(value)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return `${encode({ alg: "none" })}.${encode(claims)}.signature`;
}

export class MemoryStorage implements Storage {
  private readonly values = new Map<string, string>();
  get length(): number {
    return this.values.size;
  }
  clear(): void {
    this.values.clear();
  }
  getItem(key: string): string | null {
    return this.values.get(key) ?? null;
  }
  key(index: number): string | null {
    return [...this.values.keys()][index] ?? null;
  }
  removeItem(key: string): void {
    this.values.delete(key);
  }
  setItem(key: string, value: string): void {
    this.values.set(key, value);
  }
}

export const passwordConfig: AppConfig = {
  apiUrl: "http://api.test/api/v1",
  websocketUrl: "ws://api.test/live",
  region: "eu-west-1",
  userPoolId: "eu-west-1_test",
  clientId: "test-client",
  signIn: { kind: "password", endpoint: "http://cognito.test/" },
};

export const hostedConfig: AppConfig = {
  ...passwordConfig,
  signIn: { kind: "hosted-ui", domain: "https://auth.test", scopes: ["openid", "email"] },
};

export interface CognitoCall {
  url: string;
  target: string | null;
  body: Record<string, unknown>;
  form: URLSearchParams | null;
}

/** Answers USER_PASSWORD_AUTH for `users`, REFRESH_TOKEN_AUTH while `refreshAllowed`, and
 * RevokeToken; counts tokens so each answer is distinguishable. */
export function fakeCognito(users: Record<string, string> = { alice: "correct horse" }) {
  const calls: CognitoCall[] = [];
  let issued = 0;
  const state = { refreshAllowed: true, expiresIn: 3600, offline: false };
  const tokens = (username: string, refresh = true) => {
    issued += 1;
    return {
      AuthenticationResult: {
        AccessToken: fakeJwt({ username, "cognito:groups": ["viewer"], n: issued }),
        IdToken: fakeJwt({ "cognito:username": username }),
        ...(refresh ? { RefreshToken: `refresh-${username}` } : {}),
        ExpiresIn: state.expiresIn,
      },
    };
  };
  const fetcher = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const headers = new Headers(init?.headers);
    const target = headers.get("X-Amz-Target");
    const raw = typeof init?.body === "string" ? init.body : "";
    const form = init?.body instanceof URLSearchParams ? init.body : null;
    const body = raw ? (JSON.parse(raw) as Record<string, unknown>) : {};
    calls.push({ url: String(input), target, body, form });
    if (state.offline) throw new TypeError("Failed to fetch");
    const refused = (message: string) =>
      Response.json({ __type: "NotAuthorizedException", message }, { status: 400 });
    if (target?.endsWith("InitiateAuth")) {
      const parameters = body.AuthParameters as Record<string, string>;
      if (body.AuthFlow === "USER_PASSWORD_AUTH") {
        if (users[parameters.USERNAME ?? ""] !== parameters.PASSWORD) return refused("Incorrect username or password.");
        return Response.json(tokens(parameters.USERNAME ?? ""));
      }
      if (body.AuthFlow === "REFRESH_TOKEN_AUTH") {
        if (!state.refreshAllowed) return refused("Refresh Token has been revoked");
        return Response.json(tokens(String(parameters.REFRESH_TOKEN).replace("refresh-", ""), false));
      }
    }
    if (target?.endsWith("RevokeToken")) return Response.json({});
    if (String(input).endsWith("/oauth2/token") && form) {
      if (form.get("grant_type") === "authorization_code" && form.get("code") === "good-code") {
        const result = tokens("carol").AuthenticationResult;
        return Response.json({
          access_token: result.AccessToken,
          id_token: result.IdToken,
          refresh_token: result.RefreshToken,
          expires_in: result.ExpiresIn,
        });
      }
      return Response.json({ error: "invalid_grant" }, { status: 400 });
    }
    return Response.json({ message: "unexpected call" }, { status: 500 });
  };
  return { fetcher: fetcher as typeof fetch, calls, state };
}
