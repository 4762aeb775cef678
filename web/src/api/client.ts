/** The typed API client: paths and bodies come from the API's own OpenAPI document
 * (`openapi.json`, kept in step with the backend by a test; `npm run api-types` turns it
 * into `schema.d.ts`). */
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type MergeRequest = Schemas["MergeRequestState"];
export type MergeRequestView = Schemas["MergeRequestView"];
export type Batch = Schemas["Batch"];
export type BatchStep = Schemas["BatchStep"];
export type AuditEntry = Schemas["AuditEntry"];
export type ProjectView = Schemas["ProjectView"];
export type ProjectConfig = Schemas["ProjectConfig"];
export type ConfigChange = Schemas["ConfigChange"];
export type Health = Schemas["Health"];
export type Me = Schemas["Me"];
export type Role = Schemas["Role"];
export type StatusCategory = Schemas["StatusCategory"];

export type ApiClient = ReturnType<typeof createClient<paths>>;

/** What the API said when it refused: its status and its `message`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** A client whose `baseUrl` is the API's `/api/v1` root without it (the paths carry it). */
export function createApiClient(
  apiUrl: string,
  accessToken: () => Promise<string>,
  fetcher?: typeof fetch,
): ApiClient {
  const root = apiUrl.replace(/\/api\/v1\/?$/, "");
  const client = createClient<paths>({
    baseUrl: root,
    ...(fetcher ? { fetch: fetcher } : {}),
  });
  const auth: Middleware = {
    async onRequest({ request }) {
      request.headers.set("Authorization", `Bearer ${await accessToken()}`);
      return request;
    },
  };
  client.use(auth);
  return client;
}

/** The data of an openapi-fetch answer, or an ApiError with the API's message. */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.error !== undefined || result.data === undefined) {
    if (result.response.status === 204) return undefined as T;
    const body = result.error as { message?: unknown; detail?: unknown } | undefined;
    const message =
      typeof body?.message === "string"
        ? body.message
        : `The API answered ${result.response.status} ${result.response.statusText}`.trim();
    throw new ApiError(result.response.status, message);
  }
  return result.data;
}
