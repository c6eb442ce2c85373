// The one authentication hook of the HTTP API: given a route's declared caller, it verifies the
// caller's token (the configured OIDC issuers plus Chaperone's own agent issuer), refuses revoked
// tokens, refuses agent tokens where a person is required, and checks the role. Handlers run only
// after it passed, and read the verified identity and roles from the request.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AccessConfig } from '../config/types.ts';
import type { Identity } from '../contracts/identity.ts';
import type { RevocationCheck } from '../fleet/agent-registry.ts';
import type { IdentityVerifier } from '../identity/verifier.ts';
import { ApiError } from './errors.ts';
import type { Caller, Role } from './route.ts';

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
}

export interface Authenticated {
  caller: Identity | null;
  roles: ReadonlySet<Role>;
  body: unknown;
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

function bearer(headers: Record<string, string | string[] | undefined>): string {
  const value = headers['authorization'];
  const m = typeof value === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(value) : null;
  if (!m)
    throw new ApiError(
      401,
      'unauthenticated',
      'this route needs your token: Authorization: Bearer <your OIDC access token>',
    );
  return m[1]!;
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
  const value = headers['authorization'];
  const m = typeof value === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(value) : null;
  if (!m)
    throw new ApiError(
      401,
      'unauthenticated',
      'this route needs the metrics token: Authorization: Bearer <token>',
    );
  if (!timingSafeEqual(sha256(m[1]!), sha256(expected)))
    throw new ApiError(401, 'invalid_token', 'the metrics bearer token does not match');
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
): Promise<Authenticated> {
  if (declared === 'anonymous') return { caller: null, roles: NO_ROLES, body: await readBody() };
  if (declared === 'scraper') {
    await checkScraper(auth, headers);
    return { caller: null, roles: NO_ROLES, body: await readBody() };
  }
  if (declared === 'subject_token') {
    const body = await readBody();
    return { caller: await subjectToken(auth, body), roles: NO_ROLES, body };
  }
  const id = await verified(auth, bearer(headers));
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
