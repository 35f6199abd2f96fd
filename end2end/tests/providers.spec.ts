// The seed scenario on a real remote provider's failure: the storyboard comes from a (local,
// fake) Replicate, whose create call answers "502 Bad Gateway" for beat 1 on every try of the
// first run. No fault plan: the failure is the provider's. One click retries, and only beat 1 is
// made again: exactly one new create call.
import { expect, test } from "@playwright/test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createVideo, expectStatus, hydrated, signUpBy, watchConsole } from "./helpers";
import { FAKE_KEY, startFakeReplicate } from "./fakes";
import { authMode, startServer } from "./server";

test("a provider's 502 on beat 1, then one click: only that frame is made again", async ({ page }, testInfo) => {
  const fake = await startFakeReplicate({ failFrame: "frame 1 of 3", failures: 3 });
  const file = testInfo.outputPath("providers.toml");
  fs.writeFileSync(
    file,
    ["[storyboard]", 'kind = "replicate"', `base_url = "${fake.url}"`, 'model = "acme/board"', 'api_key_env = "REPLICATE_TEST_KEY"',
      "price_per_second = 0.002", "poll_ms = 50", ""].join("\n"),
  );
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "reelsmith-providers-"));
  const server = await startServer({
    dataDir,
    logFile: testInfo.outputPath("server.log"),
    args: ["--providers", file],
    env: { REPLICATE_TEST_KEY: FAKE_KEY },
  });
  try {
    if (authMode() === "accounts") await signUpBy(page.request, server.url);
    const errors = watchConsole(page);
    await createVideo(page, { prompt: "A lighthouse keeper's night", beats: 3, auto: true, base: server.url });
    await expectStatus(page, "failed");
    const card = page.getByRole("alert");
    await expect(card).toContainText("Replicate: HTTP 502: Bad Gateway");
    await expect(card).toContainText("beat 1");
    await expect(card).not.toContainText(FAKE_KEY);
    expect(fake.creates()).toBe(3 + 2);
    await page.screenshot({ path: testInfo.outputPath("failed.png"), fullPage: true });
    await page.getByRole("button", { name: /^Retry from Last Checkpoint/ }).click();
    await expectStatus(page, "completed", 90_000);
    expect(fake.creates()).toBe(3 + 2 + 1);
    const retryRow = page.getByRole("table", { name: "Attempts" }).locator("tbody tr").filter({ hasText: "retry" });
    await expect(retryRow).toContainText("1 made · 5 reused (incl. 3 narrations)");
    await expect(page.locator("video[controls][poster]")).toHaveCount(1);

    await page.goto(`${server.url}/settings`);
    await hydrated(page);
    const storyboard = page.getByRole("table", { name: "Providers" }).getByRole("row", { name: /^Storyboard/ });
    await expect(storyboard).toContainText("replicate");
    await expect(storyboard).toContainText("REPLICATE_TEST_KEY is set");
    await expect(page.locator("body")).not.toContainText(FAKE_KEY);
    await page.screenshot({ path: testInfo.outputPath("settings.png"), fullPage: true });
    expect(errors).toEqual([]);
  } finally {
    await server.stop();
    await fake.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
