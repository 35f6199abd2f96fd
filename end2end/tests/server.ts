// Starts the real server binary on a port of the system's choosing (`--addr 127.0.0.1:0`). The
// server prints `reelsmith: listening on http://ADDR instance ID` on stdout once bound; it is
// ready when `GET /health` at that address answers `reelsmith ID`, so a probe can never mistake
// another process (another suite, an earlier run) for this one. Used by global-setup.ts and by
// tests that need a second, independent server.
import { ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";

export const root = path.resolve(__dirname, "..", "..");
export const binary = path.join(root, "target", "release", "reelsmith");

const LISTENING = /^reelsmith: listening on (http:\/\/\S+) instance ([0-9a-f]{32})\s*$/;

export interface Started {
  url: string;
  instance: string;
  process: ChildProcess;
  stop: () => Promise<void>;
}

function tail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch (e) {
    return `(cannot read ${file}: ${e})`;
  }
}

/** Which `--auth` the suite runs with (`REELSMITH_E2E_AUTH`, default `accounts`); `make test-e2e` runs both. */
export const authMode = (): "accounts" | "none" => (process.env.REELSMITH_E2E_AUTH === "none" ? "none" : "accounts");

/** Spawns the server with a fresh data directory; its stderr goes to `logFile`. */
export async function startServer(opts: {
  dataDir: string;
  logFile: string;
  auth?: "accounts" | "none";
  args?: string[];
  env?: Record<string, string>;
}): Promise<Started> {
  if (!fs.existsSync(binary)) throw new Error(`${binary} is missing: build it with 'make build' (scripts/build-site.sh) first`);
  const log = fs.openSync(opts.logFile, "w");
  // Every test signs up its own account, all from 127.0.0.1: more than the 10 an hour one
  // address may make by default.
  const args = ["--addr", "127.0.0.1:0", "--data-dir", opts.dataDir, "--fault-injection", "--max-sign-ups-per-hour", "1000"];
  const child = spawn(binary, [...args, "--auth", opts.auth ?? authMode(), ...(opts.args ?? [])], {
    cwd: root,
    stdio: ["ignore", "pipe", log],
    env: { ...process.env, REELSMITH_BACKOFF_MS: "20", RUST_LOG: process.env.RUST_LOG ?? "info,sqlx=warn", ...opts.env },
  });
  fs.closeSync(log);
  const exited = new Promise<string>((resolve) =>
    child.once("exit", (code, signal) => resolve(signal ? `signal ${signal}` : `exit code ${code}`)),
  );
  const failure = (what: string) => new Error(`${what}; the end of ${opts.logFile}:\n${tail(opts.logFile)}`);

  // Every stdout line is read (the pipe never fills); the first "listening" line is the answer.
  const lines = readline.createInterface({ input: child.stdout! });
  const listening = new Promise<RegExpMatchArray>((resolve) => {
    lines.on("line", (line) => {
      const m = line.match(LISTENING);
      if (m) resolve(m);
    });
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(failure("the server printed no address within 60 s")), 60_000);
  });
  let match: RegExpMatchArray;
  try {
    match = await Promise.race([
      listening,
      exited.then((how) => Promise.reject(failure(`the server exited (${how}) before printing its address`))),
      timeout,
    ]);
  } catch (e) {
    child.kill("SIGKILL");
    throw e;
  } finally {
    clearTimeout(timer);
  }
  const [, url, instance] = match;

  // Ready when /health names this instance.
  const expected = `reelsmith ${instance}`;
  const deadline = Date.now() + 30_000;
  let last: unknown;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw failure(`the server exited (${await exited}) before it was ready`);
    let body: string | undefined;
    try {
      const res = await fetch(`${url}/health`);
      body = (await res.text()).trim();
      last = `HTTP ${res.status}: ${JSON.stringify(body)}`;
      if (!res.ok) body = undefined;
    } catch (e) {
      last = e;
    }
    if (body === expected) break;
    if (body !== undefined) {
      child.kill("SIGKILL");
      throw new Error(`${url}/health answers ${JSON.stringify(body)}, not the server just started (${expected})`);
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw failure(`${url}/health did not name instance ${instance} within 30 s (last: ${last})`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await exited;
    }
    lines.close();
  };
  return { url, instance, process: child, stop };
}
