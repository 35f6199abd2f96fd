import { expect } from "@playwright/test";
import { authMode } from "./server";
import { base, signUpBy, test } from "./helpers";

// A person whose browser runs no JavaScript still sees every page and can make a video: the
// pages are rendered whole on the server, and the form posts to its server function.
test("without JavaScript the pages show their content and the form makes a video", async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  if (authMode() === "accounts") await signUpBy(page.request);

  await page.goto(base() + "/");
  await expect(page.getByRole("heading", { name: "Make a video" })).toBeVisible();
  await expect(page.getByRole("heading", { name: "Your videos" })).toBeVisible();
  await expect(page.getByText("Loading…")).toHaveCount(0);

  const prompt = `Made without JavaScript ${Date.now()}`;
  await page.getByLabel("Prompt").fill(prompt);
  await page.getByLabel("Beats").fill("2");
  await page.getByRole("button", { name: "Create video" }).click();
  // The server answers the plain form post with the new video's page.
  await page.waitForURL(/\/videos\/[0-9a-f-]{36}$/);
  await expect(page.getByText(prompt).first()).toBeVisible();
  await expect(page.getByTestId("video-status")).not.toHaveText("");
  // Nothing will update this page by itself, and the indicator says so instead of "connecting".
  await expect(page.getByTestId("live")).toHaveText("○ not live");

  // The list, loaded again, has it.
  await page.goto(base() + "/");
  await expect(page.locator(".video-list").getByText(prompt)).toBeVisible();

  await page.goto(base() + "/settings");
  await expect(page.getByRole("table", { name: "Providers" })).toBeVisible();
  await expect(page.getByText("Loading…")).toHaveCount(0);
  await context.close();
});

test("a form posted without JavaScript that the server refuses goes back to the form and changes nothing", async ({ page }) => {
  await page.goto(base() + "/");
  const before = await page.locator(".video-list .video-card").count();
  // As a browser posts a form by itself (it accepts HTML); 99 beats is out of range.
  const res = await page.request.post(`${base()}/api/create_video`, {
    headers: { Accept: "text/html", Referer: `${base()}/` },
    form: { prompt: "Too many beats", beats: "99" },
    maxRedirects: 0,
  });
  expect(res.status()).toBe(302);
  expect(new URL(res.headers()["location"], base()).pathname).toBe("/");
  await page.reload();
  await expect(page.locator(".video-list .video-card")).toHaveCount(before);
});

// A refused post goes back to the form with what was typed in it, beside the reason. (The test
// server runs with fault injection, so its form has a fault plan, which the server checks.)
test("without JavaScript a refused form keeps what was typed and says why", async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  if (authMode() === "accounts") await signUpBy(page.request);
  // From the list's second page, which the refusal goes back to.
  await page.goto(base() + "/?page=1");
  const before = await page.locator(".video-list .video-card").count();
  const prompt = `Kept without JavaScript ${Date.now()}: gulls & tides </textarea><b>bold</b>, 100% sure? ü`;
  await page.getByLabel("Prompt").fill(prompt);
  await page.getByLabel("Beats").fill("3");
  await page.getByLabel("Auto-continue").check();
  await page.getByLabel("Fault plan").fill("nope");
  await page.getByRole("button", { name: "Create video" }).click();
  await page.waitForURL(/__err=/);
  expect(new URL(page.url()).searchParams.get("page")).toBe("1");
  await expect(page.getByLabel("Prompt")).toHaveValue(prompt);
  await expect(page.getByLabel("Beats")).toHaveValue("3");
  // Not ticked from an address, which anyone can write: a person ticks it again.
  await expect(page.getByLabel("Auto-continue")).not.toBeChecked();
  await expect(page.getByLabel("Fault plan")).toHaveValue("nope");
  await expect(page.locator("#fault_plan-error")).toContainText("not accepted");
  await expect(page.locator(".video-list .video-card")).toHaveCount(before);
  await context.close();
});

// The status page's buttons are forms: without JavaScript a person approves a phase and retries
// a failed one, each post answered with the page again (reloaded here: nothing is live).
test("without JavaScript the status page's Approve and Retry work", async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  if (authMode() === "accounts") await signUpBy(page.request);
  await page.goto(base() + "/");
  await page.getByLabel("Prompt").fill(`Approved without JavaScript ${Date.now()}`);
  await page.getByLabel("Beats").fill("2");
  await page.getByLabel("Fault plan").fill('[{"phase":2,"beat":0,"action":"fail","times":1}]');
  await page.getByRole("button", { name: "Create video" }).click();
  await page.waitForURL(/\/videos\/[0-9a-f-]{36}$/);
  const url = page.url();
  const status = page.getByTestId("video-status");
  const reloadUntil = (word: string) =>
    expect(async () => {
      await page.goto(url);
      await expect(status).toHaveText(word, { timeout: 1_000 });
    }).toPass({ timeout: 60_000 });
  await reloadUntil("awaiting approval");
  const onThePage = () => expect(new URL(page.url()).pathname).toBe(new URL(url).pathname);
  await page.getByRole("button", { name: /^Approve & Continue/ }).click();
  await page.waitForLoadState();
  onThePage();
  await reloadUntil("failed");
  await page.getByRole("button", { name: /^Retry from Last Checkpoint/ }).click();
  await page.waitForLoadState();
  onThePage();
  await reloadUntil("awaiting approval");
  await expect(page.getByRole("table", { name: "Attempts" }).locator("tbody tr")).toHaveCount(3);
  await context.close();
});

// A post the server refuses comes back to the page, which says why: here an approval sent from
// a second tab after the first one already approved the same script.
test("without JavaScript a refused button says why on the page", async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  if (authMode() === "accounts") await signUpBy(page.request);
  await page.goto(base() + "/");
  await page.getByLabel("Prompt").fill(`Approved twice without JavaScript ${Date.now()}`);
  await page.getByLabel("Beats").fill("2");
  await page.getByRole("button", { name: "Create video" }).click();
  await page.waitForURL(/\/videos\/[0-9a-f-]{36}$/);
  const url = page.url();
  await expect(async () => {
    await page.goto(url);
    await expect(page.getByTestId("video-status")).toHaveText("awaiting approval", { timeout: 1_000 });
  }).toPass({ timeout: 60_000 });
  const second = await context.newPage();
  await second.goto(url);
  await page.getByRole("button", { name: /^Approve & Continue/ }).click();
  // The post is answered with the page again, the script no longer waiting for approval (a
  // load-state wait can return before the post is even sent: the two tabs' posts then raced).
  await expect(page.getByRole("button", { name: "Approve & Continue to Storyboard" })).toHaveCount(0);
  await expect(page.getByRole("heading", { name: "That was not done" })).toHaveCount(0);
  // Until the storyboard is made, the same approval again is the same click twice, and makes
  // nothing new without a refusal (SPEC §4: it returns the active run): wait for the storyboard.
  await expect(async () => {
    await page.goto(url);
    await expect(page.getByRole("button", { name: "Approve & Continue to Clips" })).toBeVisible({ timeout: 1_000 });
  }).toPass({ timeout: 60_000 });
  await second.getByRole("button", { name: /^Approve & Continue/ }).click();
  await second.waitForLoadState();
  expect(new URL(second.url()).pathname).toBe(new URL(url).pathname);
  const refusal = second.getByRole("alert").filter({ has: second.getByRole("heading", { name: "That was not done" }) });
  await expect(refusal).toBeVisible();
  await expect(refusal).toContainText("Checkpoint already approved.");
  await second.screenshot({ path: "test-results/nojs-refused.png", fullPage: true });
  await context.close();
});
