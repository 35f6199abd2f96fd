import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { authMode, startServer } from "./tests/server";

// Starts target/release/reelsmith on a port the system picks (`--addr 127.0.0.1:0`), with a fresh
// data directory and fault injection on. The address and instance id come from the server's
// stdout line; it is ready when /health names that instance (tests/server.ts). Its stderr is
// kept in end2end/server-<auth mode>.log, for reading after a failure (the two modes run at once).
export default async function globalSetup() {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "reelsmith-e2e-"));
  const server = await startServer({ dataDir, logFile: path.join(__dirname, `server-${authMode()}.log`) }).catch((e) => {
    fs.rmSync(dataDir, { recursive: true, force: true });
    throw e;
  });
  process.env.REELSMITH_URL = server.url;
  process.env.REELSMITH_INSTANCE = server.instance;
  process.env.REELSMITH_DATA_DIR = dataDir;
  return async () => {
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
}
