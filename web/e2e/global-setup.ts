/** Starts `merge-assist local` (no demo: each spec builds its own scenario) on free ports and
 * waits for its endpoints file; the returned function stops it. */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ENDPOINTS_ENV } from "./harness";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const START_TIMEOUT_MS = 180_000;

export default async function globalSetup(): Promise<() => Promise<void>> {
  const data = mkdtempSync(join(tmpdir(), "merge-assist-e2e-"));
  const endpoints = join(data, "endpoints.json");
  const command = process.env.MERGE_ASSIST_BIN ?? join(REPO, ".venv", "bin", "merge-assist");
  const log = join(data, "stack.log");
  const child = spawn(
    command,
    ["local", "--data", data, "--port", "0", "--gitlab-port", "0", "--time-scale", "0.05"],
    { cwd: REPO, stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  let output = "";
  const keep = (chunk: Buffer) => {
    output += chunk.toString();
    writeFileSync(log, output);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!existsSync(endpoints)) {
    if (child.exitCode !== null) {
      throw new Error(`merge-assist local exited (${child.exitCode}):\n${output}`);
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`merge-assist local did not start in time:\n${output}`);
    }
    await new Promise((done) => setTimeout(done, 250));
  }
  // Written once the stack is up; read it to be sure it is whole.
  JSON.parse(readFileSync(endpoints, "utf-8"));
  process.env[ENDPOINTS_ENV] = endpoints;
  return async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((done) => child.once("exit", done));
    child.kill("SIGINT");
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    await exited;
    clearTimeout(timer);
  };
}
