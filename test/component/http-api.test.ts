// The HTTP API server with its whole route table (stub dependencies behind the handlers) and the real
// verifier against a real OIDC provider: every route refuses the callers its declaration excludes
// before its handler runs; Host/Origin are checked; no CORS; bodies, slow clients and connection
// counts are bounded.
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostAllowList } from '../../api/host-allow-list.ts';
import { type HttpApi, startHttpApi } from '../../api/http-api.ts';
import { isSessionCaller, type Route, routeKey } from '../../api/route.ts';
import { RevocationIndex } from '../../fleet/agent-registry.ts';
import { IdentityVerifier } from '../../identity/verifier.ts';
import { routeCatalog } from '../support/api-routes.ts';
import { openSocket, rawRequest } from '../support/http-raw.ts';
import { type OidcProvider, startOidcProvider } from '../support/oidc-provider.ts';

let idp: OidcProvider;
let api: HttpApi;
const calls: string[] = [];
const routes: Route[] = routeCatalog(calls);
const tokens: Record<string, string> = {};

const LIMITS = { headersTimeoutMs: 500, requestTimeoutMs: 1_000, maxConnections: 4, maxBodyBytes: 1024 };

beforeAll(async () => {
  idp = await startOidcProvider({
    audience: 'chaperone',
    users: [
      { sub: 'alice', groups: ['engineering'] },
      { sub: 'bob', groups: ['contractors'] },
      { sub: 'carol', groups: ['security'] },
    ],
  });
  api = await startHttpApi({
    host: '127.0.0.1',
    port: 0,
    routes,
    logger: pino({ level: 'silent' }),
    limits: LIMITS,
    hosts: hostAllowList({ bindHost: '127.0.0.1', publicUrls: [] }),
    auth: {
      verifier: new IdentityVerifier({ issuers: [{ issuer: idp.issuer, audiences: ['chaperone'] }] }),
      agentIssuer: 'http://127.0.0.1:1',
      // Every agent token of alice issued until a minute from now is revoked.
      revocation: new RevocationIndex({
        token_ids: [],
        users: [{ issuer: idp.issuer, subject: 'alice', cutoff: Date.now() + 60_000 }],
        agents: [],
      }),
      access: { admins: ['security'], auditors: ['security'], reviewers: ['security'] },
    },
  });
  tokens['bob'] = await idp.tokenFor('bob');
  tokens['carol'] = await idp.tokenFor('carol');
  // A token with `act` is an agent's, whoever issued it; alice's agents are revoked.
  tokens['agent'] = await idp.tokenFor('bob', { claims: { act: { sub: 'agent:bot', agent: 'bot' } } });
  tokens['revoked'] = await idp.tokenFor('alice', { claims: { act: { sub: 'agent:bot', agent: 'bot' } } });
}, 60_000);

afterAll(async () => {
  await api?.close();
  await idp?.close();
});

function call(r: Route, token?: string, headers: Record<string, string> = {}) {
  return rawRequest({
    port: api.port,
    method: r.method,
    path: r.path,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(r.method === 'POST' ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    ...(r.method === 'POST' ? { body: '{}' } : {}),
  });
}

/** Past the hook: the handler ran (and hit a stub, a 500) or answered by itself. */
const passed = (status: number) => status !== 401 && status !== 403 && status !== 421;
// Console routes take a session cookie, never a token: test/security/console-session.test.ts attacks them.
const bearer = routes.filter(
  (r) => r.caller !== 'anonymous' && r.caller !== 'subject_token' && !isSessionCaller(r.caller),
);
const roleRoutes = bearer.filter((r) => typeof r.caller === 'object');

describe('every route refuses callers its declaration excludes, before its handler', () => {
  it('no token: 401 on every route that needs one', async () => {
    for (const r of bearer) {
      const before = calls.length;
      expect((await call(r)).status, routeKey(r)).toBe(401);
      expect(calls.length, routeKey(r)).toBe(before);
    }
  });

  it('an agent token: 403 everywhere but the approval status', async () => {
    for (const r of bearer) {
      const res = await call(r, tokens['agent']);
      if (r.caller === 'human_or_agent') expect(passed(res.status), routeKey(r)).toBe(true);
      else expect([res.status, JSON.parse(res.body).error], routeKey(r)).toEqual([403, 'agent_not_allowed']);
    }
  });

  it('a revoked agent token: 401 on every route that needs a token', async () => {
    for (const r of bearer) {
      const res = await call(r, tokens['revoked']);
      expect([res.status, JSON.parse(res.body).error], routeKey(r)).toEqual([401, 'token_revoked']);
    }
  });

  it('a person without the role (bob): 403 on every role route, through on the others', async () => {
    for (const r of bearer) {
      const res = await call(r, tokens['bob']);
      if (roleRoutes.includes(r)) expect(res.status, routeKey(r)).toBe(403);
      else expect(passed(res.status), routeKey(r)).toBe(true);
    }
  });

  it('a person with every role (carol): through on every route', async () => {
    for (const r of routes.filter((x) => !isSessionCaller(x.caller)))
      expect(passed((await call(r, tokens['carol'])).status), routeKey(r)).toBe(true);
  });

  it('a forged Host: 421 on every route, health included; a foreign Origin: 403', async () => {
    for (const r of routes) {
      const res = await call(r, tokens['carol'], { host: 'evil.example.com' });
      expect(res.status, routeKey(r)).toBe(421);
      const cross = await call(r, tokens['carol'], { origin: 'http://evil.example.com' });
      expect(cross.status, routeKey(r)).toBe(403);
    }
  });

  it('sends no CORS header, and answers no preflight', async () => {
    for (const r of routes) {
      const res = await call(r, tokens['carol'], { origin: 'http://127.0.0.1' });
      expect(
        Object.keys(res.headers).filter((h) => h.startsWith('access-control-')),
        routeKey(r),
      ).toEqual([]);
    }
    const preflight = await rawRequest({ port: api.port, method: 'OPTIONS', path: '/status' });
    expect(preflight.status).toBe(405);
    expect(Object.keys(preflight.headers).some((h) => h.startsWith('access-control-'))).toBe(false);
  });
});

describe('bounds', () => {
  it('refuses a body over the limit (413), by its Content-Length or as it streams', async () => {
    const big = await rawRequest({
      port: api.port,
      method: 'POST',
      path: '/approvals/deny',
      headers: { authorization: `Bearer ${tokens['carol']}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'x'.repeat(2048) }),
    });
    expect([big.status, JSON.parse(big.body).error]).toEqual([413, 'body_too_large']);
  });

  it('closes a connection whose headers never finish', async () => {
    const { socket, closed } = await openSocket(api.port);
    socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const started = Date.now();
    const answer = await closed;
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(answer === '' || answer.startsWith('HTTP/1.1 408')).toBe(true);
  });

  it('closes a request whose body never finishes', async () => {
    const { socket, closed } = await openSocket(api.port);
    socket.write(
      `POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"a":`,
    );
    const started = Date.now();
    const answer = await closed;
    expect(Date.now() - started).toBeLessThan(6_000);
    expect(answer === '' || answer.startsWith('HTTP/1.1 408')).toBe(true);
  });

  it(`refuses connections beyond ${LIMITS.maxConnections}`, async () => {
    const held = await Promise.all(Array.from({ length: LIMITS.maxConnections }, () => openSocket(api.port)));
    // The server accepts the next one at TCP level and closes it at once.
    const extra = await openSocket(api.port);
    extra.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    expect(await extra.closed).toBe('');
    for (const h of held) h.socket.destroy();
  });
});
