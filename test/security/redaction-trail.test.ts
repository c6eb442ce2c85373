// No secret in the trail: through the real `chaperone up` (Envoy, the authz server, the dev issuer),
// a known secret is sent in every place a request can carry one — the query of `:path`, a header named
// in `audit.redact_headers`, the usual credential headers, the caller's token, an MCP tool's arguments,
// a JSON body, and the path of a request an administrator then approves — and is looked for in every
// place the trail ends up: the store's rows (every table), the spool files, `audit export` (JSONL and
// OPA decision-log events), the process's stdout/stderr and `/status`. Positive controls check the
// records are there (only the secrets are not).
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAuditStore } from '../../audit/store.ts';
import { runCli } from '../support/cli.ts';
import { apiFetch, devGatewayYaml, type GatewayProcess } from '../support/gateway-process.ts';
import { startGatewayOnFreePorts } from '../support/gateway-retry.ts';
import { waitFor } from '../support/wait.ts';

const secret = (place: string) => `S3CR3T-${place}-${randomBytes(8).toString('hex')}`;
const SECRETS = {
  query: secret('query'),
  approvedQuery: secret('approved-query'),
  configuredHeader: secret('configured-header'),
  apiKeyHeader: secret('x-api-key'),
  cookie: secret('cookie'),
  proxyAuth: secret('proxy-authorization'),
  mcpArgument: secret('mcp-argument'),
  mcpBearer: secret('mcp-bearer-in-text'),
  bodyField: secret('body-field'),
  bodyNested: secret('body-nested'),
};

let gw: GatewayProcess;
const tokens: Record<string, string> = {};

async function devToken(user: string): Promise<string> {
  const res = await fetch(`${gw.api}/dev/token?user=${user}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { token: string }).token;
}

/** Every file under `dir`, as text. */
async function filesUnder(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const path = join(e.parentPath, e.name);
    out[path] = await readFile(path, 'utf8');
  }
  return out;
}

/** The places (by name) whose text contains any secret, with the secrets found. */
function leaks(places: Record<string, string>, extra: string[] = []): string[] {
  const found: string[] = [];
  for (const [where, text] of Object.entries(places))
    for (const [name, value] of Object.entries({
      ...SECRETS,
      ...Object.fromEntries(extra.map((v, i) => [`extra${i}`, v])),
    }))
      if (text.includes(value)) found.push(`${name} in ${where}`);
  return found;
}

interface Row {
  seq: number;
  method: string;
  path: string;
  decision: string;
  reason: string;
  request_id: string;
  input: unknown;
}

async function decisions(): Promise<Row[]> {
  const res = await apiFetch(gw, tokens['carol']!, `/audit/decisions?limit=200&since=1h`);
  return ((await res.json()) as { rows: Row[] }).rows;
}

beforeAll(async () => {
  const mcpTarget = `  - name: tools
    upstream: http://127.0.0.1:PORT
    protocol: mcp
    match:
      path_prefix: /mcp
`;
  gw = await startGatewayOnFreePorts({
    yaml: (p) =>
      devGatewayYaml(p, mcpTarget.replace('PORT', String(p.demo))).replace(
        '  spool_dir: spool\n',
        '  spool_dir: spool\n  redact_headers: [x-internal-secret]\n',
      ),
  });
  for (const u of ['alice', 'carol']) tokens[u] = await devToken(u);

  const egress = (path: string, init: RequestInit = {}) =>
    fetch(`${gw.egress}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${tokens['alice']}`, ...(init.headers as Record<string, string>) },
    });
  // The query of :path, and every credential header at once.
  await egress(`/demo/items?q=visible&access_token=${SECRETS.query}`, {
    headers: {
      'x-internal-secret': SECRETS.configuredHeader,
      'x-api-key': SECRETS.apiKeyHeader,
      cookie: `session=${SECRETS.cookie}`,
      'proxy-authorization': `Basic ${Buffer.from(`agent:${SECRETS.proxyAuth}`).toString('base64')}`,
    },
  });
  // A JSON body.
  await egress('/demo/items', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      title: 'visible-title',
      password: SECRETS.bodyField,
      nested: { client_secret: SECRETS.bodyNested },
    }),
  });
  // An MCP tool call: the protocol view (input.protocol.arguments) carries the arguments.
  await egress('/mcp', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: {
        name: 'lookup',
        arguments: { api_key: SECRETS.mcpArgument, note: `visible-note Bearer ${SECRETS.mcpBearer}` },
      },
    }),
  });
  // A request held for approval, with a secret in its query, approved by a reviewer: the approval
  // and the administrative record name the request.
  const held = await egress(`/demo/items/1?api_key=${SECRETS.approvedQuery}`, { method: 'DELETE' });
  expect(held.status).toBe(403);
  const { approval_id } = (await held.json()) as { approval_id: string };
  const approved = await fetch(`${gw.api}/approvals/approve`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tokens['carol']}`, 'content-type': 'application/json' },
    body: JSON.stringify({ id: approval_id }),
  });
  expect(approved.status, await approved.clone().text()).toBe(200);

  await waitFor(
    async () => {
      const rows = await decisions();
      return rows.some((r) => r.decision === 'admin' && r.method === 'APPROVE') && rows.length >= 5;
    },
    { timeoutMs: 30_000, what: 'every decision and the approval in the store' },
  );
}, 180_000);

afterAll(async () => {
  await gw?.cleanup();
});

describe('no secret in the audit trail', () => {
  it('the records are there, with the secrets redacted (positive control)', async () => {
    const rows = await decisions();
    const text = JSON.stringify(rows);
    expect(text).toContain('visible'); // the non-secret query parameter
    expect(text).toContain('visible-title');
    expect(text).toContain('visible-note Bearer [redacted]');
    expect(text).toContain('"x-internal-secret":"[redacted]"');
    const approve = rows.find((r) => r.method === 'APPROVE');
    expect(approve?.reason).toMatch(/DELETE \/demo\/items\/1\?api_key=\[redacted\]/);
    const mcp = rows.find((r) => r.path === '/mcp')?.input as { protocol: { arguments: unknown } };
    expect(mcp.protocol.arguments).toEqual({ api_key: '[redacted]', note: 'visible-note Bearer [redacted]' });
  });

  it('is in no export: JSONL and OPA decision-log events', async () => {
    const jsonl = await runCli([
      'audit',
      'export',
      '--api',
      gw.api,
      '--since',
      '1h',
      '--token',
      tokens['carol']!,
    ]);
    const opa = await runCli([
      'audit',
      'export',
      '--format',
      'opa',
      '--api',
      gw.api,
      '--since',
      '1h',
      '--token',
      tokens['carol']!,
    ]);
    expect(jsonl.code, jsonl.out).toBe(0);
    expect(opa.code, opa.out).toBe(0);
    expect(jsonl.out.split('\n').filter(Boolean).length).toBeGreaterThanOrEqual(5);
    expect(
      leaks({ 'audit export': jsonl.out, 'audit export --format opa': opa.out }, [tokens['alice']!]),
    ).toEqual([]);
  });

  it('is in no access-log row, and not in /status', async () => {
    const rows = await decisions();
    const logs: Record<string, string> = {};
    for (const r of rows.filter((x) => x.request_id)) {
      const res = await apiFetch(gw, tokens['carol']!, `/audit/access-logs?request_id=${r.request_id}`);
      logs[`access log of ${r.method} ${r.path}`] = await res.text();
    }
    const status = await (await apiFetch(gw, tokens['carol']!, `/status`)).text();
    expect(leaks({ ...logs, '/status': status }, [tokens['alice']!, tokens['carol']!])).toEqual([]);
  });

  it('is in no spool file, no log line, no row of any table of the store', async () => {
    const spoolBefore = await filesUnder(join(gw.dir, 'spool'));
    expect(Object.keys(spoolBefore).length).toBeGreaterThan(0);
    expect(await gw.stop()).toBe(0);
    const spoolAfter = await filesUnder(join(gw.dir, 'spool'));
    const store = await openAuditStore({ dataDir: join(gw.dir, 'audit') });
    const tables: Record<string, string> = {};
    try {
      const names = await store.sql.query<{ table_name: string }>(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
      );
      for (const { table_name } of names)
        tables[`table ${table_name}`] = JSON.stringify(await store.sql.query(`SELECT * FROM ${table_name}`));
      expect(tables['table decisions']).toContain('visible-title');
      expect(tables['table access_log']).toContain('/demo/items');
    } finally {
      await store.close();
    }
    const everything = {
      ...Object.fromEntries(Object.entries(spoolBefore).map(([k, v]) => [`${k} (running)`, v])),
      ...spoolAfter,
      ...tables,
      'stdout and stderr': gw.output(),
    };
    expect(leaks(everything, [tokens['alice']!, tokens['carol']!])).toEqual([]);
  });
});
