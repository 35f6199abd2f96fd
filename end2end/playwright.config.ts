import { defineConfig } from "@playwright/test";
import { authMode } from "./tests/server";

// The server is started by global-setup.ts on a port the system picks, with a fresh data directory
// and fault injection on; tests read its address from REELSMITH_URL.
export default defineConfig({
  testDir: "./tests",
  // Per auth mode: `make test-e2e` runs both modes at once, and each run empties its own.
  outputDir: `test-results/${authMode()}`,
  globalSetup: "./global-setup.ts",
  timeout: 120_000,
  expect: { timeout: 30_000 },
  fullyParallel: false,
  workers: 1,
  // Never retried: a flaky test is fixed at its root, not run again until it passes.
  retries: 0,
  forbidOnly: !!process.env.CI,
  reporter: "list",
  use: {
    trace: "off",
    screenshot: "only-on-failure",
    launchOptions: {
      executablePath: "/usr/bin/chromium",
      args: [
        "--headless",
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
