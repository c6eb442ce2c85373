// An HTTP echo upstream for end-to-end tests: it records every request exactly as it arrived
// (method, raw request-target, headers, body) and answers 200 with a JSON copy of it, so a test can
// assert both on what the client got back and on what actually reached the upstream.
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Recorded {
  method: string;
  /** The request-target byte-for-byte as the upstream received it (no URL parsing). */
  path: string;
  /** Header names lower-cased; repeated headers joined with ", " (node's rules). */
  headers: Record<string, string | string[] | undefined>;
  /** Raw header list in arrival order: [name, value, name, value, …]. */
  rawHeaders: string[];
  body: string;
}

export interface EchoUpstream {
  port: number;
  url: string;
  /** Every request received since start (or the last clear()), in arrival order. */
  requests: Recorded[];
  clear(): void;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startEchoUpstream(): Promise<EchoUpstream> {
  const requests: Recorded[] = [];
  const server = createServer(async (req, res) => {
    const body = await readBody(req).catch(() => '');
    const recorded: Recorded = {
      method: req.method ?? '',
      path: req.url ?? '',
      headers: { ...req.headers },
      rawHeaders: [...req.rawHeaders],
      body,
    };
    requests.push(recorded);
    const payload = JSON.stringify(recorded);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
    res.end(payload);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    clear: () => {
      requests.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
