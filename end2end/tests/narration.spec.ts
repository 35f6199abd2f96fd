// Narrated videos: the final video plays with sound and a captions track of one cue per beat,
// each beat's narration plays next to its still, and the editor estimates spoken durations and
// refuses a bad speed without changing anything.
import { expect, Page } from "@playwright/test";
import { createVideo, expectStatus, test, watchConsole } from "./helpers";

const finalVideo = (page: Page) => page.locator("section.final-video video");

test("the final video plays with sound and one caption cue per beat", async ({ page }, testInfo) => {
  const errors = watchConsole(page);
  const beats = 3;
  await createVideo(page, { prompt: "A lighthouse keeper reads the tides aloud", beats, auto: true });
  await expectStatus(page, "completed", 120_000);
  const video = finalVideo(page);

  // The captions track: the default English captions, its WebVTT loaded, one cue per beat.
  const track = video.locator('track[kind="captions"][srclang="en"][default]');
  await expect(track).toHaveCount(1);
  const vtt = await page.request.get(await track.evaluate((t: HTMLTrackElement) => t.src));
  expect(vtt.status()).toBe(200);
  expect(vtt.headers()["content-type"]).toContain("text/vtt");
  expect((await vtt.text()).startsWith("WEBVTT")).toBe(true);
  await expect
    .poll(() => video.evaluate((v: HTMLVideoElement) => v.textTracks[0]?.cues?.length ?? 0), { message: "the captions' cues load" })
    .toBe(beats);
  const cues = await video.evaluate((v: HTMLVideoElement) =>
    Array.from(v.textTracks[0].cues ?? []).map((c) => ({ start: c.startTime, end: c.endTime, text: (c as VTTCue).text })),
  );
  const narrations = (await page.getByRole("region", { name: /^Script:/ }).locator("ol.beats li > p:first-child").allInnerTexts()).map((t) => t.trim());
  expect(cues.map((c) => c.text)).toEqual(narrations);
  for (let i = 1; i < cues.length; i++) expect(cues[i].start).toBeGreaterThanOrEqual(cues[i - 1].end);
  // The script's beat lengths add up to the video's: a beat lasts as long as its narration and
  // the pause after it (the card said each beat's own, shorter length).
  const lengths = await page.getByRole("region", { name: /^Script:/ }).locator("ol.beats li > p.muted").allInnerTexts();
  const seconds = lengths.map((t) => Number(/ · ([\d.]+) s( with its narration)?$/.exec(t.trim())?.[1]));
  expect(seconds.every((s) => s > 0), lengths.join(" | ")).toBe(true);
  const duration = await video.evaluate((v: HTMLVideoElement) => v.duration);
  expect(Math.abs(seconds.reduce((a, b) => a + b, 0) - duration), `${lengths.join(" | ")} against ${duration} s`).toBeLessThan(0.1 * beats + 0.1);

  // Play it: the audio decoder must take in bytes as the video plays, and no MediaError.
  const started = await video.evaluate(async (v: HTMLVideoElement) => {
    v.muted = true;
    await v.play();
    return { time: v.currentTime, audio: (v as any).webkitAudioDecodedByteCount as number, error: v.error && `${v.error.code}: ${v.error.message}` };
  });
  expect(started.error).toBeNull();
  await expect
    .poll(() => video.evaluate((v: HTMLVideoElement) => (v as any).webkitAudioDecodedByteCount as number), { message: "audio is decoded while playing" })
    .toBeGreaterThan(started.audio + 1000);
  await expect.poll(() => video.evaluate((v: HTMLVideoElement) => v.currentTime)).toBeGreaterThan(started.time + 0.5);
  await page.screenshot({ path: testInfo.outputPath("narrated-status.png"), fullPage: true });
  expect(await video.evaluate((v: HTMLVideoElement) => v.error && v.error.code)).toBeNull();

  // Each beat's narration plays next to its still.
  for (let i = 1; i <= beats; i++) {
    const player = page.getByLabel(`Narration for beat ${i}`);
    await expect(player).toHaveCount(1);
    const played = await player.evaluate(async (a: HTMLAudioElement) => {
      a.muted = true;
      await a.play();
      await new Promise((r) => setTimeout(r, 300));
      return { time: a.currentTime, duration: a.duration, error: a.error && a.error.code };
    });
    expect(played.error).toBeNull();
    expect(played.duration).toBeGreaterThan(0.3);
    expect(played.time).toBeGreaterThan(0);
  }
  expect(errors).toEqual([]);
});

test("the editor estimates each beat's spoken length and refuses a bad speed, changing nothing", async ({ page }) => {
  await createVideo(page, { prompt: "Two gulls argue about the weather", beats: 2, auto: false });
  await expectStatus(page, "awaiting approval", 60_000);
  await page.getByRole("button", { name: "Edit script" }).click();
  const estimate = page.locator("#beat-0-spoken");
  await expect(estimate).toContainText(/About \d+\.\d s spoken/);
  const before = await estimate.innerText();
  await page.getByLabel("Speed (words per minute)").fill("90");
  await expect(estimate).not.toHaveText(before);
  await page.getByLabel("Voice").selectOption("en-gb-x-rp");
  // A number field cleared while typing stays as typed when another field changes (it was
  // written back as "0").
  const duration = page.getByLabel("Beat 1 duration (ms)");
  const length = await duration.inputValue();
  await duration.fill("");
  await page.getByLabel("Beat 1 visual").fill("A quieter harbour at dawn.");
  await expect(duration).toHaveValue("");
  await duration.fill(length);

  // Out of range: the browser's own check stops the form first…
  const speed = page.getByLabel("Speed (words per minute)");
  await speed.fill("5000");
  await page.getByRole("button", { name: "Save new version" }).click();
  expect(await speed.evaluate((i: HTMLInputElement) => i.validity.rangeOverflow)).toBe(true);
  // …and with that check off, the server refuses it, names the field's rule, and saves nothing.
  await page.locator("section.editor form").evaluate((f: HTMLFormElement) => (f.noValidate = true));
  await page.getByRole("button", { name: "Save new version" }).click();
  await expect(page.locator(".action-error")).toContainText("The speed must be 80 to 320 words per minute, not 5000");
  await expect(page.locator(".tree-node", { hasText: "Script v2" })).toHaveCount(0);

  await page.getByLabel("Speed (words per minute)").fill("150");
  await page.getByRole("button", { name: "Save new version" }).click();
  await expect(page.locator(".tree-node", { hasText: "Script v2" })).toContainText("edited");
});
