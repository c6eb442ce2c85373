// The one authentication hook of the HTTP API: given a route's declared caller, it verifies the
// caller's token (the configured OIDC issuers plus Chaperone's own agent issuer), refuses revoked
// tokens, refuses agent tokens where a person is required, and checks the role. Handlers run only
// after it passed, and read the verified identity and roles from the request. Console routes (caller
// `session`) take the console's session cookie instead — and only it: a cookie is never accepted on a
// bearer route, nor a bearer token on a console route — and their POSTs must carry the session's CSRF
// token and come from the console's own origin.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AccessConfig } from '../config/types.ts';
import type { Identity } from '../contracts/identity.ts';
import type { RevocationCheck } from '../fleet/agent-registry.ts';
import type { IdentityVerifier } from '../identity/verifier.ts';
import { readCookie } from './console/cookies.ts';
import { ApiError } from './errors.ts';
import { type Caller, isSessionCaller, type Role, requiredRoles, type SessionInfo } from './route.ts';

/** A live console session: the person who signed in (never an agent) and the session's CSRF token. */
export interface ConsoleSession extends SessionInfo {
  identity: Identity;
}

/** How the hook finds console sessions (api/console/sessions.ts). */
export interface SessionAuth {
  cookieName: string;
  /** The session of a cookie value, when it exists and has not expired (idle or absolute). */
  lookup(cookieValue: string): Promise<ConsoleSession | null>;
  /** The one `Origin` a console form may be posted from, given the request's `Host`. */
  origin(host: string | undefined): string;
}

export interface CallerAuth {
  /** Reads `Authorization: Bearer <jwt>`; trusts the configured issuers and the agent issuer. */
  verifier: IdentityVerifier;
  /** Chaperone's own issuer: its tokens are agent tokens, never a person's. */
  agentIssuer: string;
  revocation: RevocationCheck;
  access: AccessConfig;
  /**
   * Only on the metrics listener: the token scrapers must send (read per request, so a rotated file
   * takes effect at once), or null when none is configured. Absent: `scraper` routes refuse everyone.
   */
  scraper?: { token(): Promise<string | null> };
  /** Console sessions; without it, console routes answer 404. */
  sessions?: SessionAuth;
}

export interface Authenticated {
  caller: Identity | null;
  roles: ReadonlySet<Role>;
  body: unknown;
  session?: SessionInfo;
}

const NO_ROLES: ReadonlySet<Role> = new Set();

const isAgent = (id: Identity, auth: CallerAuth) => id.actor !== null || id.issuer === auth.agentIssuer;

/** The roles a person holds through their groups (agents hold none). */
export function rolesOf(id: Identity, access: AccessConfig): ReadonlySet<Role> {
  const inAny = (groups: readonly string[]) => groups.some((g) => id.groups.includes(g));
  const roles = new Set<Role>();
  if (inAny(access.admins)) roles.add('admin');
  if (inAny(access.auditors)) roles.add('auditor');
  if (inAny(access.reviewers)) roles.add('reviewer');
  return roles;
}

async function verified(auth: CallerAuth, token: string): Promise<Identity> {
  const res = await auth.verifier.verify({ authorization: `Bearer ${token}` });
  if (!res.ok) throw new ApiError(401, 'invalid_token', res.reason);
  const revoked = auth.revocation.revoked(res.identity);
  if (revoked) throw new ApiError(401, 'token_revoked', revoked);
  return res.identity;
}

/** The token of `Authorization: Bearer <token>`; otherwise a 401 saying what the route `needs`. */
function bearer(headers: Record<string, string | string[] | undefined>, needs: string): string {
  const value = headers['authorization'];
  const m = typeof value === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(value) : null;
  if (!m) throw new ApiError(401, 'unauthenticated', `this route needs ${needs}`);
  return m[1]!;
}

/**
 * A person's access token (the console's sign-in): verified exactly as a bearer token on a `human`
 * route — configured issuer, audience, expiry, not revoked, and never an agent's.
 */
export async function personFromToken(auth: CallerAuth, token: string): Promise<Identity> {
  const id = await verified(auth, token);
  if (isAgent(id, auth))
    throw new ApiError(403, 'agent_not_allowed', 'an agent cannot sign in to the console; only people can');
  return id;
}

/**
 * RFC 8693: the person's token in the body. An agent token cannot be exchanged again (no chains: an
 * agent's token would outlive the checks made on the person's), and a person whose agents were all
 * revoked (the kill switch) cannot exchange a token issued before that: they sign in again first.
 */
async function subjectToken(auth: CallerAuth, body: unknown): Promise<Identity> {
  const token = (body as Record<string, unknown> | null)?.['subject_token'];
  if (typeof token !== 'string' || token === '')
    throw new ApiError(400, 'invalid_request', 'subject_token is required');
  const id = await verified(auth, token);
  if (isAgent(id, auth))
    throw new ApiError(400, 'invalid_request', 'an agent token cannot be exchanged for another agent token');
  const refused = auth.revocation.exchangeRefused(id);
  if (refused) throw new ApiError(400, 'invalid_grant', refused);
  return id;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** The metrics listener's bearer token, compared in constant time (hashes: equal lengths). */
async function checkScraper(auth: CallerAuth, headers: Record<string, string | string[] | undefined>) {
  if (!auth.scraper) throw new ApiError(404, 'not_found', 'no such route');
  const expected = await auth.scraper.token().catch(() => {
    // An unreadable token file refuses everyone rather than opening the route.
    throw new ApiError(503, 'metrics_token_unavailable', 'the metrics token cannot be read');
  });
  if (expected === null) return;
  const token = bearer(headers, 'the metrics token: Authorization: Bearer <token>');
  if (!timingSafeEqual(sha256(token), sha256(expected)))
    throw new ApiError(401, 'invalid_token', 'the metrics bearer token does not match');
}

type Headers = Record<string, string | string[] | undefined>;

const sameText = (a: string, b: string) =>
  a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

/** A state change from the console: from its own origin, with the session's synchronizer token. */
function checkConsolePost(headers: Headers, body: unknown, session: ConsoleSession, sessions: SessionAuth) {
  const origin = headers['origin'];
  const site = headers['sec-fetch-site'];
  if (typeof origin !== 'string' || origin !== sessions.origin(headers['host'] as string | undefined))
    throw new ApiError(403, 'origin_mismatch', 'console forms are accepted from the console only');
  if (site !== undefined && site !== 'same-origin')
    throw new ApiError(403, 'origin_mismatch', 'console forms are accepted from the console only');
  const token = (body as Record<string, unknown> | null)?.['csrf'];
  if (typeof token !== 'string' || !sameText(token, session.csrf))
    throw new ApiError(403, 'csrf_failed', 'the form is stale or not from this session; reload the page');
}

/** The console's session cookie → the person and roles; POSTs pass the CSRF checks before the body is used. */
async function sessionCaller(
  declared: Caller,
  headers: Headers,
  readBody: () => Promise<unknown>,
  auth: CallerAuth,
  method: string,
): Promise<Authenticated> {
  const sessions = auth.sessions;
  if (!sessions) throw new ApiError(404, 'not_found', 'the console is not enabled');
  const value = readCookie(headers['cookie'], sessions.cookieName);
  const session = value ? await sessions.lookup(value) : null;
  if (!session) throw new ApiError(401, 'login_required', 'sign in to the console first');
  const roles = rolesOf(session.identity, auth.access);
  const needed = requiredRoles(declared);
  if (needed.length > 0 && !needed.some((r) => roles.has(r)))
    throw new ApiError(403, 'forbidden', `this page needs the ${needed.join(' or ')} role`);
  const body = await readBody();
  if (method !== 'GET') checkConsolePost(headers, body, session, sessions);
  return {
    caller: session.identity,
    roles,
    body,
    session: { csrf: session.csrf, expiresAt: session.expiresAt },
  };
}

/**
 * Checks the caller a route declares. `readBody` is called once: after a bearer token passed (so an
 * unauthenticated client cannot make the API buffer a body), or first for `subject_token`.
 */
export async function authenticate(
  declared: Caller,
  headers: Record<string, string | string[] | undefined>,
  readBody: () => Promise<unknown>,
  auth: CallerAuth,
  method = 'GET',
): Promise<Authenticated> {
  if (isSessionCaller(declared)) return sessionCaller(declared, headers, readBody, auth, method);
  if (declared === 'anonymous') return { caller: null, roles: NO_ROLES, body: await readBody() };
  if (declared === 'scraper') {
    await checkScraper(auth, headers);
    return { caller: null, roles: NO_ROLES, body: await readBody() };
  }
  if (declared === 'subject_token') {
    const body = await readBody();
    return { caller: await subjectToken(auth, body), roles: NO_ROLES, body };
  }
  const id = await verified(
    auth,
    bearer(headers, 'your token: Authorization: Bearer <your OIDC access token>'),
  );
  if (isAgent(id, auth)) {
    if (declared !== 'human_or_agent')
      throw new ApiError(
        403,
        'agent_not_allowed',
        'an agent token cannot use this route; use your own token',
      );
    return { caller: id, roles: NO_ROLES, body: await readBody() };
  }
  const roles = rolesOf(id, auth.access);
  if (typeof declared !== 'string' && !declared.role.some((r) => roles.has(r)))
    throw new ApiError(403, 'forbidden', `this route needs the ${declared.role.join(' or ')} role`);
  return { caller: id, roles, body: await readBody() };
}
