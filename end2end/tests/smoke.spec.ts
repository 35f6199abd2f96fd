import { expect } from "@playwright/test";
import { base, createVideo, test, expectStatus, hydrated, watchConsole } from "./helpers";

test("a prompt becomes a playable video, live, without reloading", async ({ page }) => {
  const errors = watchConsole(page);
  await page.goto(base() + "/");
  await expect(page.getByRole("heading", { name: "Make a video" })).toBeVisible();
  await hydrated(page);
  const id = await createVideo(page, { prompt: "A lighthouse keeper teaches a gull to read the tides", beats: 2, auto: true });
  expect(id).toMatch(/^[0-9a-f-]{36}$/);
  await expectStatus(page, "completed", 90_000);
  await expect(page.getByTestId("live")).toHaveText("● live");
  const video = page.locator("video[controls][poster]");
  await expect(video).toHaveCount(1);
  const duration = await video.evaluate(async (v: HTMLVideoElement) => {
    if (v.readyState < 1) await new Promise((r) => v.addEventListener("loadedmetadata", r, { once: true }));
    return v.duration;
  });
  expect(duration).toBeGreaterThan(3);
  await expect(page.getByRole("table", { name: "Attempts" }).locator("tbody tr")).toHaveCount(4);
  expect(errors).toEqual([]);
});

test("unknown and malformed video ids get the 404 page", async ({ page }) => {
  for (const id of ["00000000-0000-0000-0000-000000000000", "not-a-uuid"]) {
    const response = await page.goto(`${base()}/videos/${id}`);
    expect(response?.status()).toBe(404);
    await expect(page.getByRole("heading", { name: "Video not found" })).toBeVisible();
  }
});

test("live updates keep the page, what is being typed, its focus and a playing video; new parts work", async ({ page }) => {
  const errors = watchConsole(page);
  const slowClips = JSON.stringify([0, 1, 2].map((beat) => ({ phase: 3, beat, action: "delay", ms: 1500 })));
  await createVideo(page, { prompt: "Typing while it runs", beats: 3, auto: true, faultPlan: slowClips });
  // The page was loaded once; a reload would lose this.
  await page.evaluate(() => ((window as any).__same_page = true));
  const budget = page.getByLabel("Budget ($)");
  await budget.click();
  await budget.pressSequentially("4.5");
  // The storyboard appears and the clips phase runs while the field holds the draft.
  await expect(page.getByRole("region", { name: "Storyboard" })).toBeVisible();
  await expect(page.locator(".step-running .step-name")).toHaveText("Clips");
  await expectStatus(page, "completed", 90_000);
  await expect(budget).toHaveValue("4.5");
  await expect(budget).toBeFocused();
  expect(await page.evaluate(() => (window as any).__same_page)).toBe(true);
  // Islands that arrived with an update are hydrated: their buttons work.
  await page.getByRole("button", { name: "Play clip 2" }).click();
  await expect(page.locator("video.clip-video")).toHaveCount(1);
  // The refresh after setting the budget keeps the final video playing: the same element, not paused.
  const final = page.locator("section.final-video video");
  await final.evaluate(async (v: HTMLVideoElement) => {
    v.muted = true;
    await v.play();
    (v as any).__mark = true;
  });
  await budget.press("Enter");
  await expect(page.getByText("of a $4.500 budget")).toBeVisible();
  expect(await final.evaluate((v: HTMLVideoElement) => [(v as any).__mark === true, v.paused])).toEqual([true, false]);
  expect(errors).toEqual([]);
});
