// Envoy's ext_authz filter (its own gRPC client, one HTTP/2 connection per worker) against the authz
// server on the lean node:http2 transport: allow with injected and removed headers, denies with the
// policy's status, headers and body, request bodies, and a burst multiplexed over Envoy's connections
// with Envoy's own counters showing no error.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type AuthzServer, startAuthzServer } from '../../authz-server/server.ts';
import { PROJECT_ROOT } from '../../lib/tools.ts';
import { type RunningEnvoy, renderTemplate, startEnvoy } from '../support/envoy.ts';
import { startOidcProvider } from '../support/oidc-provider.ts';
import { freePort } from '../support/ports.ts';
import { type EchoUpstream, startEchoUpstream } from '../support/upstream.ts';

const POLICY = `package chaperone.authz

engineer if "engineering" in input.identity.groups

decision := {
	"allowed": false,
	"http_status": 401,
	"headers": {"www-authenticate": "Bearer"},
	"body": {"error": "unauthenticated"},
	"reason": "authentication required",
} if {
	input.identity == null
} else := {
	"allowed": false,
	"http_status": 403,
	"headers": {"x-denied-by": "policy"},
	"body": {"reason": "only engineering"},
	"reason": "only engineering",
} if {
	not engineer
} else := {
	"allowed": false,
	"http_status": 403,
	"body": {"reason": "critical needs approval"},
	"reason": "critical needs approval",
} if {
	input.parsed_body.priority == "critical"
} else := {
	"allowed": true,
	"headers": {"x-chaperone-user": input.identity.subject},
	"request_headers_to_remove": ["authorization"],
	"reason": "engineering",
}
`;

describe('Envoy ext_authz → authz server on the lean transport (node:http2)', () => {
  let policyDir: string;
  let oidc: Awaited<ReturnType<typeof startOidcProvider>>;
  let upstream: EchoUpstream;
  let authz: AuthzServer;
  let envoy: RunningEnvoy;
  let base: string;
  let tokens: { alice: string; bob: string };

  beforeAll(async () => {
    policyDir = await mkdtemp(join(tmpdir(), 'chaperone-lean-e2e-'));
    await writeFile(join(policyDir, 'decision.rego'), POLICY);
    oidc = await startOidcProvider({
      users: [
        { sub: 'alice', groups: ['engineering'] },
        { sub: 'bob', groups: ['contractors'] },
      ],
      audience: 'chaperone',
    });
    upstream = await startEchoUpstream();
    authz = await startAuthzServer({
      address: '127.0.0.1:0',
      transport: 'http2',
      policy: { dir: policyDir, entrypoint: 'chaperone/authz/decision' },
      identity: { issuers: [{ issuer: oidc.issuer, audiences: ['chaperone'] }] },
      logger: pino({ level: 'warn' }),
    });
    const listenPort = await freePort();
    const adminPort = await freePort();
    const template = await readFile(join(PROJECT_ROOT, 'envoy/bootstrap-static.yaml'), 'utf8');
    envoy = await startEnvoy({
      bootstrapYaml: renderTemplate(template, {
        LISTEN_PORT: listenPort,
        ADMIN_PORT: adminPort,
        AUTHZ_PORT: authz.port,
        UPSTREAM_PORT: upstream.port,
      }),
      adminPort,
      listenPorts: [listenPort],
    });
    base = `http://127.0.0.1:${listenPort}`;
    tokens = {
      alice: await oidc.tokenFor('alice', { ttlSec: 300 }),
      bob: await oidc.tokenFor('bob', { ttlSec: 300 }),
    };
  });

  afterAll(async () => {
    await envoy?.close();
    await authz?.close();
    await upstream?.close();
    await oidc?.close();
    if (policyDir) await rm(policyDir, { recursive: true, force: true });
  });

  beforeEach(() => upstream.clear());

  const get = (path: string, token?: string) =>
    fetch(`${base}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});

  /** Envoy's counters (`/stats?format=json`) whose names contain `part`, by name. */
  async function envoyStats(part: string): Promise<Record<string, number>> {
    const res = await fetch(`${envoy.adminUrl}/stats?format=json&filter=${encodeURIComponent(part)}`);
    const body = (await res.json()) as { stats: { name: string; value?: number }[] };
    return Object.fromEntries(body.stats.filter((s) => s.value !== undefined).map((s) => [s.name, s.value!]));
  }

  it('allow: the upstream gets the policy headers, not the token', async () => {
    const res = await get('/demo/items', tokens.alice);
    expect(res.status, await res.clone().text()).toBe(200);
    expect(upstream.requests).toHaveLength(1);
    const seen = upstream.requests[0]!;
    expect(seen.headers['x-chaperone-user']).toBe('alice');
    expect(seen.headers['x-chaperone-decision-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen.headers['authorization']).toBeUndefined();
    expect(res.headers.get('x-chaperone-decision-id')).toBe(seen.headers['x-chaperone-decision-id']);
  });

  it('deny: the policy status, headers and body reach the client; nothing reaches the upstream', async () => {
    const res = await get('/demo/items', tokens.bob);
    expect(res.status).toBe(403);
    expect(res.headers.get('x-denied-by')).toBe('policy');
    expect(await res.json()).toMatchObject({ reason: 'only engineering' });
    const anonymous = await get('/demo/items');
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer');
    expect(upstream.requests).toHaveLength(0);
  });

  it('request bodies arrive in the Check (with_request_body, pack_as_bytes)', async () => {
    const post = (priority: string) =>
      fetch(`${base}/demo/items`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokens.alice}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'x', priority }),
      });
    expect((await post('low')).status).toBe(200);
    const critical = await post('critical');
    expect(critical.status).toBe(403);
    expect(await critical.json()).toMatchObject({ reason: 'critical needs approval' });
  });

  it('a burst of 120 concurrent requests: every answer right, no ext_authz error in Envoy', async () => {
    const before = await envoyStats('ext_authz');
    // Sized to stay well inside the bootstrap's 0.5 s ext_authz timeout on a busy 2-CPU machine (300 at
    // once timed some Checks out there): the point is many streams multiplexed at once, not load.
    const users = Array.from({ length: 120 }, (_, i) => (i % 3 === 0 ? 'bob' : 'alice'));
    const statuses = await Promise.all(
      users.map(async (u) => {
        const res = await get(`/demo/items/${u}`, tokens[u as 'alice' | 'bob']);
        await res.arrayBuffer();
        return res.status;
      }),
    );
    expect(statuses).toEqual(users.map((u) => (u === 'bob' ? 403 : 200)));
    const after = await envoyStats('ext_authz');
    const delta = (name: string) => (after[name] ?? 0) - (before[name] ?? 0);
    expect(delta('http.egress.ext_authz.ok')).toBe(80);
    expect(delta('http.egress.ext_authz.denied')).toBe(40);
    expect(delta('http.egress.ext_authz.error')).toBe(0);
    expect(delta('http.egress.ext_authz.failure_mode_allowed')).toBe(0);
  });
});
