// Credential injection through the whole gateway: the upstream receives the target's secret on allowed
// requests; the agent never can obtain it — not in a response header, a deny body, an error, a log line,
// the audit trail or its export — and never sends or needs it. The caller's own token never reaches
// the upstream.
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../lib/tools.ts';
import {
  apiFetch,
  devGatewayYaml,
  type GatewayProcess,
  gatewayPorts,
  startGatewayProcess,
} from '../support/gateway-process.ts';
import { freePort } from '../support/ports.ts';
import { waitFor } from '../support/wait.ts';

const SECRET = `sk_live_${'9'.repeat(8)}_${Date.now()}`;
let gw: GatewayProcess;
let policyDir: string;
let upstream: Server;
const seen: IncomingHttpHeaders[] = [];

beforeAll(async () => {
  const port = await freePort();
  upstream = createServer((req, res) => {
    seen.push(req.headers);
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
  });
  await new Promise<void>((r) => upstream.listen(port, '127.0.0.1', () => r()));
  const ports = await gatewayPorts();
  // The shipped library plus rules for a target "payments": engineering may GET it.
  policyDir = join(PROJECT_ROOT, '.chaperone', `test-policies-${ports.api}`);
  await mkdir(policyDir, { recursive: true });
  await cp(join(PROJECT_ROOT, 'policies', 'chaperone'), join(policyDir, 'chaperone'), { recursive: true });
  const data = JSON.parse(await readFile(join(policyDir, 'chaperone', 'targets', 'data.json'), 'utf8'));
  data.payments = {
    rules: [
      { name: 'engineering-payments', groups: ['engineering'], methods: ['GET'], paths: ['/payments/**'] },
    ],
  };
  await writeFile(join(policyDir, 'chaperone', 'targets', 'data.json'), JSON.stringify(data));
  const extra = `  - name: payments
    upstream: http://127.0.0.1:${port}
    match:
      path_prefix: /payments
    credentials:
      - header: authorization
        value: env:CHAPERONE_E2E_PAYMENTS_KEY
        format: Bearer {}
`;
  gw = await startGatewayProcess({
    ports,
    env: { CHAPERONE_E2E_PAYMENTS_KEY: SECRET },
    yaml: (p) => devGatewayYaml(p, extra).replace(join(PROJECT_ROOT, 'policies'), policyDir),
  });
}, 120_000);

afterAll(async () => {
  await gw?.cleanup();
  upstream?.close();
  if (policyDir) await rm(policyDir, { recursive: true, force: true });
});

async function token(user: string): Promise<string> {
  return ((await (await fetch(`${gw.api}/dev/token?user=${user}`)).json()) as { token: string }).token;
}

describe('credential injection through Envoy', () => {
  it('the upstream gets the secret, never the caller token; the client never sees the secret', async () => {
    const alice = await token('alice');
    const bob = await token('bob');
    const allowed = await fetch(`${gw.egress}/payments/charges`, {
      headers: { authorization: `Bearer ${alice}` },
    });
    expect(allowed.status).toBe(200);
    expect(seen.at(-1)?.['authorization']).toBe(`Bearer ${SECRET}`);
    expect(JSON.stringify(seen)).not.toContain(alice);

    const denied = await fetch(`${gw.egress}/payments/charges`, {
      headers: { authorization: `Bearer ${bob}` },
    });
    const anonymous = await fetch(`${gw.egress}/payments/charges`);
    const clientView = [allowed, denied, anonymous].map((r) => JSON.stringify([...r.headers]));
    clientView.push(await allowed.text(), await denied.text(), await anonymous.text());
    expect(denied.status).toBe(403);
    expect(anonymous.status).toBe(401);
    expect(seen).toHaveLength(1); // nothing reached the upstream for the denied requests
    for (const text of clientView) expect(text).not.toContain(SECRET);

    // Everything an operator or auditor can read: status, the audit trail and its export, the logs.
    const carol = await token('carol');
    await waitFor(
      async () => {
        const { rows } = (await (await apiFetch(gw, carol, `/audit/decisions?target=payments`)).json()) as {
          rows: unknown[];
        };
        return rows.length >= 3;
      },
      { what: 'the payments decisions in the audit trail' },
    );
    const operatorView = [
      await (await apiFetch(gw, carol, `/status`)).text(),
      await (await apiFetch(gw, carol, `/audit/decisions?target=payments&limit=100`)).text(),
      await (await apiFetch(gw, carol, `/audit/export?format=opa&since=1h`)).text(),
      gw.output(),
      await readFile(gw.configPath, 'utf8'),
    ];
    for (const text of operatorView) expect(text).not.toContain(SECRET);
    // The reference is visible (so an operator can fix it), the value is not.
    expect(operatorView[0]).toContain('env:CHAPERONE_E2E_PAYMENTS_KEY');
  });
});
