import { APIRequestContext, test as base_test, expect, Page } from "@playwright/test";
import { randomUUID } from "node:crypto";
import { authMode } from "./server";

export const PASSWORD = "correct horse battery staple";

/** Makes a fresh account through the sign-up server function; its session cookie lands in the
 * browser context that `request` belongs to. */
export async function signUpBy(request: APIRequestContext, server = base()): Promise<string> {
  const email = `e2e-${randomUUID()}@example.org`;
  const res = await request.post(`${server}/api/sign_up`, { headers: { Accept: "application/json" }, form: { email, password: PASSWORD } });
  expect(res.status(), `sign_up answered ${await res.text()}`).toBe(200);
  return email;
}

/** Playwright's `test`, with every page signed in to a fresh account when the server runs
 * `--auth accounts` (with `--auth none` there is nothing to sign in to). */
export const test = base_test.extend({
  page: async ({ page }, use) => {
    if (authMode() === "accounts") await signUpBy(page.request);
    await use(page);
  },
});

export const base = () => {
  const url = process.env.REELSMITH_URL;
  if (!url) throw new Error("REELSMITH_URL is not set (global-setup starts the server)");
  return url;
};

/** Fails the test on any console error except the typed server-function errors (HTTP 500 JSON). */
export function watchConsole(page: Page): string[] {
  const errors: string[] = [];
  page.on("console", (msg) => {
    if (msg.type() === "error" && !msg.text().includes("Failed to load resource")) errors.push(msg.text());
  });
  page.on("pageerror", (err) => errors.push(String(err)));
  return errors;
}

/** Waits until the page is hydrated: the WASM bundle has run and event handlers are attached. */
export async function hydrated(page: Page) {
  await page.waitForFunction(() => (window as any).__reelsmith_hydrated === true || document.querySelector("body[data-hydrated]") !== null, null, { timeout: 30_000 });
}

export async function createVideo(page: Page, opts: { prompt: string; beats?: number; auto?: boolean; faultPlan?: string; base?: string }) {
  await page.goto((opts.base ?? base()) + "/");
  await hydrated(page);
  await page.getByLabel("Prompt").fill(opts.prompt);
  await page.getByLabel("Beats").fill(String(opts.beats ?? 2));
  if (opts.auto) await page.getByLabel("Auto-continue").check();
  if (opts.faultPlan) await page.getByLabel("Fault plan").fill(opts.faultPlan);
  await page.getByRole("button", { name: "Create video" }).click();
  await page.waitForURL(/\/videos\/[0-9a-f-]{36}$/);
  await hydrated(page);
  return page.url().split("/videos/")[1];
}

export const status = (page: Page) => page.getByTestId("video-status");

export async function expectStatus(page: Page, word: string, timeout = 60_000) {
  await expect(status(page)).toHaveText(word, { timeout });
}
