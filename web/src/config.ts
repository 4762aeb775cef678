/** The deployment's settings, written next to the app at deploy time (`/config.json`):
 * by the CDK stack in the cloud, by `merge-assist local` on the local stack. */

export type SignIn =
  /** Cognito's hosted pages, authorization code + PKCE (the cloud). */
  | { kind: "hosted-ui"; domain: string; scopes: string[] }
  /** A plain form posting Cognito's USER_PASSWORD_AUTH to `endpoint` (the local stack). */
  | { kind: "password"; endpoint: string };

export interface AppConfig {
  /** Base URL of the REST API, e.g. `/api/v1`. */
  apiUrl: string;
  /** The live-updates WebSocket (`?token=` is appended). */
  websocketUrl: string;
  region: string;
  userPoolId: string;
  clientId: string;
  signIn: SignIn;
  /** GitLab's base URL, for links to merge requests and pipelines. */
  gitlabUrl?: string;
}

export class ConfigError extends Error {}

function isSignIn(value: unknown): value is SignIn {
  if (typeof value !== "object" || value === null) return false;
  const signIn = value as Record<string, unknown>;
  if (signIn.kind === "hosted-ui") {
    return typeof signIn.domain === "string" && Array.isArray(signIn.scopes);
  }
  return signIn.kind === "password" && typeof signIn.endpoint === "string";
}

export function parseConfig(value: unknown): AppConfig {
  if (typeof value !== "object" || value === null) {
    throw new ConfigError("config.json is not a JSON object");
  }
  const config = value as Record<string, unknown>;
  for (const key of ["apiUrl", "websocketUrl", "region", "userPoolId", "clientId"]) {
    if (typeof config[key] !== "string" || config[key] === "") {
      throw new ConfigError(`config.json has no ${key}`);
    }
  }
  if (!isSignIn(config.signIn)) {
    throw new ConfigError("config.json has no valid signIn");
  }
  return config as unknown as AppConfig;
}

export async function loadConfig(fetcher: typeof fetch = fetch): Promise<AppConfig> {
  const response = await fetcher("/config.json", { cache: "no-store" });
  if (!response.ok) {
    throw new ConfigError(`config.json could not be loaded (HTTP ${response.status})`);
  }
  return parseConfig(await response.json());
}
