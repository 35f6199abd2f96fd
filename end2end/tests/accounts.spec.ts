import { Browser, expect, Page, test } from "@playwright/test";
import { randomUUID } from "node:crypto";
import { base, createVideo, expectStatus, hydrated, PASSWORD, watchConsole } from "./helpers";
import { authMode } from "./server";

// SPEC §8, as two people would meet it: each signs up in their own browser; neither can see or
// touch the other's videos. Only with --auth accounts (with --auth none there are no accounts).
test.skip(() => authMode() !== "accounts", "accounts only exist with --auth accounts");

const email = () => `person-${randomUUID()}@example.org`;

async function signUp(page: Page, address: string) {
  await page.goto(base() + "/signup");
  await hydrated(page);
  await page.getByLabel("Email").fill(address);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.waitForURL(base() + "/");
  await expect(page.getByRole("button", { name: "Sign out" })).toBeVisible();
  // The list is a new page from the server: its Sign out button works once it has hydrated.
  await hydrated(page);
}

async function person(browser: Browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signUp(page, email());
  return { context, page };
}

test("sign up, sign out and sign in again as a person does", async ({ page }) => {
  const errors = watchConsole(page);
  const address = email();
  // Signed out, any page leads to sign-in.
  await page.goto(base() + "/");
  await expect(page).toHaveURL(/\/signin\?next=\/$/);
  await page.getByRole("link", { name: "Create an account" }).click();
  await expect(page).toHaveURL(/\/signup$/);
  await hydrated(page);
  await page.getByLabel("Email").fill(address);
  await page.getByLabel("Password").fill("short");
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByRole("alert")).toContainText("at least 8 characters");
  await signUp(page, address);
  await page.screenshot({ path: test.info().outputPath("videos-signed-in.png") });

  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page).toHaveURL(/\/signin$/);
  await expect(page.getByRole("button", { name: "Sign out" })).toHaveCount(0);

  // A signed-out visit to a video page comes back there after signing in.
  const wanted = `/videos/${randomUUID()}`;
  await page.goto(base() + wanted);
  await expect(page).toHaveURL(new RegExp(`/signin\\?next=${wanted}$`));
  await hydrated(page);
  await page.getByLabel("Email").fill(address);
  await page.getByLabel("Password").fill("not the password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("alert")).toContainText("Email or password is incorrect.");
  await page.screenshot({ path: test.info().outputPath("signin-error.png") });
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(base() + wanted);
  await expect(page.getByRole("heading", { name: "Video not found" })).toBeVisible();
  await expect(page.getByRole("button", { name: "Sign out" })).toBeVisible();
  expect(errors).toEqual([]);
});

test("another account's video, artifacts and actions answer 404, and lists stay apart", async ({ browser }) => {
  const a = await person(browser);
  const b = await person(browser);
  try {
    const id = await createVideo(a.page, { prompt: "A's secret garden at night", beats: 2, auto: true });
    await expectStatus(a.page, "completed", 90_000);
    const artifacts = await a.page.locator("video[src], img[src*='/artifacts/'], a[href*='/artifacts/']").evaluateAll((els) =>
      els.map((e) => (e as HTMLVideoElement).src || (e as HTMLAnchorElement).href).filter((u) => u.includes("/artifacts/")),
    );
    expect(artifacts.length).toBeGreaterThan(0);
    for (const url of artifacts) expect((await a.page.request.get(url)).status(), url).toBe(200);

    const response = await b.page.goto(`${base()}/videos/${id}`);
    expect(response?.status()).toBe(404);
    await expect(b.page.getByRole("heading", { name: "Video not found" })).toBeVisible();
    for (const url of artifacts) expect((await b.page.request.get(url)).status(), url).toBe(404);

    const status = await a.page.request.post(`${base()}/api/get_status`, { headers: { Accept: "application/json" }, form: { video_id: id } });
    const checkpoint = (await status.json()).checkpoint_tree[0].checkpoint.id;
    const calls: [string, Record<string, string>][] = [
      ["get_status", { video_id: id }],
      ["continue_video", { video_id: id, checkpoint_id: checkpoint, force_retry: "true" }],
      ["edit_script", { video_id: id, checkpoint_id: checkpoint, script_json: "{}" }],
      ["create_branch", { video_id: id, checkpoint_id: checkpoint, name: "stolen" }],
      ["cancel_run", { video_id: id }],
      ["set_auto_continue", { video_id: id, on: "false" }],
      ["set_budget", { video_id: id, dollars: "0" }],
      ["regenerate_beat", { video_id: id, checkpoint_id: checkpoint, beat: "0" }],
      ["delete_video", { video_id: id }],
    ];
    for (const [name, form] of calls) {
      const res = await b.page.request.post(`${base()}/api/${name}`, { headers: { Accept: "application/json" }, form });
      expect(res.status(), `${name}: ${await res.text()}`).toBe(404);
      expect((await res.json()).NotFound.what).toBe("video");
    }

    const bId = await createVideo(b.page, { prompt: "B's own lighthouse", beats: 2 });
    await a.page.goto(base() + "/");
    await expect(a.page.locator(`a[href="/videos/${id}"]`)).toHaveCount(1);
    await expect(a.page.locator(`a[href="/videos/${bId}"]`)).toHaveCount(0);
    await b.page.goto(base() + "/");
    await expect(b.page.locator(`a[href="/videos/${bId}"]`)).toHaveCount(1);
    await expect(b.page.locator(`a[href="/videos/${id}"]`)).toHaveCount(0);

    // A's video is as A left it: still completed, nothing B tried took effect.
    await a.page.goto(`${base()}/videos/${id}`);
    await expectStatus(a.page, "completed");
    await expect(a.page.getByRole("link", { name: "stolen" })).toHaveCount(0);
  } finally {
    await a.context.close();
    await b.context.close();
  }
});

test("the sign-in and sign-up pages", async ({ page }) => {
  for (const path of ["/signin", "/signup"]) {
    await page.goto(base() + path);
    await hydrated(page);
    await page.screenshot({ path: test.info().outputPath(`${path.slice(1)}.png`) });
  }
});
