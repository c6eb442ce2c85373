// Every route of the HTTP API declares its caller, the API refuses to start otherwise, and the one
// authentication hook enforces each kind of declaration (table of callers × identities, with a fake
// verifier: this is the orchestration, the real verifier is exercised in test/component/http-api.test.ts
// and test/security/).
import { describe, expect, it } from 'vitest';
import { authenticate, type CallerAuth } from '../../api/authenticate.ts';
import { ApiError } from '../../api/errors.ts';
import { hostAllowList } from '../../api/host-allow-list.ts';
import { routeTable } from '../../api/http-api.ts';
import { type Caller, declarationProblem, isSessionCaller, type Route, routeKey } from '../../api/route.ts';
import type { Identity } from '../../contracts/identity.ts';
import type { IdentityVerifier } from '../../identity/verifier.ts';
import { routeCatalog } from '../support/api-routes.ts';
import { verifiedIdentity } from '../support/identity.ts';

const AGENT_ISSUER = 'http://127.0.0.1:8181';

describe('the route table', () => {
  const routes = routeCatalog();

  it('is not empty and has no route twice', () => {
    expect(routes.length).toBeGreaterThan(15);
    expect(() => routeTable(routes)).not.toThrow();
  });

  for (const r of routes) {
    it(`${routeKey(r)} declares a valid caller`, () => {
      expect(declarationProblem(r)).toBeNull();
    });
  }

  it('lets anyone reach exactly the public routes (health, keys, discovery, revocation list, dev tokens)', () => {
    expect(
      routes
        .filter((r) => r.caller === 'anonymous')
        .map(routeKey)
        .sort(),
    ).toEqual([
      'GET /.well-known/jwks.json',
      'GET /.well-known/openid-configuration',
      'GET /agents/revocations',
      // The console's sign-in and its stylesheet/script: how a person gets a session at all.
      'GET /console/assets/console.css',
      'GET /console/assets/console.js',
      'GET /console/callback',
      'GET /console/login',
      'GET /console/login/start',
      'GET /dev/token',
      'GET /healthz',
      'GET /readyz',
    ]);
    expect(routes.find((r) => r.path === '/dev/token')?.loopbackOnly).toBe(true);
  });

  it('puts the audit trail, approvals decisions, status and key rotation behind roles', () => {
    const roleOf = (key: string) => routes.find((r) => routeKey(r) === key)?.caller;
    for (const path of [
      '/audit/decisions',
      '/audit/tail',
      '/audit/verify',
      '/audit/export',
      '/audit/access-logs',
    ])
      expect(roleOf(`GET ${path}`)).toEqual({ role: ['auditor'] });
    expect(roleOf('GET /approvals')).toEqual({ role: ['reviewer'] });
    expect(roleOf('POST /approvals/approve')).toEqual({ role: ['reviewer'] });
    expect(roleOf('POST /approvals/deny')).toEqual({ role: ['reviewer'] });
    expect(roleOf('GET /status')).toEqual({ role: ['admin', 'auditor'] });
    expect(roleOf('POST /admin/keys/rotate')).toEqual({ role: ['admin'] });
    expect(roleOf('POST /approvals/revoke')).toEqual({ role: ['reviewer', 'admin'] });
  });

  it('gives the console the same roles as the JSON routes it shows, through the session only', () => {
    const roleOf = (key: string) => routes.find((r) => routeKey(r) === key)?.caller;
    for (const path of [
      '/console/decisions',
      '/console/decisions/live',
      '/console/decisions/stream',
      '/console/decision',
    ])
      expect(roleOf(`GET ${path}`), path).toEqual({ session: ['auditor'] });
    expect(roleOf('GET /console/approvals')).toEqual({ session: ['reviewer'] });
    expect(roleOf('POST /console/approvals/decide')).toEqual({ session: ['reviewer'] });
    expect(roleOf('GET /console/fleet')).toEqual({ session: ['admin', 'auditor'] });
    expect(roleOf('GET /console/notifications')).toEqual({ session: ['admin'] });
    // Every other console route needs a signed-in person; none takes a bearer token.
    for (const r of routes.filter((x) => x.path.startsWith('/console')))
      expect(r.caller === 'anonymous' || isSessionCaller(r.caller), routeKey(r)).toBe(true);
  });

  const handle = () => ({ status: 200, body: null });
  it.each([
    ['no caller', { method: 'GET', path: '/x', handle }, 'HTTP API route GET /x declares no caller'],
    [
      'an unknown caller',
      { method: 'GET', path: '/x', caller: 'someone', handle },
      'HTTP API route GET /x declares an unknown caller "someone"',
    ],
    [
      'a role caller without roles',
      { method: 'GET', path: '/x', caller: { role: [] }, handle },
      'HTTP API route GET /x declares a role caller without roles',
    ],
    [
      'an unknown role',
      { method: 'GET', path: '/x', caller: { role: ['root'] }, handle },
      'HTTP API route GET /x declares an unknown role "root"',
    ],
  ])('refuses to serve a route with %s', (_what, route, message) => {
    expect(() => routeTable([...routeCatalog(), route as unknown as Route])).toThrow(message);
  });

  it('refuses a route declared twice', () => {
    const twice = routeCatalog().find((r) => r.path === '/healthz')!;
    expect(() => routeTable([...routeCatalog(), twice])).toThrow('GET /healthz is declared twice');
  });
});

/** A verifier that knows tokens by name: `alice`, `carol`, `agent`, `revoked-agent`; anything else fails. */
function fakeAuth(): CallerAuth {
  const ids: Record<string, Identity> = {
    alice: verifiedIdentity('alice', { groups: ['engineering'] }),
    carol: verifiedIdentity('carol', { groups: ['security'] }),
    auditor: verifiedIdentity('dave', { groups: ['compliance'] }),
    agent: verifiedIdentity('alice', {
      issuer: AGENT_ISSUER,
      actor: { sub: 'agent:bot', agent: 'bot' },
      token_id: 'live',
    }),
    'revoked-agent': verifiedIdentity('alice', {
      issuer: AGENT_ISSUER,
      actor: { sub: 'agent:bot', agent: 'bot' },
      token_id: 'dead',
    }),
    // A person's IdP that puts `act` in a token: still an agent token, never a person.
    'idp-act': verifiedIdentity('alice', { actor: { sub: 'svc' } }),
    // Erin's agents were all revoked after this token of hers was issued (the kill switch).
    'erin-before-kill': verifiedIdentity('erin'),
  };
  const verifier = {
    verify: async (headers: Record<string, string>) => {
      const token = headers['authorization']?.replace(/^Bearer /, '') ?? '';
      const identity = ids[token];
      return identity
        ? { ok: true as const, identity }
        : { ok: false as const, code: 'ERR_TOKEN_SIGNATURE' as const, reason: 'token signature is invalid' };
    },
  } as unknown as IdentityVerifier;
  return {
    verifier,
    agentIssuer: AGENT_ISSUER,
    revocation: {
      revoked: (id) => (id.token_id === 'dead' ? 'agent token dead was revoked' : null),
      exchangeRefused: (id) => (id.subject === 'erin' ? 'every agent of erin was revoked' : null),
    },
    access: { admins: ['security'], auditors: ['security', 'compliance'], reviewers: ['security'] },
  };
}

async function outcome(caller: Caller, token: string | null, body: unknown = null): Promise<string> {
  const headers = token === null ? {} : { authorization: `Bearer ${token}` };
  try {
    const r = await authenticate(caller, headers, async () => body, fakeAuth());
    return `ok ${r.caller?.subject ?? '-'} [${[...r.roles].sort().join(',')}]`;
  } catch (err) {
    if (err instanceof ApiError) return `${err.status} ${err.error}`;
    throw err;
  }
}

describe('the scraper caller (the metrics listener)', () => {
  const scraperOutcome = async (
    scraper: CallerAuth['scraper'],
    authorization: string | undefined,
  ): Promise<string> => {
    const auth = { ...fakeAuth(), ...(scraper ? { scraper } : {}) };
    try {
      const r = await authenticate('scraper', authorization ? { authorization } : {}, async () => null, auth);
      return `ok ${r.caller === null ? '-' : r.caller.subject}`;
    } catch (err) {
      if (err instanceof ApiError) return `${err.status} ${err.error}`;
      throw err;
    }
  };
  const token = (t: string | null) => ({ token: async () => t });

  it.each([
    ['not served where no scraper is configured (the HTTP API)', undefined, 'Bearer carol', '404 not_found'],
    ['open without a token file (a loopback listener)', token(null), undefined, 'ok -'],
    ['refused without the token', token('s3cret'), undefined, '401 unauthenticated'],
    ['refused with another token', token('s3cret'), 'Bearer s3cre', '401 invalid_token'],
    ["refused with a person's token", token('s3cret'), 'Bearer carol', '401 invalid_token'],
    ['served with the token', token('s3cret'), 'Bearer s3cret', 'ok -'],
    [
      'refused when the token file cannot be read',
      { token: async () => Promise.reject(new Error('EACCES')) },
      'Bearer s3cret',
      '503 metrics_token_unavailable',
    ],
  ] as const)('%s', async (_name, scraper, authorization, expected) => {
    expect(await scraperOutcome(scraper, authorization)).toBe(expected);
  });
});

describe('the authentication hook', () => {
  const AUDITOR: Caller = { role: ['auditor'] };
  const cases: [Caller, string | null, string][] = [
    ['anonymous', null, 'ok - []'],
    ['anonymous', 'garbage', 'ok - []'],
    ['human', null, '401 unauthenticated'],
    ['human', 'garbage', '401 invalid_token'],
    ['human', 'alice', 'ok alice []'],
    ['human', 'carol', 'ok carol [admin,auditor,reviewer]'],
    ['human', 'agent', '403 agent_not_allowed'],
    ['human', 'idp-act', '403 agent_not_allowed'],
    ['human', 'revoked-agent', '401 token_revoked'],
    ['human_or_agent', null, '401 unauthenticated'],
    ['human_or_agent', 'agent', 'ok alice []'],
    ['human_or_agent', 'revoked-agent', '401 token_revoked'],
    ['human_or_agent', 'alice', 'ok alice []'],
    [AUDITOR, null, '401 unauthenticated'],
    [AUDITOR, 'alice', '403 forbidden'],
    [AUDITOR, 'agent', '403 agent_not_allowed'],
    [AUDITOR, 'revoked-agent', '401 token_revoked'],
    [AUDITOR, 'auditor', 'ok dave [auditor]'],
    [AUDITOR, 'carol', 'ok carol [admin,auditor,reviewer]'],
    [{ role: ['admin'] }, 'auditor', '403 forbidden'],
    [{ role: ['admin', 'auditor'] }, 'auditor', 'ok dave [auditor]'],
  ];
  for (const [caller, token, expected] of cases) {
    it(`${JSON.stringify(caller)} with ${token ?? 'no token'} → ${expected}`, async () => {
      expect(await outcome(caller, token)).toBe(expected);
    });
  }

  it.each([
    [null, '400 invalid_request'],
    [{ subject_token: '' }, '400 invalid_request'],
    [{ subject_token: 'garbage' }, '401 invalid_token'],
    [{ subject_token: 'agent' }, '400 invalid_request'],
    [{ subject_token: 'revoked-agent' }, '401 token_revoked'],
    [{ subject_token: 'erin-before-kill' }, '400 invalid_grant'],
    [{ subject_token: 'alice' }, 'ok alice []'],
  ])('subject_token %j → %s', async (body, expected) => {
    expect(await outcome('subject_token', null, body)).toBe(expected);
  });

  it('reads no body before a bearer token passed', async () => {
    let read = false;
    await expect(
      authenticate(
        'human',
        {},
        async () => {
          read = true;
          return null;
        },
        fakeAuth(),
      ),
    ).rejects.toThrow(ApiError);
    expect(read).toBe(false);
  });

  it('accepts only a well-formed Bearer header', async () => {
    for (const value of ['alice', 'Basic alice', 'Bearer', 'Bearer alice extra']) {
      await expect(
        authenticate('human', { authorization: value }, async () => null, fakeAuth()),
      ).rejects.toMatchObject({ status: 401, error: 'unauthenticated' });
    }
  });
});

describe('the Host allow-list (DNS rebinding)', () => {
  const hosts = hostAllowList({ bindHost: '127.0.0.1', publicUrls: ['https://chaperone.example.com'] });
  it.each([
    ['127.0.0.1:8181', true],
    ['127.0.0.2:8181', true],
    ['localhost:8181', true],
    ['LOCALHOST', true],
    ['[::1]:8181', true],
    ['chaperone.example.com', true],
    ['chaperone.example.com:443', true],
    ['evil.example.com:8181', false],
    ['127.0.0.1.evil.example.com', false],
    ['chaperone.example.com.evil.test', false],
    ['', false],
    [undefined, false],
  ])('Host %j → %s', (host, allowed) => {
    expect(hosts.host(host)).toBe(allowed);
  });

  it.each([
    [undefined, true],
    ['http://127.0.0.1:8181', true],
    ['https://chaperone.example.com', true],
    ['http://evil.example.com', false],
    ['null', false],
  ])('Origin %j → %s', (origin, allowed) => {
    expect(hosts.origin(origin)).toBe(allowed);
  });

  it('adds a specific bind address, never a wildcard one', () => {
    expect(hostAllowList({ bindHost: '10.0.0.5', publicUrls: [] }).host('10.0.0.5:8181')).toBe(true);
    expect(hostAllowList({ bindHost: '0.0.0.0', publicUrls: [] }).host('10.0.0.5:8181')).toBe(false);
  });
});
