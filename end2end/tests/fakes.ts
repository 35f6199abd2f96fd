// A local fake of Replicate's predictions API for the browser tests: an image model whose create
// call answers "502 Bad Gateway" for one storyboard frame as many times as told, like the seed
// document's failure, and otherwise a finished prediction whose output is a PNG it serves itself.
import http from "node:http";
import { once } from "node:events";
import zlib from "node:zlib";

export const FAKE_KEY = "r8_fake_0123456789";

export interface FakeReplicate {
  /** The API's base URL, for the providers file. */
  url: string;
  /** Prediction create calls received so far. */
  creates: () => number;
  close: () => Promise<void>;
}

function crc32(bytes: Buffer): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let i = 0; i < 8; i++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function chunk(kind: string, data: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(kind, "ascii"), data]);
  const out = Buffer.alloc(body.length + 8);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), body.length + 4);
  return out;
}

/** A real RGB PNG of a soft gradient, `w`x`h`. */
export function png(w: number, h: number): Buffer {
  const rows: Buffer[] = [];
  for (let y = 0; y < h; y++) {
    const row = Buffer.alloc(1 + w * 3);
    for (let x = 0; x < w; x++) row.set([(x * 255) / w, (y * 255) / h, 140], 1 + x * 3);
    rows.push(row);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk("IHDR", ihdr), chunk("IDAT", zlib.deflateSync(Buffer.concat(rows))), chunk("IEND", Buffer.alloc(0))]);
}

/** Starts the fake; creates whose prompt contains `failFrame` answer 502 the first `failures` times. */
export async function startFakeReplicate(opts: { failFrame: string; failures: number }): Promise<FakeReplicate> {
  let creates = 0;
  let failuresLeft = opts.failures;
  const image = png(640, 360);
  const server = http.createServer(async (req, res) => {
    let body = "";
    for await (const part of req) body += part;
    const base = `http://${req.headers.host}`;
    if (req.method === "GET" && req.url === "/files/frame.png") {
      res.writeHead(200, { "Content-Type": "image/png" }).end(image);
      return;
    }
    if (req.headers.authorization !== `Bearer ${FAKE_KEY}`) {
      res.writeHead(401, { "Content-Type": "application/json" }).end(JSON.stringify({ detail: "Unauthenticated" }));
      return;
    }
    if (req.method === "POST" && req.url === "/v1/models/acme/board/predictions") {
      creates += 1;
      const prompt: string = JSON.parse(body || "{}")?.input?.prompt ?? "";
      if (prompt.includes(opts.failFrame) && failuresLeft > 0) {
        failuresLeft -= 1;
        res.writeHead(502, { "Content-Type": "text/html" }).end("Bad Gateway");
        return;
      }
      const prediction = { id: `p${creates}`, status: "succeeded", output: [`${base}/files/frame.png`], metrics: { predict_time: 1.25 } };
      res.writeHead(201, { "Content-Type": "application/json" }).end(JSON.stringify(prediction));
      return;
    }
    res.writeHead(404, { "Content-Type": "application/json" }).end(JSON.stringify({ detail: "Not found" }));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/v1`,
    creates: () => creates,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
