import { spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as net.AddressInfo).port;
  server.close();
  await once(server, "close");
  return port;
}

async function waitUntilUp(url: string, ms: number) {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url);
      if (res.ok) return;
      last = res.status;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`server at ${url} did not come up: ${last}`);
}

export default async function globalSetup() {
  const root = path.resolve(__dirname, "..");
  const bin = path.join(root, "target", "release", "reelsmith");
  if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: build with 'cargo leptos build --release' first`);
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "reelsmith-e2e-"));
  const url = `http://127.0.0.1:${port}`;
  // The server's log is kept in end2end/server.log, for reading after a failure.
  const log = fs.openSync(path.join(__dirname, "server.log"), "w");
  const server = spawn(bin, ["--addr", `127.0.0.1:${port}`, "--data-dir", dataDir, "--fault-injection"], {
    cwd: root,
    stdio: ["ignore", "ignore", log],
    env: { ...process.env, REELSMITH_BACKOFF_MS: "20", RUST_LOG: process.env.RUST_LOG ?? "info,sqlx=warn" },
  });
  await waitUntilUp(url + "/", 60_000);
  process.env.REELSMITH_URL = url;
  process.env.REELSMITH_DATA_DIR = dataDir;
  return async () => {
    server.kill("SIGTERM");
    await once(server, "exit");
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
}
