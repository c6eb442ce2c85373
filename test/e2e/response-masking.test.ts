// Response masking through real Envoy and Chaperone's ext_proc server: the policy's masks (a JSON path
// and detectors, one of them custom) rewrite the upstream's response, checked byte for byte; a
// streaming response on the masked route is refused, and so is every response that cannot be masked as
// declared (a path mask on text/json or broken JSON, a 206 or ranged response, an encoded body); the
// audit trail records counts, never values. Only requests whose decision carries masks open an ext_proc
// stream (Envoy's composite filter on the mask header ext_authz sets), and that header never reaches
// the upstream.
import { createServer, type Server } from 'node:http';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminGet } from '../../lib/envoy-admin.ts';
import {
  apiFetch,
  devGatewayYaml,
  devToken,
  type GatewayProcess,
  gatewayPorts,
  gatewaySockets,
  startGatewayProcess,
} from '../support/gateway-process.ts';
import { freePort } from '../support/ports.ts';
import { waitFor } from '../support/wait.ts';

const RECORD = {
  customers: [
    {
      name: 'Ann',
      email: 'ann@example.com',
      ssn: '123-45-6789',
      card: '4111 1111 1111 1111',
      order: '1234 5678 9012 3456',
      note: 'key AKIAABCDEFGHIJKLMNOP, id EMP-123456',
    },
  ],
};
const MASKED =
  '{"customers":[{"name":"Ann","email":"[masked:email]","ssn":"[masked:path]","card":"[masked:card]",' +
  '"order":"1234 5678 9012 3456","note":"key [masked:aws_key], id [masked:employee_id]"}]}';

let gw: GatewayProcess;
let upstream: Server;
let token: string;

beforeAll(async () => {
  const port = await freePort();
  upstream = createServer((req, res) => {
    if (req.url?.endsWith('/customers')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(RECORD));
    } else if (req.url?.endsWith('/text-json')) {
      res.writeHead(200, { 'content-type': 'text/json' });
      res.end(JSON.stringify(RECORD));
    } else if (req.url?.endsWith('/broken-json')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(RECORD).slice(0, -2)}`);
    } else if (req.url?.endsWith('/partial')) {
      const body = JSON.stringify(RECORD);
      res.writeHead(206, {
        'content-type': 'application/json',
        'content-range': `bytes 0-${body.length - 1}/${body.length * 2}`,
      });
      res.end(body);
    } else if (req.url?.endsWith('/gzip')) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end(gzipSync(JSON.stringify(RECORD)));
    } else if (req.url?.endsWith('/headers')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ headers: req.headers }));
    } else if (req.url?.endsWith('/notes')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('call bob@example.com about card 4111-1111-1111-1111\n');
    } else {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end('data: ann@example.com\n\n');
    }
  });
  await new Promise<void>((r) => upstream.listen(port, '127.0.0.1', () => r()));
  const extra = `  - name: crm
    upstream: http://127.0.0.1:${port}
    match:
      path_prefix: /crm
`;
  gw = await startGatewayProcess({ ports: await gatewayPorts(), yaml: (p) => devGatewayYaml(p, extra) });
  token = ((await (await fetch(`${gw.api}/dev/token?user=alice`)).json()) as { token: string }).token;
}, 120_000);

afterAll(async () => {
  await gw?.cleanup();
  upstream?.close();
});

const get = (path: string, headers: Record<string, string> = {}) =>
  fetch(`${gw.egress}${path}`, { headers: { ...headers, authorization: `Bearer ${token}` } });

/** Envoy's own counters (admin /stats), summed over every listener's prefix. */
async function envoyCounter(suffix: string): Promise<number> {
  // Envoy's admin is on a 0600 Unix socket by default (lib/envoy-admin.ts speaks HTTP over it).
  const res = await adminGet(`unix:${gatewaySockets(gw).admin}`, '/stats?format=json');
  const { stats } = JSON.parse(res.body) as { stats: { name?: string; value?: number }[] };
  return stats
    .filter((s) => s.name?.endsWith(suffix))
    .reduce((sum, s) => sum + (typeof s.value === 'number' ? s.value : 0), 0);
}

describe('response masking (ext_proc)', () => {
  it('masks JSON by path and by detector, byte for byte', async () => {
    const res = await get('/crm/customers');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(MASKED);
  });

  it('masks text bodies by detector', async () => {
    const res = await get('/crm/notes');
    expect(await res.text()).toBe('call [masked:email] about card [masked:card]\n');
  });

  it('refuses a streaming response on a masked route instead of passing it through', async () => {
    const res = await get('/crm/stream');
    expect(res.status).toBe(502);
    expect(await res.text()).not.toContain('ann@example.com');
  });

  it.each([
    ['a path mask on a text/json response', '/crm/text-json'],
    ['a path mask on a response that is not valid JSON', '/crm/broken-json'],
    ['a partial (206, Content-Range) response', '/crm/partial'],
    ['a gzip-encoded response', '/crm/gzip'],
  ])('does not send %s: it is replaced by a 502', async (_name, path) => {
    const res = await get(path);
    expect(res.status).toBe(502);
    const raw = Buffer.from(await res.arrayBuffer());
    const body = res.headers.get('content-encoding') === 'gzip' ? gunzipSync(raw).toString() : raw.toString();
    expect(JSON.parse(body)).toMatchObject({ error: 'ERR_RESPONSE_NOT_MASKABLE' });
    expect(body).not.toContain('123-45-6789');
    expect(body).not.toContain('ann@example.com');
  });

  it('leaves routes without masks untouched', async () => {
    const res = await get('/demo/items');
    expect(res.status).toBe(200);
    expect(((await res.json()) as { items: unknown[] }).items).toHaveLength(2);
  });

  it('opens no ext_proc stream for responses whose decision has no masks (Envoy stats)', async () => {
    const before = await envoyCounter('.ext_proc.streams_started');
    for (let i = 0; i < 20; i++) {
      // A client-sent mask header is removed at the edge: it cannot switch the processor on either.
      const res = await get('/demo/items', i % 2 ? { 'x-chaperone-mask': 'on' } : {});
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    expect(await envoyCounter('.ext_proc.streams_started')).toBe(before);
    const masked = await get('/crm/customers');
    expect(await masked.text()).toBe(MASKED);
    expect(await envoyCounter('.ext_proc.streams_started')).toBe(before + 1);
    expect(await envoyCounter('.composite.delegation_error')).toBe(0);
  });

  it('never sends the mask header to the upstream', async () => {
    const res = await get('/crm/headers');
    expect(res.status).toBe(200);
    const { headers } = (await res.json()) as { headers: Record<string, string> };
    expect(headers['x-chaperone-decision-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(Object.keys(headers).filter((h) => h === 'x-chaperone-mask')).toEqual([]);
  });

  it('records what was masked (counts only) in the audit trail', async () => {
    await waitFor(
      async () => {
        const { rows } = (await (
          await apiFetch(gw, await devToken(gw, 'carol'), `/audit/decisions?decision=admin&limit=50`)
        ).json()) as {
          rows: { method: string; input: { counts: Record<string, number> } }[];
        };
        return rows.some(
          (r) => r.method === 'MASK' && r.input?.counts?.['email'] === 1 && r.input.counts['path'] === 1,
        );
      },
      { what: 'the masking record', timeoutMs: 10_000 },
    );
    const all = await (await apiFetch(gw, await devToken(gw, 'carol'), `/audit/export?since=1h`)).text();
    expect(all).not.toContain('ann@example.com');
    expect(all).not.toContain('123-45-6789');
  });
});
