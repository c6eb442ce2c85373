// Delegated agent identities on the HTTP API: Chaperone as a small OAuth 2.0 authorization server.
// POST /oauth/token implements Token Exchange (RFC 8693): a person's OIDC access token in, a short-lived
// agent token out — a JWT signed with Chaperone's own key, `sub` = the person, `sub_id` = the person
// qualified by their issuer (RFC 9493 iss_sub), `act` = {agent, run_id}, the targets it may reach. It
// never outlives the person's token nor the configured maximum. Discovery and JWKS are published so
// authz servers verify it like any issuer. A person is (issuer, subject) throughout: the inventory shows
// a person their own agents (admins and auditors see everyone's); a person revokes their own agents, an
// admin anyone's (the kill switch); only an admin rotates the signing key.
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { type Identity, type Person, personOf, samePerson } from '../../contracts/identity.ts';
import type { AgentRegistry, AgentTokenRecord } from '../../fleet/agent-registry.ts';
import { parseTtl } from '../../fleet/approval-store.ts';
import type { FleetKeys } from '../../fleet/fleet-keys.ts';
import type { AgentUsageToday } from '../../fleet/usage-counters.ts';
import { issSubId, SUBJECT_ID_CLAIM } from '../../identity/claims.ts';
import { ApiError } from '../errors.ts';
import type { ApiHandler, ApiRequest, Role, Route } from '../route.ts';
import type { AdminAudit } from './approvals.ts';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
export const AGENT_AUDIENCE = 'chaperone';
/** An agent token's lifetime when the config names no maximum (`identity.agent_token_max_ttl`). */
export const DEFAULT_AGENT_TTL_MAX_MS = 3.6e6;

export interface AgentRouteDeps {
  issuer: string;
  /** The longest an agent token may live, whatever is asked; default DEFAULT_AGENT_TTL_MAX_MS. */
  maxTtlMs?: number;
  keys: Pick<FleetKeys, 'kid' | 'signingKey' | 'jwks' | 'rotate'>;
  registry: AgentRegistry;
  audit?: AdminAudit;
  /** Each agent's use today (rate limits and token budgets), from the fleet's usage counters. */
  usage?: { agentsToday(filter: { issuer?: string; subject?: string }): Promise<AgentUsageToday[]> };
}

function field(req: ApiRequest, name: string): string | undefined {
  const v = (req.body as Record<string, unknown> | null)?.[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** The exchange's parameters, checked (the subject token itself was verified by the hook). */
function exchangeRequest(
  req: ApiRequest,
  maxTtlMs: number,
): { agent: string; targets: string[] | null; ttlMs: number } {
  if (field(req, 'grant_type') !== TOKEN_EXCHANGE_GRANT)
    throw new ApiError(400, 'unsupported_grant_type', `grant_type must be ${TOKEN_EXCHANGE_GRANT}`);
  const type = field(req, 'subject_token_type') ?? ACCESS_TOKEN_TYPE;
  if (type !== ACCESS_TOKEN_TYPE && type !== JWT_TOKEN_TYPE)
    throw new ApiError(400, 'invalid_request', 'unsupported subject_token_type');
  const agent = field(req, 'agent_name');
  if (!agent || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(agent))
    throw new ApiError(
      400,
      'invalid_request',
      'agent_name is required: letters, digits, ".", "_", "-" (max 64)',
    );
  const targets =
    field(req, 'targets')
      ?.split(',')
      .map((t) => t.trim())
      .filter(Boolean) ?? null;
  return { agent, targets, ttlMs: Math.min(parseTtl(field(req, 'ttl') ?? '1h'), maxTtlMs) };
}

/**
 * Seconds since the epoch at which the agent token expires: what was asked (capped), and never later
 * than the person's own token, so the groups it copies cannot outlive the token they came from.
 */
function agentExpiry(user: Identity, ttlMs: number, now: number): number {
  const expiresAt = Math.min(Math.floor((now + ttlMs) / 1000), user.expires_at);
  if (expiresAt <= Math.floor(now / 1000))
    throw new ApiError(400, 'invalid_grant', 'the subject token has expired; sign in again');
  return expiresAt;
}

function exchange(d: AgentRouteDeps): ApiHandler {
  return async (req) => {
    const user: Identity = req.caller!;
    const { agent, targets, ttlMs } = exchangeRequest(req, d.maxTtlMs ?? DEFAULT_AGENT_TTL_MAX_MS);
    const now = Date.now();
    const tokenId = randomUUID();
    const runId = randomUUID();
    const expiresAt = agentExpiry(user, ttlMs, now);
    const jwt = await new SignJWT({
      groups: user.groups,
      ...(user.email ? { email: user.email } : {}),
      [SUBJECT_ID_CLAIM]: issSubId(personOf(user)),
      act: { sub: `agent:${agent}`, agent, run_id: runId },
      ...(targets ? { targets } : {}),
    })
      .setProtectedHeader({ alg: 'ES256', kid: d.keys.kid, typ: 'at+jwt' })
      .setIssuer(d.issuer)
      .setSubject(user.subject)
      .setAudience(AGENT_AUDIENCE)
      .setIssuedAt(Math.floor(now / 1000))
      .setExpirationTime(expiresAt)
      .setJti(tokenId)
      .sign(d.keys.signingKey);
    await d.registry.register({
      token_id: tokenId,
      agent,
      run_id: runId,
      user: user.subject,
      user_issuer: user.subject_issuer,
      targets,
      issued_at: new Date(now).toISOString(),
      expires_at: new Date(expiresAt * 1000).toISOString(),
    });
    return {
      status: 200,
      body: {
        access_token: jwt,
        issued_token_type: JWT_TOKEN_TYPE,
        token_type: 'Bearer',
        expires_in: expiresAt - Math.floor(now / 1000),
        token_id: tokenId,
        run_id: runId,
      },
    };
  };
}

/** `?issuer=&user=`: whose agents to list. A person without admin or auditor sees only their own. */
function inventoryFilter(req: ApiRequest): { issuer?: string; user?: string } {
  const p = req.url.searchParams;
  const me = personOf(req.caller!);
  const issuer = p.get('issuer') ?? undefined;
  const user = p.get('user') ?? undefined;
  if (req.roles.has('admin') || req.roles.has('auditor'))
    return { ...(issuer ? { issuer } : {}), ...(user ? { user } : {}) };
  if ((user !== undefined && user !== me.subject) || (issuer !== undefined && issuer !== me.issuer))
    throw new ApiError(403, 'forbidden', "only the admin or auditor role may list other users' agents");
  return { issuer: me.issuer, user: me.subject };
}

function inventory(d: AgentRouteDeps): ApiHandler {
  return async (req) => {
    const agent = req.url.searchParams.get('agent');
    const filter = inventoryFilter(req);
    const rows = await d.registry.list({ ...filter, ...(agent ? { agent } : {}) });
    if (!d.usage) return { status: 200, body: { rows } };
    // Usage is counted per agent name of a person (all its tokens): each row shows its agent's day.
    const today = new Map(
      (
        await d.usage.agentsToday({
          ...(filter.issuer ? { issuer: filter.issuer } : {}),
          ...(filter.user ? { subject: filter.user } : {}),
        })
      ).map((u) => [JSON.stringify([u.issuer, u.subject, u.agent]), u]),
    );
    const withToday = rows.map((r) => {
      const u = today.get(JSON.stringify([r.user_issuer, r.user, r.agent]));
      return { ...r, today: { requests: u?.requests ?? 0, tokens: u?.tokens ?? 0 } };
    });
    return { status: 200, body: { rows: withToday } };
  };
}

/** What to revoke: one token, every token of an agent name, or every agent of a user (of `issuer`). */
export interface AgentRevocation {
  tokenId?: string;
  agent?: string;
  user?: string;
  issuer?: string;
}

/** Whose agents a revocation stops: a token's owner, or `user` of `issuer` (default: the caller's own). */
async function revocationOwner(
  registry: AgentRegistry,
  me: Person,
  what: AgentRevocation,
): Promise<Person | undefined> {
  if (what.tokenId) {
    const row = (await registry.list({ tokenId: what.tokenId }))[0];
    return row ? { issuer: row.user_issuer, subject: row.user } : undefined;
  }
  return { issuer: what.issuer ?? me.issuer, subject: what.user ?? me.subject };
}

/**
 * Revokes agent tokens for `me` and records it. People stop their own agents; an admin may stop
 * anyone's (the kill switch). alice of another issuer is another person. The JSON API and the console
 * (`via`) revoke through this one path.
 */
export async function revokeAgents(
  registry: AgentRegistry,
  audit: AdminAudit | undefined,
  me: Person,
  roles: ReadonlySet<Role>,
  what: AgentRevocation,
  via?: 'console',
): Promise<AgentTokenRecord[]> {
  const { tokenId, agent } = what;
  if (!tokenId && !agent && !what.user)
    throw new ApiError(400, 'invalid_request', 'give token_id, agent or user');
  const owner = await revocationOwner(registry, me, what);
  if (owner !== undefined && !samePerson(owner, me) && !roles.has('admin'))
    throw new ApiError(403, 'forbidden', "only the admin role may revoke other people's agents");
  const hit = await registry.revoke(me, {
    ...(tokenId ? { tokenId } : {}),
    ...(agent ? { agent } : {}),
    ...(!tokenId && owner ? { user: owner } : {}),
  });
  const which = tokenId
    ? `token ${tokenId}`
    : agent
      ? `agent ${agent} of ${owner!.subject} (${owner!.issuer})`
      : `every agent of ${owner!.subject} (${owner!.issuer})`;
  await audit?.({
    ...me,
    action: 'REVOKE_AGENTS',
    reason: `revoked ${hit.length} agent token(s)${via ? ` in the ${via}` : ''}: ${which}`,
    detail: {
      token_id: tokenId ?? null,
      agent: agent ?? null,
      user: tokenId ? null : owner!.subject,
      user_issuer: tokenId ? null : owner!.issuer,
      revoked: hit.map((r) => r.token_id),
      ...(via ? { via } : {}),
    },
  });
  return hit;
}

/** The revocation a JSON body or a console form asks for (`token_id`, `agent`, `user`, `issuer`). */
export function revocationAsked(req: ApiRequest): AgentRevocation {
  const tokenId = field(req, 'token_id');
  const agent = field(req, 'agent');
  const user = field(req, 'user');
  const issuer = field(req, 'issuer');
  return {
    ...(tokenId ? { tokenId } : {}),
    ...(agent ? { agent } : {}),
    ...(user ? { user } : {}),
    ...(issuer ? { issuer } : {}),
  };
}

function revoke(d: AgentRouteDeps): ApiHandler {
  return async (req) => {
    const me = personOf(req.caller!);
    const hit = await revokeAgents(d.registry, d.audit, me, req.roles, revocationAsked(req));
    return {
      status: 200,
      body: { revoked: hit.map((r) => r.token_id), by: me.subject, by_issuer: me.issuer },
    };
  };
}

function rotateKeys(d: AgentRouteDeps): ApiHandler {
  return async (req) => {
    const before = d.keys.kid;
    await d.keys.rotate();
    await d.audit?.({
      ...personOf(req.caller!),
      action: 'ROTATE_KEYS',
      reason: `signing key ${before} retired, ${d.keys.kid} active`,
    });
    return {
      status: 200,
      body: { active: d.keys.kid, retired: before, published: d.keys.jwks().keys.map((k) => k.kid) },
    };
  };
}

export function agentRoutes(d: AgentRouteDeps): Route[] {
  return [
    {
      method: 'GET',
      path: '/.well-known/openid-configuration',
      // Anonymous: issuer metadata is public by design (OIDC discovery); verifiers fetch it unauthenticated.
      caller: 'anonymous',
      handle: () => ({
        status: 200,
        body: {
          issuer: d.issuer,
          jwks_uri: `${d.issuer}/.well-known/jwks.json`,
          token_endpoint: `${d.issuer}/oauth/token`,
          grant_types_supported: [TOKEN_EXCHANGE_GRANT],
          id_token_signing_alg_values_supported: ['ES256'],
        },
      }),
    },
    {
      method: 'GET',
      path: '/.well-known/jwks.json',
      // Anonymous: public keys only; every authz server fetches them to verify agent tokens.
      caller: 'anonymous',
      handle: () => ({ status: 200, body: d.keys.jwks() }),
    },
    { method: 'POST', path: '/oauth/token', caller: 'subject_token', handle: exchange(d) },
    { method: 'GET', path: '/agents', caller: 'human', handle: inventory(d) },
    { method: 'POST', path: '/agents/revoke', caller: 'human', handle: revoke(d) },
    {
      method: 'GET',
      path: '/agents/revocations',
      // Anonymous: polled by standalone authz servers (`authz serve --control-plane`), which hold no
      // person's token. It lists revoked token ids and per-user/per-agent cut-off times: no token, no
      // claim beyond the user and agent names. Hiding it would delay revocations, not protect them.
      caller: 'anonymous',
      handle: () => ({ status: 200, body: d.registry.revocations() }),
    },
    { method: 'POST', path: '/admin/keys/rotate', caller: { role: ['admin'] }, handle: rotateKeys(d) },
  ];
}
