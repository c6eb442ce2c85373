// Attackers against the HTTP API of a real `chaperone up --dev` (the CLI as a user starts it): no
// token, an agent token, a revoked agent token, a person without the role (bob) and a forged Host
// header (DNS rebinding), each tried on every route of the route table — a route added to
// api/routes/ is attacked here without editing this file. Only the declared public routes answer
// without a token, and they say nothing beyond up/ready and public keys.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSessionCaller, type Route, routeKey } from '../../api/route.ts';
import { routeCatalog } from '../support/api-routes.ts';
import { apiFetch, devToken, type GatewayProcess, startGatewayProcess } from '../support/gateway-process.ts';
import { type RawResponse, rawRequest } from '../support/http-raw.ts';

let gw: GatewayProcess;
const tokens: Record<string, string> = {};
const routes: Route[] = routeCatalog();
// Console routes take a session cookie, never a bearer token: test/security/console-session.test.ts.
const bearerRoutes = routes.filter(
  (r) => r.caller !== 'anonymous' && r.caller !== 'subject_token' && !isSessionCaller(r.caller),
);
const exchange = routes.find((r) => r.caller === 'subject_token')!;

async function agentToken(user: string, name: string): Promise<{ token: string; id: string }> {
  const res = await fetch(`${gw.api}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: tokens[user]!,
      agent_name: name,
    }).toString(),
  });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { access_token: string; token_id: string };
  return { token: body.access_token, id: body.token_id };
}

/** A request to route `r` with the attacker's credential (a body for POST routes, so bodies are read). */
function attack(r: Route, o: { token?: string; host?: string; body?: Record<string, string> } = {}) {
  const body = o.body ?? { id: 'x', token_id: 'x', agent: 'x', user: 'alice' };
  return rawRequest({
    port: gw.ports.api,
    method: r.method,
    path: r.path,
    headers: {
      ...(o.host ? { host: o.host } : {}),
      ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
      ...(r.method === 'POST' ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
    },
    ...(r.method === 'POST' ? { body: new URLSearchParams(body).toString() } : {}),
  });
}

const verdict = (res: RawResponse) => `${res.status} ${(JSON.parse(res.body) as { error?: string }).error}`;

beforeAll(async () => {
  gw = await startGatewayProcess();
  for (const u of ['alice', 'bob', 'carol']) tokens[u] = await devToken(gw, u);
  tokens['agent'] = (await agentToken('alice', 'attacker-bot')).token;
  const revoked = await agentToken('alice', 'revoked-bot');
  tokens['revoked'] = revoked.token;
  const res = await apiFetch(gw, tokens['alice']!, '/agents/revoke', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token_id: revoked.id }),
  });
  expect(res.status).toBe(200);
}, 180_000);

afterAll(async () => {
  await gw?.cleanup();
});

describe('the HTTP API of chaperone up --dev, attacked on every route', () => {
  it('announces dev tokens in the status line, and serves them to loopback clients', async () => {
    expect(gw.output()).toMatch(/✓ http api .* dev tokens at \/dev\/token \(loopback, --dev\)/);
    expect(tokens['alice']!.split('.')).toHaveLength(3);
  });

  it('covers every route of the table', () => {
    expect(routes.length).toBeGreaterThan(15);
    expect(bearerRoutes.length).toBeGreaterThan(10);
  });

  it('no token: 401 on every route but the public ones; the exchange wants a subject token', async () => {
    for (const r of bearerRoutes) expect(verdict(await attack(r)), routeKey(r)).toBe('401 unauthenticated');
    expect(verdict(await attack(exchange, { body: {} }))).toBe('400 invalid_request');
  });

  it('an agent token: refused on every decision, admin and audit route; only its own approval status', async () => {
    for (const r of bearerRoutes) {
      const res = await attack(r, { token: tokens['agent'] });
      if (r.caller === 'human_or_agent') {
        // No such request of its own: as invisible as a missing one.
        expect(verdict(res), routeKey(r)).toBe('404 not_found');
      } else expect(verdict(res), routeKey(r)).toBe('403 agent_not_allowed');
    }
    const again = await attack(exchange, { body: { subject_token: tokens['agent']! } });
    expect(verdict(again)).toBe('400 invalid_request');
  });

  it('a revoked agent token: 401 everywhere, so it cannot decide anything', async () => {
    for (const r of bearerRoutes)
      expect(verdict(await attack(r, { token: tokens['revoked'] })), routeKey(r)).toBe('401 token_revoked');
    const exchanged = await attack(exchange, { body: { subject_token: tokens['revoked']! } });
    expect(verdict(exchanged)).toBe('401 token_revoked');
  });

  it('a person without the role (bob): 403 on every role route; own agents only', async () => {
    for (const r of bearerRoutes.filter((x) => typeof x.caller === 'object'))
      expect(verdict(await attack(r, { token: tokens['bob'] })), routeKey(r)).toBe('403 forbidden');
    const others = await rawRequest({
      port: gw.ports.api,
      path: '/agents?user=alice',
      headers: { authorization: `Bearer ${tokens['bob']}` },
    });
    expect(verdict(others)).toBe('403 forbidden');
    const revokeAlice = await attack(routes.find((r) => r.path === '/agents/revoke')!, {
      token: tokens['bob'],
      body: { user: 'alice' },
    });
    expect(verdict(revokeAlice)).toBe('403 forbidden');
  });

  it('a forged Host (DNS rebinding): 421 on every route, health included', async () => {
    for (const r of routes) {
      for (const host of ['evil.example.com', `evil.example.com:${gw.ports.api}`, '127.0.0.1.nip.io'])
        expect(verdict(await attack(r, { token: tokens['carol'], host })), `${routeKey(r)} ${host}`).toBe(
          '421 host_not_allowed',
        );
    }
  });

  it('the public routes say nothing but up/ready and public keys; no CORS header anywhere', async () => {
    const health = await attack(routes.find((r) => r.path === '/healthz')!);
    expect(JSON.parse(health.body)).toEqual({ status: 'ok' });
    const ready = await attack(routes.find((r) => r.path === '/readyz')!);
    expect(Object.keys(JSON.parse(ready.body))).toEqual(['ready']);
    const jwks = JSON.parse(
      (await attack(routes.find((r) => r.path === '/.well-known/jwks.json')!)).body,
    ) as {
      keys: Record<string, unknown>[];
    };
    for (const k of jwks.keys) expect(k['d']).toBeUndefined();
    for (const r of routes) {
      const res = await attack(r, { token: tokens['carol'] });
      expect(
        Object.keys(res.headers).filter((h) => h.startsWith('access-control-')),
        routeKey(r),
      ).toEqual([]);
    }
  });

  it('carol, who holds the roles, gets through (the attacks above were refused for who they are)', async () => {
    for (const path of ['/status', '/audit/verify', '/approvals', '/agents'])
      expect((await apiFetch(gw, tokens['carol']!, path)).status, path).toBe(200);
  });
});
