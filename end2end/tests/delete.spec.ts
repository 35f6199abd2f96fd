import { expect } from "@playwright/test";
import { base, createVideo, expectStatus, test } from "./helpers";

test("deleting a video asks first, then it is gone from the list and its page", async ({ page }) => {
  const id = await createVideo(page, { prompt: "A video made to be deleted", beats: 2 });
  await expectStatus(page, "awaiting approval");
  await page.getByRole("button", { name: "Delete video" }).click();
  await expect(page.getByText("for good?")).toBeVisible();
  await page.getByRole("button", { name: "Keep it" }).click();
  await expect(page.getByRole("button", { name: "Yes, delete it" })).toHaveCount(0);
  await expectStatus(page, "awaiting approval");

  await page.getByRole("button", { name: "Delete video" }).click();
  await page.screenshot({ path: test.info().outputPath("delete-confirm.png") });
  await page.getByRole("button", { name: "Yes, delete it" }).click();
  await page.waitForURL(base() + "/");
  await expect(page.getByRole("heading", { name: "Your videos" })).toBeVisible();
  await expect(page.locator(`a[href="/videos/${id}"]`)).toHaveCount(0);
  const response = await page.goto(`${base()}/videos/${id}`);
  expect(response?.status()).toBe(404);
});
