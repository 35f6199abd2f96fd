// Time to interactive of one page in Chromium: from navigation start to the moment the WASM
// bundle has hydrated the page (the app marks <body data-hydrated> right after hydrating).
// Usage: node end2end/bench/tti.mjs URL [LOADS]. The first load has an empty cache (the bundle
// is fetched and compiled); the rest reuse the browser's cache, as a person's next visit does.
import { chromium } from "@playwright/test";

const [url, loads = "10"] = process.argv.slice(2);
if (!url) {
  console.error("usage: node tti.mjs URL [LOADS]");
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
const context = await browser.newContext();
// Record when the marker appears, on the page's own clock (ms since navigation start).
await context.addInitScript(() => {
  new MutationObserver((_, observer) => {
    if (document.body?.hasAttribute("data-hydrated")) {
      window.__hydratedAt = performance.now();
      observer.disconnect();
    }
  }).observe(document, { subtree: true, attributes: true, childList: true });
});
const times = [];
for (let i = 0; i < Number(loads); i++) {
  const page = await context.newPage();
  const response = await page.goto(url);
  if (!response || response.status() !== 200) throw new Error(`${url} answered ${response?.status()}`);
  await page.waitForFunction(() => window.__hydratedAt !== undefined, null, { timeout: 30_000 });
  times.push(await page.evaluate(() => window.__hydratedAt));
  await page.close();
}
await browser.close();
const warm = times.slice(1).sort((a, b) => a - b);
const median = warm.length ? warm[Math.floor(warm.length / 2)] : times[0];
console.log(`status_page_tti_cold_ms: ${times[0].toFixed(0)} ms`);
console.log(`status_page_tti_ms_p50: ${median.toFixed(0)} ms`);
