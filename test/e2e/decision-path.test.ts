// End-to-end proof of the decision path with no part faked: a real Envoy (envoy/bootstrap-static.yaml)
// asks the real authz server (Rego compiled to WASM at start, JWTs checked against a real OIDC
// provider's keys) before anything reaches an echo upstream that records what it actually received.
// Requests are written as raw HTTP/1.1 over a socket so hostile paths reach Envoy byte-exact.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type AuthzServer, type AuthzServerOptions, startAuthzServer } from '../../authz-server/server.ts';
import { PROJECT_ROOT } from '../../lib/tools.ts';
import { type RunningEnvoy, renderTemplate, startEnvoy } from '../support/envoy.ts';
import { startOidcProvider } from '../support/oidc-provider.ts';
import { freePort } from '../support/ports.ts';
import { type EchoUpstream, startEchoUpstream } from '../support/upstream.ts';
import { waitFor } from '../support/wait.ts';

// The policy under test: engineering may use /demo/**, a JSON body field can veto, everything else
// is denied with a reason the client can read. Written here so the suite pins its own rules instead
// of depending on whatever the shipped library allows.
const POLICY = `package chaperone.authz

http := input.attributes.request.http

engineer if "engineering" in input.identity.groups

demo_path if input.parsed_path[0] == "demo"

body_ok if http.method == "GET"

body_ok if {
	http.method == "POST"
	input.parsed_body.priority != "critical"
}

deny(status, reason) := {"allowed": false, "http_status": status, "reason": reason, "body": {"reason": reason}}

decision := d if {
	input.identity == null
	d := {
		"allowed": false,
		"http_status": 401,
		"reason": "authentication required",
		"body": {"reason": "authentication required", "error": input.identity_error.code},
	}
} else := deny(403, "only the engineering group may use the demo API") if {
	not engineer
} else := deny(403, "path is outside /demo") if {
	not demo_path
} else := deny(403, "critical priority needs approval") if {
	not body_ok
} else := {
	"allowed": true,
	"headers": {"x-chaperone-user": input.identity.subject, "x-chaperone-groups": concat(",", input.identity.groups)},
	"request_headers_to_remove": ["authorization"],
	"reason": "engineering may use the demo API",
}
`;

const DECISION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

function dechunk(body: Buffer): Buffer {
  const out: Buffer[] = [];
  let i = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', i);
    if (eol === -1) break;
    const size = Number.parseInt(body.subarray(i, eol).toString('latin1'), 16);
    if (!Number.isFinite(size) || size === 0) break;
    out.push(body.subarray(eol + 2, eol + 2 + size));
    i = eol + 2 + size + 2;
  }
  return Buffer.concat(out);
}

/** One HTTP/1.1 request written byte-for-byte (the path is not normalised by any client library). */
function rawRequest(
  port: number,
  req: { method?: string; path: string; headers?: Record<string, string>; body?: string },
): Promise<RawResponse> {
  const body = req.body ?? '';
  const lines = [`${req.method ?? 'GET'} ${req.path} HTTP/1.1`, 'host: demo.local', 'connection: close'];
  for (const [k, v] of Object.entries(req.headers ?? {})) lines.push(`${k}: ${v}`);
  if (body || req.method === 'POST') lines.push(`content-length: ${Buffer.byteLength(body)}`);
  const wire = `${lines.join('\r\n')}\r\n\r\n${body}`;
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    socket.setTimeout(10_000, () =>
      socket.destroy(new Error(`no response to ${req.method ?? 'GET'} ${req.path}`)),
    );
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('end', () => {
      const all = Buffer.concat(chunks);
      const split = all.indexOf('\r\n\r\n');
      if (split === -1) {
        reject(new Error(`incomplete response to ${req.path}: ${JSON.stringify(all.toString('latin1'))}`));
        return;
      }
      const [statusLine = '', ...headerLines] = all.subarray(0, split).toString('latin1').split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of headerLines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      let rest: Buffer = all.subarray(split + 4);
      if (headers['transfer-encoding']?.includes('chunked')) rest = dechunk(rest);
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: rest.toString('utf8') });
    });
    socket.write(wire);
  });
}

/** The JSON body of a response, or a marker that makes a failing assertion readable. */
function json(res: RawResponse): Record<string, unknown> {
  try {
    return JSON.parse(res.body) as Record<string, unknown>;
  } catch {
    return { unparsable: res.body };
  }
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** The same token with one signature character changed: a valid shape, a wrong signature. */
function forge(token: string): string {
  const [h, p, s = ''] = token.split('.');
  const mid = Math.floor(s.length / 2);
  const swapped = s[mid] === 'A' ? 'B' : 'A';
  return `${h}.${p}.${s.slice(0, mid)}${swapped}${s.slice(mid + 1)}`;
}

/** The same claims under `alg: none` with no signature (RFC 7519 "unsecured JWT"). */
function unsecured(token: string): string {
  const [, p] = token.split('.');
  return `${b64url({ alg: 'none', typ: 'JWT' })}.${p}.`;
}

describe('decision path: Envoy → authz server (Rego/WASM, OIDC) → upstream', () => {
  let policyDir: string;
  let oidc: Awaited<ReturnType<typeof startOidcProvider>>;
  let upstream: EchoUpstream;
  let authz: AuthzServer | null = null;
  let authzOptions: (address: string) => AuthzServerOptions;
  let envoy: RunningEnvoy;
  let listenPort: number;
  let tokens: { alice: string; bob: string; expired: string };

  const send = (req: Parameters<typeof rawRequest>[1]) => rawRequest(listenPort, req);
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  beforeAll(async () => {
    policyDir = await mkdtemp(join(tmpdir(), 'chaperone-e2e-policy-'));
    await writeFile(join(policyDir, 'decision.rego'), POLICY);

    oidc = await startOidcProvider({
      users: [
        { sub: 'alice', groups: ['engineering'], email: 'alice@example.test' },
        { sub: 'bob', groups: ['contractors'], email: 'bob@example.test' },
      ],
      audience: 'chaperone',
    });
    upstream = await startEchoUpstream();

    const { issuer } = oidc;
    authzOptions = (address) => ({
      address,
      policy: { dir: policyDir, entrypoint: 'chaperone/authz/decision' },
      identity: { issuers: [{ issuer, audiences: ['chaperone'] }] },
      logger: pino({ level: 'warn' }),
    });
    authz = await startAuthzServer(authzOptions('127.0.0.1:0'));

    listenPort = await freePort();
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

    tokens = {
      alice: await oidc.tokenFor('alice', { ttlSec: 300 }),
      bob: await oidc.tokenFor('bob', { ttlSec: 300 }),
      // Expired well beyond the verifier's clock tolerance (30 s default, 60 s cap).
      expired: await oidc.tokenFor('alice', { ttlSec: -600 }),
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

  it('allows alice, injects the policy headers and strips what the client asserted', async () => {
    const res = await send({
      path: '/demo/items?limit=2',
      headers: {
        ...bearer(tokens.alice),
        'x-chaperone-user': 'mallory',
        'x-chaperone-role': 'admin',
        'x-chaperone-decision-id': 'forged',
        'x-forwarded-user': 'mallory',
        'x-forwarded-groups': 'admins',
        'x-forwarded-email': 'mallory@example.test',
      },
    });
    expect(res.status, res.body).toBe(200);
    const decisionId = res.headers['x-chaperone-decision-id'];
    expect(decisionId).toMatch(DECISION_ID);

    expect(upstream.requests).toHaveLength(1);
    const seen = upstream.requests[0]!;
    expect(seen.method).toBe('GET');
    expect(seen.path).toBe('/demo/items?limit=2');
    expect(seen.headers['x-chaperone-user']).toBe('alice');
    expect(seen.headers['x-chaperone-groups']).toBe('engineering');
    expect(seen.headers['x-chaperone-decision-id']).toBe(decisionId);
    for (const name of [
      'authorization',
      'x-chaperone-role',
      'x-forwarded-user',
      'x-forwarded-groups',
      'x-forwarded-email',
    ]) {
      expect(seen.headers[name], name).toBeUndefined();
    }
    // Exactly one value of each identity header: the client's copy is gone, not merely outvoted.
    const rawNames = seen.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    expect(rawNames.filter((n) => n === 'x-chaperone-user')).toHaveLength(1);
    expect(seen.headers['x-request-id']).toMatch(DECISION_ID);
    // The client got the upstream's echo, i.e. the request really went through.
    expect(json(res)['path']).toBe('/demo/items?limit=2');
  });

  it.each([
    {
      name: 'bob (contractors)',
      auth: () => bearer(tokens.bob),
      status: 403,
      body: { reason: 'only the engineering group may use the demo API' },
    },
    {
      name: 'no token',
      auth: () => ({}),
      status: 401,
      body: { reason: 'authentication required', error: 'ERR_TOKEN_MISSING' },
    },
    {
      name: 'expired token',
      auth: () => bearer(tokens.expired),
      status: 401,
      body: { reason: 'authentication required', error: 'ERR_TOKEN_EXPIRED' },
    },
    {
      name: 'forged signature',
      auth: () => bearer(forge(tokens.alice)),
      status: 401,
      body: { reason: 'authentication required', error: 'ERR_TOKEN_SIGNATURE' },
    },
    {
      name: 'alg none',
      auth: () => bearer(unsecured(tokens.alice)),
      status: 401,
      body: { reason: 'authentication required', error: 'ERR_TOKEN_ALG' },
    },
  ])('denies $name with $status and the policy reason', async ({ auth, status, body }) => {
    const res = await send({ path: '/demo/items', headers: auth() });
    expect(res.status, res.body).toBe(status);
    expect(json(res)).toEqual(body);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.headers['x-chaperone-decision-id']).toMatch(DECISION_ID);
    expect(upstream.requests).toEqual([]);
  });

  it.each([
    { name: 'low priority', body: JSON.stringify({ priority: 'low' }), status: 200, reason: undefined },
    {
      name: 'critical priority',
      body: JSON.stringify({ priority: 'critical' }),
      status: 403,
      reason: 'critical priority needs approval',
    },
  ])('decides on a JSON body field: $name → $status', async ({ body, status, reason }) => {
    const res = await send({
      method: 'POST',
      path: '/demo/items',
      headers: { ...bearer(tokens.alice), 'content-type': 'application/json' },
      body,
    });
    expect(res.status, res.body).toBe(status);
    expect(res.headers['x-chaperone-decision-id']).toMatch(DECISION_ID);
    if (status === 200) {
      expect(upstream.requests).toHaveLength(1);
      expect(upstream.requests[0]!.body).toBe(body);
    } else {
      expect(json(res)).toEqual({ reason });
      expect(upstream.requests).toEqual([]);
    }
  });

  it('denies a body larger than what Envoy forwards to the authz server (partial body)', async () => {
    // 8 KiB is max_request_bytes in the bootstrap; the allowed field sits at the start, so a policy
    // judging the prefix alone would allow it.
    const body = JSON.stringify({ priority: 'low', padding: 'x'.repeat(10_000) });
    const res = await send({
      method: 'POST',
      path: '/demo/items',
      headers: { ...bearer(tokens.alice), 'content-type': 'application/json' },
      body,
    });
    expect(res.status, res.body).toBe(413);
    expect(json(res)['error']).toBe('ERR_BODY_TRUNCATED');
    expect(res.headers['x-chaperone-decision-id']).toMatch(DECISION_ID);
    expect(upstream.requests).toEqual([]);
  });

  it('denies /admin itself (the control for the path cases below)', async () => {
    const res = await send({ path: '/admin', headers: bearer(tokens.alice) });
    expect(res.status).toBe(403);
    expect(json(res)).toEqual({ reason: 'path is outside /demo' });
    expect(upstream.requests).toEqual([]);
  });

  it.each([
    '/demo/../admin',
    '/demo/%2e%2e/admin',
    '/demo/%2E%2E/admin',
    '/demo%2F..%2Fadmin',
    '/demo/..%2fadmin',
    '/demo/..%5cadmin',
    '//admin',
    '/demo/./../admin',
    '/demo\\..\\admin',
    '/demo/..;/admin',
  ])('never lets %s reach /admin upstream', async (path) => {
    const res = await send({ path, headers: bearer(tokens.alice) });
    expect(res.status, `${path} → ${res.status} ${res.body}`).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(upstream.requests.filter((r) => r.path.toLowerCase().startsWith('/admin'))).toEqual([]);
    expect(upstream.requests).toEqual([]);
  });

  it('rejects identity headers spelled with underscores before they reach anyone', async () => {
    const res = await send({
      path: '/demo/items',
      headers: { ...bearer(tokens.alice), x_chaperone_user: 'mallory' },
    });
    expect(res.status).toBe(400);
    expect(upstream.requests).toEqual([]);
  });

  it('fails closed while the authz server is down and serves again once it is back', async () => {
    const port = authz!.port;
    await authz!.close();
    authz = null;

    for (const req of [
      { path: '/demo/items', headers: bearer(tokens.alice) },
      { method: 'POST', path: '/demo/items', headers: bearer(tokens.alice), body: '{"priority":"low"}' },
      { path: '/demo/items' },
    ]) {
      const res = await send(req);
      expect(res.status, `${req.method ?? 'GET'} ${req.path} → ${res.status}`).toBe(503);
      expect(res.headers['x-chaperone-decision-id']).toBeUndefined();
      // Envoy's own answer, with a code a client can act on (envoy/bootstrap-static.yaml local reply).
      expect(JSON.parse(res.body)).toMatchObject({ error: 'ERR_AUTHZ_UNAVAILABLE' });
      expect(res.headers['retry-after']).toBe('1');
    }
    expect(upstream.requests).toEqual([]);

    authz = await startAuthzServer(authzOptions(`127.0.0.1:${port}`));
    expect(authz.port).toBe(port);
    await waitFor(
      async () => (await send({ path: '/demo/items', headers: bearer(tokens.alice) })).status === 200,
      {
        timeoutMs: 20_000,
        intervalMs: 100,
        what: 'Envoy to reach the restarted authz server',
      },
    );
    expect(upstream.requests.at(-1)?.headers['x-chaperone-user']).toBe('alice');
  });
});
