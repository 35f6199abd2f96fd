import { APIRequestContext, expect, Page, Response } from "@playwright/test";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { base, createVideo, expectStatus, hydrated, status, test, watchConsole } from "./helpers";
import { startServer } from "./server";

const finalVideo = (page: Page) => page.locator("section.final-video video");
const downloadLink = (page: Page) => page.locator("section.final-video").getByRole("link", { name: "Download" });
const attempts = (page: Page) => page.getByRole("table", { name: "Attempts" }).locator("tbody tr");

test("the final video plays and seeks, and its artifact is served with HTTP Range", async ({ page }) => {
  const errors = watchConsole(page);
  const mp4: Response[] = [];
  page.on("response", (r) => {
    if (/\/artifacts\/videos\/[0-9a-f-]{36}\/[0-9a-f]{2}\/[0-9a-f]{64}\.mp4$/.test(r.url())) mp4.push(r);
  });
  await createVideo(page, { prompt: "A night train crosses a snowy valley", beats: 2, auto: true });
  await expectStatus(page, "completed", 90_000);
  const video = finalVideo(page);
  await expect(video).toHaveCount(1);
  const src = await video.evaluate((v: HTMLVideoElement) => v.currentSrc || v.src);
  expect(src).toMatch(/\/artifacts\/videos\/[0-9a-f-]{36}\/[0-9a-f]{2}\/[0-9a-f]{64}\.mp4$/);
  expect(await downloadLink(page).evaluate((a: HTMLAnchorElement) => a.href)).toBe(src);

  // Play (muted: headless Chromium allows that without a gesture); the clock must move.
  const started = await video.evaluate(async (v: HTMLVideoElement) => {
    v.muted = true;
    await v.play();
    return { time: v.currentTime, duration: v.duration, error: v.error && `${v.error.code}: ${v.error.message}` };
  });
  expect(started.error).toBeNull();
  expect(started.duration).toBeGreaterThan(3);
  await expect
    .poll(() => video.evaluate((v: HTMLVideoElement) => v.currentTime), { message: "currentTime advances while playing" })
    .toBeGreaterThan(started.time + 0.5);

  // Seek well past the start; playback carries on from there without a MediaError.
  const target = started.duration * 0.6;
  const seeked = await video.evaluate(
    (v: HTMLVideoElement, to: number) =>
      new Promise<number>((resolve, reject) => {
        v.addEventListener("seeked", () => resolve(v.currentTime), { once: true });
        v.addEventListener("error", () => reject(new Error(`MediaError ${v.error?.code}: ${v.error?.message}`)), { once: true });
        v.currentTime = to;
      }),
    target,
  );
  expect(seeked).toBeCloseTo(target, 0);
  await expect
    .poll(() => video.evaluate((v: HTMLVideoElement) => v.currentTime), { message: "currentTime advances after the seek" })
    .toBeGreaterThan(seeked + 0.3);
  const after = await video.evaluate((v: HTMLVideoElement) => ({ error: v.error && `${v.error.code}: ${v.error.message}`, paused: v.paused }));
  expect(after).toEqual({ error: null, paused: false });

  // The player's own requests for the artifact were Range requests answered 206.
  const partial = mp4.filter((r) => r.url() === src && r.status() === 206);
  expect(partial.length, `206 answers among ${mp4.map((r) => `${r.status()} ${r.url()}`).join(", ")}`).toBeGreaterThan(0);
  expect((await partial[0].allHeaders())["content-range"]).toMatch(/^bytes \d+-\d+\/\d+$/);

  // And a Range request from the page for a slice in the middle returns exactly those bytes.
  const whole = Buffer.from(await (await page.request.get(src)).body());
  const from = Math.floor(whole.length / 2);
  const slice = await page.evaluate(
    async ({ url, from }) => {
      const res = await fetch(url, { headers: { Range: `bytes=${from}-${from + 999}` } });
      return { status: res.status, range: res.headers.get("content-range"), bytes: Array.from(new Uint8Array(await res.arrayBuffer())) };
    },
    { url: src, from },
  );
  expect(slice.status).toBe(206);
  expect(slice.range).toBe(`bytes ${from}-${from + 999}/${whole.length}`);
  expect(Buffer.from(slice.bytes).equals(whole.subarray(from, from + 1000))).toBe(true);
  expect(errors).toEqual([]);
});

/**
 * Creates a video through the `create_video` server function. `seed` is the optional field the
 * server accepts only with --fault-injection, so two videos can share a seed (the form has no such
 * field; without the hook the server ignores it and makes a random seed).
 */
async function createWithSeed(
  request: APIRequestContext,
  server: string,
  opts: { prompt: string; beats: number; seed: string; faultPlan?: string },
): Promise<string> {
  const res = await request.post(`${server}/api/create_video`, {
    headers: { Accept: "application/json" },
    form: { prompt: opts.prompt, beats: String(opts.beats), auto_continue: "on", fault_plan: opts.faultPlan ?? "", seed: opts.seed },
  });
  const body = await res.text();
  expect(res.status(), `create_video answered: ${body}`).toBe(200);
  const id = JSON.parse(body);
  expect(id).toMatch(/^[0-9a-f-]{36}$/);
  return id;
}

/** The status page's script text and the sha-256 of the final video it links to. */
async function finished(page: Page, server: string, id: string) {
  await page.goto(`${server}/videos/${id}`);
  await hydrated(page);
  await expectStatus(page, "completed", 90_000);
  const script = (await page.getByRole("region", { name: /^Script:/ }).locator("ol.beats").innerText()).trim();
  const href = await downloadLink(page).evaluate((a: HTMLAnchorElement) => a.href);
  const res = await page.request.get(href);
  expect(res.status()).toBe(200);
  const sha256 = createHash("sha256").update(await res.body()).digest("hex");
  expect(href, "the artifact is content-addressed").toContain(sha256);
  return { script, sha256 };
}

test("a video retried after a failure is byte-identical to one with the same prompt and seed that never failed", async ({ page }, testInfo) => {
  const prompt = "Byte for byte: a kite over the harbour at dusk";
  const seed = "4242424242";
  // The reference is made by a second server with its own data directory, so it shares no memo
  // entries with the retried video: equal bytes mean the retry made what a clean run makes.
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "reelsmith-e2e-reference-"));
  // Single-user: cookies do not tell ports apart, so a session there would replace this one's.
  const reference = await startServer({ dataDir, logFile: testInfo.outputPath("reference-server.log"), auth: "none" });
  try {
    const failBeat0 = JSON.stringify([{ phase: 2, beat: 0, action: "fail", times: 1, message: "Replicate API error: 502 Bad Gateway" }]);
    const retriedId = await createWithSeed(page.request, base(), { prompt, beats: 2, seed, faultPlan: failBeat0 });
    const cleanId = await createWithSeed(page.request, reference.url, { prompt, beats: 2, seed });

    await page.goto(`${base()}/videos/${retriedId}`);
    await hydrated(page);
    await expectStatus(page, "failed");
    await expect(page.getByRole("alert")).toContainText("Replicate API error: 502 Bad Gateway");
    // Wait for the server's answer to the click: navigating away at once (as `finished` does)
    // could cancel the request before it is sent.
    const answered = page.waitForResponse((r) => r.url().endsWith("/api/continue_video"));
    await page.getByRole("button", { name: /^Retry from Last Checkpoint/ }).click();
    expect((await answered).status()).toBe(200);
    await expect(status(page)).not.toHaveText("failed");
    const retried = await finished(page, base(), retriedId);
    await expect(attempts(page).filter({ hasText: "retry" })).toHaveCount(1);

    const clean = await finished(page, reference.url, cleanId);
    await expect(attempts(page).filter({ hasText: "retry" })).toHaveCount(0);

    expect(retried.script, "the same prompt and seed give the same script (if not, the server ignored the `seed` field)").toBe(clean.script);
    expect(retried.sha256, "the retried video's bytes equal the never-failed video's").toBe(clean.sha256);
  } finally {
    await reference.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
