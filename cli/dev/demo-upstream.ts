// The demo upstream of `chaperone up --dev`: a tiny JSON API standing in for an internal service.
// It echoes which identity headers reached it, so the quick start shows what Envoy injected and that
// the caller's own token never arrived.
import { createServer, type Server } from 'node:http';

export interface DemoUpstream {
  url: string;
  port: number;
  close(): Promise<void>;
}

const ITEMS = [
  { id: 1, name: 'quarterly-report', owner: 'engineering' },
  { id: 2, name: 'incident-runbook', owner: 'engineering' },
];

export async function startDemoUpstream(host = '127.0.0.1', port = 0): Promise<DemoUpstream> {
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen = {
        user: req.headers['x-chaperone-user'] ?? null,
        issuer: req.headers['x-chaperone-issuer'] ?? null,
        groups: req.headers['x-chaperone-groups'] ?? null,
        decision_id: req.headers['x-chaperone-decision-id'] ?? null,
        authorization_header_present: req.headers['authorization'] !== undefined,
      };
      const body =
        req.method === 'GET' && /^\/demo\/items\/?$/.test(req.url ?? '')
          ? { items: ITEMS, seen }
          : { method: req.method, path: req.url, bytes: Buffer.concat(chunks).length, seen };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(body)}\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  return {
    url: `http://${host}:${bound}`,
    port: bound,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
