// Attackers against the web console of a real `chaperone up` (the CLI, not --dev) whose issuer is a real
// OpenID provider (the dev IdP on oidc-provider) with one more account: `robot`, whose tokens carry an
// `act` claim like an agent's. Cross-site form posts (no CSRF token, a foreign or missing Origin), cookie
// flags, an agent signing in, a planted session id (fixation), a callback the browser did not start
// (login CSRF), an open redirect, bearer tokens on console routes and cookies on API routes; then the
// session store's expiry with a clock of its own.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionStore } from '../../api/console/sessions.ts';
import { isSessionCaller, routeKey } from '../../api/route.ts';
import { openAuditStore } from '../../audit/store.ts';
import { type DevIdp, startDevIdp } from '../../cli/dev/dev-idp.ts';
import { routeCatalog } from '../support/api-routes.ts';
import {
  devGatewayYaml,
  type GatewayProcess,
  gatewayPorts,
  startGatewayProcess,
} from '../support/gateway-process.ts';
import { rawRequest } from '../support/http-raw.ts';
import { verifiedIdentity } from '../support/identity.ts';

let idp: DevIdp;
let gw: GatewayProcess;

/** A browser's cookie jar, as far as these flows need one (names are unique across the two servers). */
class Jar {
  readonly cookies = new Map<string, string>();
  readonly setCookies: string[] = [];
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  take(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      this.setCookies.push(line);
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      const value = pair.slice(eq + 1);
      if (/Max-Age=0/i.test(line) || value === '') this.cookies.delete(pair.slice(0, eq));
      else this.cookies.set(pair.slice(0, eq), value);
    }
  }
  async get(url: string): Promise<Response> {
    const res = await fetch(url, {
      redirect: 'manual',
      headers: { cookie: this.header(), accept: 'text/html' },
    });
    this.take(res);
    return res;
  }
}

/** Follows the sign-in from /console/login/start to the callback's answer, like a browser. */
async function signIn(
  user: string,
  jar = new Jar(),
  returnTo?: string,
): Promise<{ jar: Jar; res: Response }> {
  let url = `${gw.api}/console/login/start?${new URLSearchParams({ login_hint: user, ...(returnTo ? { return_to: returnTo } : {}) })}`;
  for (let hop = 0; hop < 10; hop++) {
    const res = await jar.get(url);
    const next = res.headers.get('location');
    if (!next) return { jar, res };
    await res.body?.cancel();
    url = new URL(next, url).href;
  }
  throw new Error('sign-in did not end');
}

const sessionCookie = (jar: Jar) => jar.cookies.get('chaperone_console');

/** A console form post with every header under the test's control. */
function post(
  path: string,
  o: { cookie?: string; origin?: string | null; body?: Record<string, string>; site?: string },
) {
  return rawRequest({
    port: gw.ports.api,
    method: 'POST',
    path,
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(o.cookie ? { cookie: `chaperone_console=${o.cookie}` } : {}),
      ...(o.origin === null ? {} : { origin: o.origin ?? gw.api }),
      ...(o.site ? { 'sec-fetch-site': o.site } : {}),
    },
    body: new URLSearchParams(o.body ?? {}).toString(),
  });
}

let carol: Jar;
let carolCsrf: string;

beforeAll(async () => {
  const ports = await gatewayPorts();
  idp = await startDevIdp({
    port: ports.idp,
    audience: 'chaperone',
    users: [
      { sub: 'alice', groups: ['engineering'] },
      { sub: 'bob', groups: ['contractors'] },
      { sub: 'carol', groups: ['security'], name: 'Carol Reviewer' },
      // An IdP account that acts for someone else: its tokens are an agent's, never a person's.
      { sub: 'robot', groups: ['security'], claims: { act: { sub: 'agent:robot', agent: 'robot' } } },
    ],
  });
  gw = await startGatewayProcess({ ports, dev: false, yaml: devGatewayYaml });
  carol = (await signIn('carol')).jar;
  const home = await (await carol.get(`${gw.api}/console/`)).text();
  carolCsrf = /name="csrf" value="([^"]+)"/.exec(home)![1]!;
}, 180_000);

afterAll(async () => {
  await gw?.cleanup();
  await idp?.close();
});

describe('console session cookies', () => {
  it('are HttpOnly, SameSite=Strict, scoped to /console on plain http, with a fresh random id', () => {
    const set = carol.setCookies.find((c) => c.startsWith('chaperone_console=') && !/Max-Age=0/.test(c))!;
    expect(set).toMatch(/^chaperone_console=[A-Za-z0-9_-]{43}; Path=\/console; HttpOnly; SameSite=Strict$/);
    const login = carol.setCookies.find((c) => c.startsWith('chaperone_login=') && !/Max-Age=0/.test(c))!;
    // The one-time sign-in cookie must survive the IdP's cross-site redirect back: Lax, callback only.
    expect(login).toMatch(
      /^chaperone_login=[A-Za-z0-9_-]{43}; Path=\/console\/callback; HttpOnly; SameSite=Lax; Max-Age=600$/,
    );
    expect(carol.setCookies).toContain(
      'chaperone_login=; Path=/console/callback; HttpOnly; SameSite=Lax; Max-Age=0',
    );
  });

  it('are Secure and __Host- prefixed when the console is served over https', async () => {
    const store = await openAuditStore({});
    await store.migrate();
    try {
      const sessions = new SessionStore(store.sql, {
        ttlMs: 3.6e6,
        idleMs: 3.6e6,
        publicUrl: 'https://chaperone.example.com',
      });
      const [session, login] = await sessions.create(verifiedIdentity('carol'));
      expect(session).toMatch(
        /^__Host-chaperone_console=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Secure$/,
      );
      expect(login).toBe(
        '__Secure-chaperone_login=; Path=/console/callback; HttpOnly; SameSite=Lax; Secure; Max-Age=0',
      );
      expect(sessions.origin('chaperone.example.com')).toBe('https://chaperone.example.com');
    } finally {
      await store.close();
    }
  });

  it('come with pages that forbid framing and foreign scripts', async () => {
    const res = await carol.get(`${gw.api}/console/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('cache-control')).toBe('no-store');
  });
});

describe('cross-site request forgery', () => {
  const decide = { id: 'no-such-request', verdict: 'approve', mode: 'once' };

  it('refuses a form post without the session token, or with another', async () => {
    const cookie = sessionCookie(carol)!;
    expect((await post('/console/approvals/decide', { cookie, body: decide })).status).toBe(403);
    const wrong = await post('/console/approvals/decide', { cookie, body: { ...decide, csrf: 'guessed' } });
    expect(wrong.status).toBe(403);
    expect(wrong.body).toContain('the form is stale or not from this session');
  });

  it('refuses a post from a foreign Origin, without an Origin, or marked cross-site — even with the token', async () => {
    const cookie = sessionCookie(carol)!;
    const body = { ...decide, csrf: carolCsrf };
    const foreign = await post('/console/approvals/decide', { cookie, body, origin: 'http://evil.example' });
    expect(foreign.status).toBe(403);
    expect(JSON.parse(foreign.body)).toMatchObject({ error: 'origin_not_allowed' });
    expect(
      (await post('/console/approvals/decide', { cookie, body, origin: `http://127.0.0.1:${gw.ports.idp}` }))
        .status,
    ).toBe(403);
    expect((await post('/console/approvals/decide', { cookie, body, origin: null })).status).toBe(403);
    expect((await post('/console/approvals/decide', { cookie, body, site: 'cross-site' })).status).toBe(403);
    // With the token and its own origin the post reaches the handler (which finds no such request).
    const ok = await post('/console/approvals/decide', { cookie, body, site: 'same-origin' });
    expect(ok.status).toBe(404);
    expect(ok.body).toContain('no approval request no-such-request');
  });

  it('does not sign carol out on a forged post', async () => {
    expect((await post('/console/logout', { cookie: sessionCookie(carol)! })).status).toBe(403);
    expect((await carol.get(`${gw.api}/console/`)).status).toBe(200);
  });
});

describe('who can sign in', () => {
  it('refuses an account whose tokens act for someone else (an agent), and gives it no session', async () => {
    const { jar, res } = await signIn('robot');
    expect(res.status).toBe(403);
    expect(await res.text()).toContain('an agent cannot sign in to the console');
    expect(sessionCookie(jar)).toBeUndefined();
  });

  it('gives a planted session id nothing, and a fresh id after sign-in (session fixation)', async () => {
    const jar = new Jar();
    const planted = 'A'.repeat(43);
    jar.cookies.set('chaperone_console', planted);
    const { res } = await signIn('alice', jar);
    expect(res.status).toBe(200);
    expect(sessionCookie(jar)).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(sessionCookie(jar)).not.toBe(planted);
    const withPlanted = await fetch(`${gw.api}/console/`, {
      redirect: 'manual',
      headers: { cookie: `chaperone_console=${planted}` },
    });
    expect(withPlanted.status).toBe(303);
    // The sign-in's own one-time id is no session either.
    const loginId = jar.setCookies
      .find((c) => c.startsWith('chaperone_login=') && !/Max-Age=0/.test(c))!
      .split(/[=;]/)[1];
    const withLoginId = await fetch(`${gw.api}/console/`, {
      redirect: 'manual',
      headers: { cookie: `chaperone_console=${loginId}` },
    });
    expect(withLoginId.status).toBe(303);
  });

  it('refuses a callback this browser did not start (login CSRF), and one replayed', async () => {
    // The attacker's own flow, up to the IdP's redirect back with a code...
    const attacker = new Jar();
    let url = `${gw.api}/console/login/start?login_hint=bob`;
    for (;;) {
      const res = await attacker.get(url);
      await res.body?.cancel();
      url = new URL(res.headers.get('location')!, url).href;
      if (new URL(url).pathname === '/console/callback') break;
    }
    // ...handed to a victim's browser, which has no sign-in cookie for it.
    const victim = await new Jar().get(url);
    expect(victim.status).toBe(400);
    expect(sessionCookie(attacker)).toBeUndefined();
    const own = await attacker.get(url);
    expect(own.status).toBe(200);
    const replay = await attacker.get(url);
    expect(replay.status).toBe(400);
  });

  it('goes back only to console pages after sign-in (no open redirect)', async () => {
    const { res } = await signIn('alice', new Jar(), '//evil.example/console/');
    expect(await res.text()).toContain('<meta http-equiv="refresh" content="0;url=/console/">');
  });
});

describe('console routes and API routes keep their credentials apart', () => {
  const consoleRoutes = routeCatalog().filter((r) => isSessionCaller(r.caller));

  it('asks everyone without a session to sign in (GET) or refuses (POST), bearer token or not', async () => {
    expect(consoleRoutes.length).toBeGreaterThan(15);
    const token = await idp.tokenFor('carol');
    for (const r of consoleRoutes) {
      for (const headers of [{}, { authorization: `Bearer ${token}` }] as Record<string, string>[]) {
        const res = await rawRequest({ port: gw.ports.api, method: r.method, path: r.path, headers });
        if (r.method === 'GET') {
          expect(res.status, routeKey(r)).toBe(303);
          expect(res.headers['location'], routeKey(r)).toMatch(/^\/console\/login\?return_to=/);
        } else expect(res.status, routeKey(r)).toBe(401);
      }
    }
  });

  it('does not accept the console cookie on the JSON API', async () => {
    const res = await rawRequest({
      port: gw.ports.api,
      path: '/audit/decisions',
      headers: { cookie: `chaperone_console=${sessionCookie(carol)}` },
    });
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body)).toMatchObject({ error: 'unauthenticated' });
  });

  it('signs out on the server: the old cookie is worthless afterwards', async () => {
    const { jar } = await signIn('carol');
    const home = await (await jar.get(`${gw.api}/console/`)).text();
    const csrf = /name="csrf" value="([^"]+)"/.exec(home)![1]!;
    const cookie = sessionCookie(jar)!;
    const out = await post('/console/logout', { cookie, body: { csrf } });
    expect(out.status).toBe(303);
    expect(out.headers['set-cookie']).toEqual([
      'chaperone_console=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0',
    ]);
    const again = await rawRequest({
      port: gw.ports.api,
      path: '/console/',
      headers: { cookie: `chaperone_console=${cookie}` },
    });
    expect(again.status).toBe(303);
  });
});

describe('session expiry', () => {
  it('ends a session after its idle time and after its lifetime, whichever comes first', async () => {
    const store = await openAuditStore({});
    await store.migrate();
    let now = Date.parse('2026-12-01T08:00:00Z');
    const sessions = new SessionStore(store.sql, {
      ttlMs: 8 * 3.6e6,
      idleMs: 3.6e6,
      publicUrl: 'http://127.0.0.1:8181',
      now: () => now,
    });
    const idOf = (setCookie: string) => setCookie.split(/[=;]/)[1]!;
    try {
      const idle = idOf((await sessions.create(verifiedIdentity('carol')))[0]!);
      const busy = idOf((await sessions.create(verifiedIdentity('dave')))[0]!);
      for (let h = 0; h < 9; h++) {
        now += 50 * 60_000; // a request every 50 minutes keeps `busy` alive...
        expect(await sessions.lookup(busy), `hour ${h}`).not.toBeNull();
      }
      expect(await sessions.lookup(idle)).toBeNull(); // ...`idle` had none for more than an hour
      now += 50 * 60_000; // 8 h 20 min after sign-in: past its lifetime however busy
      expect(await sessions.lookup(busy)).toBeNull();
    } finally {
      await store.close();
    }
  });
});
