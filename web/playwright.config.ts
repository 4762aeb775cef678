import { defineConfig } from "@playwright/test";

/** End-to-end tests of the built dashboard served by `merge-assist local` (the real handlers,
 * state machines and the GitLab simulator), in Debian's Chromium: no browser download. */
export default defineConfig({
  testDir: "./e2e",
  outputDir: "./test-results",
  // One stack, shared; the scenarios build on each other's queue.
  workers: 1,
  fullyParallel: false,
  timeout: 90_000,
  expect: { timeout: 20_000 },
  reporter: [["list"]],
  globalSetup: "./e2e/global-setup.ts",
  use: {
    browserName: "chromium",
    viewport: { width: 1280, height: 800 },
    screenshot: "only-on-failure",
    trace: "retain-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      // This machine's network is closed: no background calls home.
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
  },
});
