import { createHash } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { MemoryStorage, fakeCognito, hostedConfig, passwordConfig } from "../test/cognito";
import { Session, SignInError, SignedOut, Unreachable, pkcePair } from "./session";

const base64Url = (bytes: Buffer) => bytes.toString("base64").replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

describe("pkcePair", () => {
  it("makes a verifier and its S256 challenge, fresh each time", async () => {
    const { verifier, challenge } = await pkcePair();
    expect(verifier).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(challenge).toBe(base64Url(createHash("sha256").update(verifier).digest()));
    expect((await pkcePair()).verifier).not.toBe(verifier);
  });
});

describe("Session with the password form", () => {
  let sessions: Session[] = [];
  const open = (cognito = fakeCognito(), storage: Storage = new MemoryStorage(), now?: () => number) => {
    const session = new Session(passwordConfig, { storage, fetcher: cognito.fetcher, ...(now ? { now } : {}) });
    sessions.push(session);
    return session;
  };

  afterEach(() => {
    for (const session of sessions) session.dispose();
    sessions = [];
    vi.useRealTimers();
  });

  it("signs in with USER_PASSWORD_AUTH and keeps the tokens", async () => {
    const cognito = fakeCognito();
    const storage = new MemoryStorage();
    const session = open(cognito, storage);
    const seen: (string | null)[] = [];
    session.subscribe((identity) => seen.push(identity?.username ?? null));

    await session.signInWithPassword("alice", "correct horse");

    expect(cognito.calls[0]?.target).toBe("AWSCognitoIdentityProviderService.InitiateAuth");
    expect(cognito.calls[0]?.body).toMatchObject({
      AuthFlow: "USER_PASSWORD_AUTH",
      ClientId: "test-client",
      AuthParameters: { USERNAME: "alice", PASSWORD: "correct horse" },
    });
    expect(session.identity()).toEqual({ username: "alice", groups: ["viewer"] });
    expect(seen).toEqual(["alice"]);
    expect(await session.accessToken()).toMatch(/\./);
    // A reload finds the session again.
    expect(open(cognito, storage).identity()?.username).toBe("alice");
  });

  it("refuses a wrong password with Cognito's words", async () => {
    const session = open();
    await expect(session.signInWithPassword("alice", "nope")).rejects.toThrow(
      new SignInError("Incorrect username or password."),
    );
    expect(session.identity()).toBeNull();
    await expect(session.accessToken()).rejects.toBeInstanceOf(SignedOut);
  });

  it("refreshes silently shortly before the access token expires", async () => {
    vi.useFakeTimers();
    const cognito = fakeCognito();
    const session = open(cognito, new MemoryStorage(), () => Date.now());
    await session.signInWithPassword("alice", "correct horse");
    const first = await session.accessToken();

    // 54 minutes in: nothing yet (the margin is 5 minutes of the hour).
    await vi.advanceTimersByTimeAsync(54 * 60_000);
    expect(cognito.calls.filter((call) => call.body.AuthFlow === "REFRESH_TOKEN_AUTH")).toHaveLength(0);

    await vi.advanceTimersByTimeAsync(61_000);
    const refreshes = cognito.calls.filter((call) => call.body.AuthFlow === "REFRESH_TOKEN_AUTH");
    expect(refreshes).toHaveLength(1);
    expect(refreshes[0]?.body.AuthParameters).toEqual({ REFRESH_TOKEN: "refresh-alice" });
    const second = await session.accessToken();
    expect(second).not.toBe(first);
    expect(session.identity()?.username).toBe("alice");
  });

  it("refreshes on demand when the stored token is about to expire", async () => {
    let now = 1_000_000;
    const cognito = fakeCognito();
    const session = open(cognito, new MemoryStorage(), () => now);
    await session.signInWithPassword("alice", "correct horse");
    const first = await session.accessToken();
    now += 58 * 60_000;
    const [a, b] = await Promise.all([session.accessToken(), session.accessToken()]);
    expect(a).not.toBe(first);
    expect(b).toBe(a);
    // Two callers, one refresh.
    expect(cognito.calls.filter((call) => call.body.AuthFlow === "REFRESH_TOKEN_AUTH")).toHaveLength(1);
  });

  it("signs out when the refresh token is refused", async () => {
    let now = 1_000_000;
    const cognito = fakeCognito();
    const session = open(cognito, new MemoryStorage(), () => now);
    await session.signInWithPassword("alice", "correct horse");
    const seen: (string | null)[] = [];
    session.subscribe((identity) => seen.push(identity?.username ?? null));

    cognito.state.refreshAllowed = false;
    now += 58 * 60_000;
    await expect(session.accessToken()).rejects.toBeInstanceOf(SignedOut);
    expect(session.identity()).toBeNull();
    expect(seen).toEqual([null]);
    await expect(session.accessToken()).rejects.toBeInstanceOf(SignedOut);
  });

  it("keeps the session through a refresh that cannot reach Cognito, and tries again", async () => {
    vi.useFakeTimers();
    const cognito = fakeCognito();
    const session = open(cognito, new MemoryStorage(), () => Date.now());
    await session.signInWithPassword("alice", "correct horse");
    const first = await session.accessToken();
    const refreshes = () => cognito.calls.filter((call) => call.body.AuthFlow === "REFRESH_TOKEN_AUTH").length;

    cognito.state.offline = true;
    await vi.advanceTimersByTimeAsync(55 * 60_000 + 1000);
    expect(refreshes()).toBe(1);
    expect(session.identity()?.username).toBe("alice");
    // The token in hand is still good for a few minutes.
    expect(await session.accessToken()).toBe(first);

    cognito.state.offline = false;
    await vi.advanceTimersByTimeAsync(30_000);
    expect(await session.accessToken()).not.toBe(first);
    expect(session.identity()?.username).toBe("alice");
  });

  it("says Cognito cannot be reached once the token has run out offline", async () => {
    let now = 1_000_000;
    const cognito = fakeCognito();
    const session = open(cognito, new MemoryStorage(), () => now);
    await session.signInWithPassword("alice", "correct horse");
    cognito.state.offline = true;
    now += 61 * 60_000;
    await expect(session.accessToken()).rejects.toBeInstanceOf(Unreachable);
    expect(session.identity()?.username).toBe("alice");
  });

  it("revokes the refresh token on sign-out", async () => {
    const cognito = fakeCognito();
    const session = open(cognito);
    await session.signInWithPassword("alice", "correct horse");
    await session.signOut();
    expect(session.identity()).toBeNull();
    expect(cognito.calls.at(-1)).toMatchObject({
      target: "AWSCognitoIdentityProviderService.RevokeToken",
      body: { Token: "refresh-alice", ClientId: "test-client" },
    });
  });
});

describe("Session with Cognito's hosted pages", () => {
  const navigate = vi.fn<(url: string) => void>();
  let session: Session;
  let cognito: ReturnType<typeof fakeCognito>;

  beforeEach(() => {
    navigate.mockReset();
    window.sessionStorage.clear();
    cognito = fakeCognito();
    session = new Session(hostedConfig, {
      storage: new MemoryStorage(),
      fetcher: cognito.fetcher,
      navigate,
      redirectUri: "https://dashboard.test/",
    });
  });
  afterEach(() => session.dispose());

  async function begin(): Promise<URL> {
    await session.beginHostedSignIn("/projects/1/events?target=main");
    expect(navigate).toHaveBeenCalledTimes(1);
    return new URL(String(navigate.mock.calls[0]?.[0]));
  }

  it("sends the user to the authorize endpoint with PKCE and a state", async () => {
    const url = await begin();
    expect(`${url.origin}${url.pathname}`).toBe("https://auth.test/oauth2/authorize");
    expect(url.searchParams.get("response_type")).toBe("code");
    expect(url.searchParams.get("client_id")).toBe("test-client");
    expect(url.searchParams.get("redirect_uri")).toBe("https://dashboard.test/");
    expect(url.searchParams.get("scope")).toBe("openid email");
    expect(url.searchParams.get("code_challenge_method")).toBe("S256");
    expect(url.searchParams.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(url.searchParams.get("state")).toMatch(/^[A-Za-z0-9_-]{16,}$/);
  });

  it("completes the sign-in with the verifier and returns where the user was", async () => {
    const url = await begin();
    const saved = JSON.parse(window.sessionStorage.getItem("merge-assist.pkce") ?? "{}") as { verifier: string };
    const back = new URL(`https://dashboard.test/?code=good-code&state=${url.searchParams.get("state")}`);

    expect(await session.completeHostedSignIn(back)).toBe("/projects/1/events?target=main");

    const form = cognito.calls.at(-1)?.form;
    expect(form?.get("grant_type")).toBe("authorization_code");
    expect(form?.get("code_verifier")).toBe(saved.verifier);
    expect(createHash("sha256").update(saved.verifier).digest("base64url")).toBe(url.searchParams.get("code_challenge"));
    expect(session.identity()?.username).toBe("carol");
  });

  it("refuses a callback whose state is not the one it sent", async () => {
    await begin();
    const forged = new URL("https://dashboard.test/?code=good-code&state=someone-elses");
    await expect(session.completeHostedSignIn(forged)).rejects.toBeInstanceOf(SignInError);
    expect(session.identity()).toBeNull();
    expect(cognito.calls.some((call) => call.url.endsWith("/oauth2/token"))).toBe(false);
  });

  it("ignores an address that is no callback", async () => {
    expect(await session.completeHostedSignIn(new URL("https://dashboard.test/projects/1"))).toBeNull();
  });

  it("reports Cognito's error from the callback", async () => {
    await begin();
    const denied = new URL("https://dashboard.test/?error=access_denied&error_description=User+is+disabled");
    await expect(session.completeHostedSignIn(denied)).rejects.toThrow("User is disabled");
  });
});
