// The console's pieces that need no server: the authentication hook's session path (table of callers ×
// cookies × origins × CSRF tokens, with an in-memory session lookup), HTML escaping, the sign-in's
// return address, and cookie parsing. The same paths over real HTTP: test/security/console-session.test.ts.
import { describe, expect, it } from 'vitest';
import { authenticate, type CallerAuth, type ConsoleSession } from '../../api/authenticate.ts';
import { readCookie, setCookie } from '../../api/console/cookies.ts';
import { escapeHtml, href, html } from '../../api/console/html.ts';
import { safeReturn } from '../../api/console/pages/auth.ts';
import { ApiError } from '../../api/errors.ts';
import type { Caller } from '../../api/route.ts';
import type { IdentityVerifier } from '../../identity/verifier.ts';
import { verifiedIdentity } from '../support/identity.ts';

const CSRF = 'csrf-token-of-carols-session';
const ORIGIN = 'http://127.0.0.1:8181';

function auth(): CallerAuth {
  const sessions: Record<string, ConsoleSession> = {
    carol: {
      csrf: CSRF,
      expiresAt: '2030-01-01T00:00:00.000Z',
      identity: verifiedIdentity('carol', { groups: ['security'] }),
    },
    bob: {
      csrf: 'bobs',
      expiresAt: '2030-01-01T00:00:00.000Z',
      identity: verifiedIdentity('bob', { groups: ['contractors'] }),
    },
  };
  return {
    // A bearer token must never be looked at on a console route: a verifier that is reached fails the test.
    verifier: {
      verify: async () => {
        throw new Error('bearer verifier reached on a console route');
      },
    } as unknown as IdentityVerifier,
    agentIssuer: 'http://127.0.0.1:8181',
    revocation: { revoked: () => null, exchangeRefused: () => null },
    access: { admins: ['security'], auditors: ['security'], reviewers: ['security'] },
    sessions: {
      cookieName: 'chaperone_console',
      lookup: async (value) => sessions[value] ?? null,
      origin: (host) => `http://${host}`,
    },
  };
}

async function outcome(
  caller: Caller,
  o: {
    cookie?: string;
    method?: string;
    origin?: string;
    site?: string;
    csrf?: string;
    bearer?: string;
  } = {},
): Promise<string> {
  const headers: Record<string, string> = { host: '127.0.0.1:8181' };
  if (o.cookie) headers['cookie'] = `theme=dark; chaperone_console=${o.cookie}`;
  if (o.origin) headers['origin'] = o.origin;
  if (o.site) headers['sec-fetch-site'] = o.site;
  if (o.bearer) headers['authorization'] = `Bearer ${o.bearer}`;
  try {
    const r = await authenticate(
      caller,
      headers,
      async () => (o.csrf === undefined ? null : { csrf: o.csrf }),
      auth(),
      o.method ?? 'GET',
    );
    return `ok ${r.caller?.subject} [${[...r.roles].sort().join(',')}]${r.session ? ' session' : ''}`;
  } catch (err) {
    if (err instanceof ApiError) return `${err.status} ${err.error}`;
    throw err;
  }
}

describe('the authentication hook on console routes', () => {
  const AUDITOR: Caller = { session: ['auditor'] };
  const post = { method: 'POST', origin: ORIGIN, csrf: CSRF, site: 'same-origin' };
  const cases: [string, Caller, Parameters<typeof outcome>[1], string][] = [
    ['no cookie', 'session', {}, '401 login_required'],
    ['an unknown cookie', 'session', { cookie: 'forged' }, '401 login_required'],
    ['a bearer token instead of a cookie', 'session', { bearer: 'carol' }, '401 login_required'],
    ['carol', 'session', { cookie: 'carol' }, 'ok carol [admin,auditor,reviewer] session'],
    ['carol on an auditor page', AUDITOR, { cookie: 'carol' }, 'ok carol [admin,auditor,reviewer] session'],
    ['bob on an auditor page', AUDITOR, { cookie: 'bob' }, '403 forbidden'],
    ['bob on a page for anyone signed in', 'session', { cookie: 'bob' }, 'ok bob [] session'],
    [
      'a POST with everything right',
      'session',
      { cookie: 'carol', ...post },
      'ok carol [admin,auditor,reviewer] session',
    ],
    [
      'a POST without Sec-Fetch-Site (older browsers)',
      'session',
      { cookie: 'carol', ...post, site: undefined },
      'ok carol [admin,auditor,reviewer] session',
    ],
    [
      'a POST without the CSRF token',
      'session',
      { cookie: 'carol', ...post, csrf: undefined },
      '403 csrf_failed',
    ],
    [
      "a POST with another session's token",
      'session',
      { cookie: 'carol', ...post, csrf: 'bobs' },
      '403 csrf_failed',
    ],
    [
      'a POST with a token one character off',
      'session',
      { cookie: 'carol', ...post, csrf: `${CSRF.slice(0, -1)}X` },
      '403 csrf_failed',
    ],
    [
      'a POST without Origin',
      'session',
      { cookie: 'carol', ...post, origin: undefined },
      '403 origin_mismatch',
    ],
    [
      'a POST from a foreign Origin',
      'session',
      { cookie: 'carol', ...post, origin: 'http://evil.example' },
      '403 origin_mismatch',
    ],
    [
      'a POST from another port of this host',
      'session',
      { cookie: 'carol', ...post, origin: 'http://127.0.0.1:5556' },
      '403 origin_mismatch',
    ],
    [
      'a POST marked cross-site',
      'session',
      { cookie: 'carol', ...post, site: 'cross-site' },
      '403 origin_mismatch',
    ],
    [
      'a POST marked same-site (a sibling subdomain)',
      'session',
      { cookie: 'carol', ...post, site: 'same-site' },
      '403 origin_mismatch',
    ],
    ['a POST by bob to an auditor form', AUDITOR, { cookie: 'bob', ...post, csrf: 'bobs' }, '403 forbidden'],
  ];
  for (const [what, caller, o, expected] of cases) {
    it(`${what} → ${expected}`, async () => {
      expect(await outcome(caller, o)).toBe(expected);
    });
  }

  it('answers 404 on console routes when the console is off', async () => {
    const { sessions: _s, ...off } = auth();
    await expect(
      authenticate('session', { cookie: 'chaperone_console=carol' }, async () => null, off),
    ).rejects.toMatchObject({
      status: 404,
    });
  });

  it('never takes the session cookie on a bearer route', async () => {
    const a = {
      ...auth(),
      verifier: { verify: async () => ({ ok: false, code: 'ERR_TOKEN_MISSING', reason: 'x' }) },
    } as unknown as CallerAuth;
    await expect(
      authenticate('human', { cookie: 'chaperone_console=carol' }, async () => null, a),
    ).rejects.toMatchObject({
      status: 401,
      error: 'unauthenticated',
    });
  });
});

describe('console HTML', () => {
  it('escapes every interpolation, in text and in attributes', () => {
    const hostile = `"><script>alert(1)</script><a href='x' onclick=\`y\`>&`;
    const out = html`<p title="${hostile}">${hostile}</p>`.text;
    expect(out).not.toContain('<script>');
    expect(out).toBe(
      `<p title="${escapeHtml(hostile)}">&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;a href=&#39;x&#39; onclick=&#96;y&#96;&gt;&amp;</p>`,
    );
  });

  it('passes its own fragments through, joins lists and drops empty values', () => {
    const items = ['a<b', html`<b>c</b>`];
    expect(html`<i>${items}${null}${undefined}${false}${0}</i>`.text).toBe('<i>a&lt;b<b>c</b>0</i>');
  });

  it('encodes query parameters in links', () => {
    expect(href('/console/decisions', { user: 'a&b=c', agent: '', cursor: null })).toBe(
      '/console/decisions?user=a%26b%3Dc',
    );
  });
});

describe('the return address after sign-in', () => {
  it.each([
    ['/console/approval?id=abc-123', '/console/approval?id=abc-123'],
    ['/console/decisions?user=alice&verdict=deny', '/console/decisions?user=alice&verdict=deny'],
    ['/console/', '/console/'],
    ['//evil.example/console/', '/console/'],
    ['/console//evil.example', '/console/'],
    ['https://evil.example/console/', '/console/'],
    ['/consolex', '/console/'],
    ['/console/\\evil', '/console/'],
    ['/console/\nSet-Cookie:x', '/console/'],
    ['javascript:alert(1)', '/console/'],
    [null, '/console/'],
  ])('%j → %s', (value, expected) => {
    expect(safeReturn(value)).toBe(expected);
  });
});

describe('console cookies', () => {
  it('reads the named cookie only', () => {
    expect(readCookie('a=1; chaperone_console=abc; b=2', 'chaperone_console')).toBe('abc');
    expect(readCookie('xchaperone_console=abc', 'chaperone_console')).toBeNull();
    expect(readCookie(undefined, 'chaperone_console')).toBeNull();
  });

  it('always writes HttpOnly and the SameSite it is given; Secure only when asked', () => {
    expect(setCookie('n', 'v', { path: '/console', sameSite: 'Strict', secure: false })).toBe(
      'n=v; Path=/console; HttpOnly; SameSite=Strict',
    );
    expect(setCookie('n', '', { path: '/', sameSite: 'Lax', secure: true, maxAge: 0 })).toBe(
      'n=; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=0',
    );
  });
});
