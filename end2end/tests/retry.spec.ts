import { expect, Page } from "@playwright/test";
import { base, createVideo, test, expectStatus, hydrated, watchConsole } from "./helpers";

const failBeat0 = (times: number) =>
  JSON.stringify([{ phase: 2, beat: 0, action: "fail", times, message: "Replicate API error: 502 Bad Gateway" }]);

const attempts = (page: Page) => page.getByRole("table", { name: "Attempts" }).locator("tbody tr");
const retryButton = (page: Page) => page.getByRole("button", { name: /^Retry from Last Checkpoint/ });

async function expectFailedCard(page: Page) {
  await expectStatus(page, "failed");
  const card = page.getByRole("alert");
  await expect(card).toContainText("Replicate API error: 502 Bad Gateway");
  await expect(card).toContainText("Storyboard");
  await expect(card).toContainText("beat 1");
}

test("retry after a phase-2 failure completes the video", async ({ page }) => {
  const errors = watchConsole(page);
  await createVideo(page, { prompt: "Seed scenario one: retry after failure", beats: 3, auto: true, faultPlan: failBeat0(1) });
  await expectFailedCard(page);
  await expect(retryButton(page)).toHaveText("Retry from Last Checkpoint (Retry #1 of 5)");
  await retryButton(page).click();
  await expectStatus(page, "completed", 90_000);
  await expect(page.getByRole("alert")).toHaveCount(0);
  await expect(page.locator("video[controls][poster]")).toHaveCount(1);
  const retryRow = attempts(page).filter({ hasText: "retry" });
  await expect(retryRow).toHaveCount(1);
  await expect(retryRow).toContainText("2 (Retry #1)");
  await expect(retryRow).toContainText("1 made · 5 reused (incl. 3 narrations)");
  // The failed attempt's longer summary wraps: every column, its cost included, shows in the card.
  await expect(attempts(page).filter({ hasText: "failed tries" })).toHaveCount(1);
  const overflow = await page.locator(".attempts").evaluate((e) => e.scrollWidth - e.clientWidth);
  expect(overflow, "the attempts table needs no sideways scrolling at desktop width").toBeLessThanOrEqual(0);
  expect(errors).toEqual([]);
});

test("multiple retries: fail twice, retry twice", async ({ page }) => {
  await createVideo(page, { prompt: "Seed scenario two: multiple retries", beats: 2, auto: true, faultPlan: failBeat0(2) });
  await expectFailedCard(page);
  await retryButton(page).click();
  await expectFailedCard(page);
  await expect(retryButton(page)).toHaveText("Retry from Last Checkpoint (Retry #2 of 5)");
  await retryButton(page).click();
  await expectStatus(page, "completed", 90_000);
  await expect(attempts(page).filter({ hasText: "Storyboard" })).toHaveCount(3);
  await expect(attempts(page).filter({ hasText: "Retry #2" })).toHaveCount(1);
});

test("edit phase 1 then retry: the final script shows the edit", async ({ page }) => {
  await createVideo(page, { prompt: "Seed scenario three: edit then retry", beats: 2, auto: true, faultPlan: failBeat0(1) });
  await expectFailedCard(page);
  await page.getByRole("button", { name: "Edit Previous Phase" }).click();
  await expect(page.locator("#editor-heading")).toHaveText("Edit Script v1 — saves Script v2");
  await page.getByLabel("Beat 1 narration").fill("An edited opening: the gull learns the moon pulls the sea.");
  await page.getByRole("button", { name: "Save new version" }).click();
  await expectStatus(page, "awaiting approval");
  await expect(page.getByRole("alert")).toContainText("retrying continues from it");
  await retryButton(page).click();
  await expectStatus(page, "completed", 90_000);
  const script = page.getByRole("region", { name: /^Script:/ });
  await expect(script).toContainText("An edited opening: the gull learns the moon pulls the sea.");
  await expect(script).toContainText("v2");
  await expect(page.locator(".tree-node", { hasText: "Script v2" })).toContainText("edited");
});

test("a branch made from phase 1 while main is failed: both complete independently", async ({ page }) => {
  const id = await createVideo(page, { prompt: "Seed scenario four: branches", beats: 2, auto: true, faultPlan: failBeat0(1) });
  await expectFailedCard(page);
  await page.getByRole("button", { name: "Create branch from Script v1" }).click();
  await page.getByLabel("Branch name").fill("alt");
  await page.getByRole("button", { name: "Create branch", exact: true }).click();
  // Every page loads from the server (islands): wait for its buttons to work before clicking.
  await page.waitForURL(/\?branch=alt$/);
  await hydrated(page);
  await expectStatus(page, "awaiting approval");
  await page.getByRole("button", { name: /^Continue to Storyboard/ }).click();
  await expectStatus(page, "completed", 90_000);
  await page.getByRole("navigation", { name: "Branches" }).getByRole("link", { name: "main" }).click();
  await page.waitForURL(new RegExp(`/videos/${id}$`));
  await hydrated(page);
  await expectFailedCard(page);
  await retryButton(page).click();
  await expectStatus(page, "completed", 90_000);
  await page.goto(`${base()}/videos/${id}?branch=alt`);
  await hydrated(page);
  await expectStatus(page, "completed");
  await expect(attempts(page)).toHaveCount(3);
});

test("a double click on Retry makes one run", async ({ page }) => {
  await createVideo(page, { prompt: "Double click", beats: 2, auto: true, faultPlan: failBeat0(1) });
  await expectFailedCard(page);
  await retryButton(page).dblclick();
  await expectStatus(page, "completed", 90_000);
  await expect(attempts(page).filter({ hasText: "retry" })).toHaveCount(1);
  await expect(attempts(page)).toHaveCount(5);
});

test("the retry limit disables the button and says what to do instead", async ({ page }) => {
  await createVideo(page, { prompt: "Always fails", beats: 2, auto: true, faultPlan: failBeat0(100) });
  for (let n = 1; n <= 5; n++) {
    await expectFailedCard(page);
    await expect(retryButton(page)).toHaveText(`Retry from Last Checkpoint (Retry #${n} of 5)`);
    await retryButton(page).click();
    await expect(attempts(page).filter({ hasText: `Retry #${n}` })).toHaveCount(1);
  }
  await expectFailedCard(page);
  await expect(retryButton(page)).toBeDisabled();
  await expect(retryButton(page)).toHaveText("Retry from Last Checkpoint (all 5 retries used)");
  await expect(page.getByRole("alert")).toContainText("Retry limit reached (5).");
  await expect(page.getByRole("alert")).toContainText("Edit the previous phase or create a branch");
  await expect(page.getByRole("button", { name: "Edit Previous Phase" })).toBeEnabled();
});

test("a bad fault plan is refused next to its field and nothing is created", async ({ page }) => {
  await page.goto(base() + "/");
  await hydrated(page);
  const before = await page.locator(".video-card").count();
  await page.getByLabel("Prompt").fill("Bad plan");
  await page.getByLabel("Fault plan").fill('[{"phase":9,"action":"fail"}]');
  await page.getByRole("button", { name: "Create video" }).click();
  await expect(page.locator("#fault_plan-error")).toContainText("Phase must be 1 to 4");
  // Announced, and tied to its field for a screen reader.
  await expect(page.locator("#fault_plan-error")).toHaveAttribute("role", "alert");
  await expect(page.getByLabel("Fault plan")).toHaveAttribute("aria-invalid", "true");
  await expect(page.getByLabel("Fault plan")).toHaveAttribute("aria-describedby", "fault_plan-error");
  await expect(page).toHaveURL(base() + "/");
  await page.reload();
  await expect(page.locator(".video-card")).toHaveCount(before);
});

test("a spent budget blocks the next phase and says why, until the budget is raised", async ({ page }) => {
  await createVideo(page, { prompt: "On a budget", beats: 2 });
  await expectStatus(page, "awaiting approval");
  const approve = page.getByRole("button", { name: /^Approve & Continue/ });
  await expect(approve).toBeEnabled();
  await page.getByLabel("Budget ($)").fill("0");
  await page.getByRole("button", { name: "Set budget" }).click();
  await expect(approve).toBeDisabled();
  await expect(page.getByText("The budget is spent")).toBeVisible();
  await page.getByLabel("Budget ($)").fill("5");
  await page.getByRole("button", { name: "Set budget" }).click();
  await expect(approve).toBeEnabled();
  await approve.click();
  await expect(page.getByRole("table", { name: "Attempts" }).locator("tbody tr")).toHaveCount(2);
  // With the storyboard made, a spent budget takes its Regenerate buttons away too, and says why.
  await expectStatus(page, "awaiting approval");
  await expect(page.getByRole("button", { name: "Regenerate beat 1" })).toBeVisible();
  await page.getByLabel("Budget ($)").fill("0");
  await page.getByRole("button", { name: "Set budget" }).click();
  await expect(page.getByRole("button", { name: "Regenerate beat 1" })).toHaveCount(0);
  await expect(page.locator(".storyboard").getByText(/^Regenerating a beat is refused: The budget is spent/)).toBeVisible();
});

// A keyboard user keeps their place: the button an action disables, or the page replaces once it
// shows what the action did, gave the focus back to the document's start.
test("after an action by keyboard the focus stays with the controls", async ({ page }) => {
  await createVideo(page, { prompt: "Approved from the keyboard", beats: 2 });
  await expectStatus(page, "awaiting approval");
  await page.getByRole("button", { name: "Approve & Continue to Storyboard" }).focus();
  await page.keyboard.press("Enter");
  await expect(page.getByRole("button", { name: "Approve & Continue to Clips" })).toBeVisible({ timeout: 60_000 });
  const inNextStep = () => page.evaluate(() => !!document.activeElement?.closest("#next-step"));
  await expect.poll(inNextStep, { message: "the focus is on the next step, not back at the page's start" }).toBe(true);

  await page.getByLabel("Budget ($)").fill("4");
  await page.getByRole("button", { name: "Set budget" }).focus();
  await page.keyboard.press("Enter");
  await expect(page.getByText(/^Spent \$[\d.]+ of a \$4(\.0+)? budget\.$/)).toBeVisible();
  await expect(page.getByRole("button", { name: "Set budget" })).toBeFocused();
});
