// Delegated agent identities on the HTTP API: Chaperone as a small OAuth 2.0 authorization server.
// POST /oauth/token implements Token Exchange (RFC 8693): a person's OIDC access token in, a short-lived
// agent token out — a JWT signed with Chaperone's own key, `sub` = the person, `act` = {agent, run_id},
// the targets it may reach. Discovery and JWKS are published so authz servers verify it like any
// issuer. The inventory shows a person their own agents (admins and auditors see everyone's); a person
// revokes their own agents, an admin anyone's (the kill switch); only an admin rotates the signing key.
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { Identity } from '../../contracts/identity.ts';
import type { AgentRegistry } from '../../fleet/agent-registry.ts';
import { parseTtl } from '../../fleet/approval-store.ts';
import type { FleetKeys } from '../../fleet/fleet-keys.ts';
import { ApiError } from '../errors.ts';
import type { ApiHandler, ApiRequest, Route } from '../route.ts';
import type { AdminAudit } from './approvals.ts';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
export const AGENT_AUDIENCE = 'chaperone';
const MAX_AGENT_TTL_MS = 24 * 3.6e6;

export interface AgentRouteDeps {
  issuer: string;
  keys: Pick<FleetKeys, 'kid' | 'signingKey' | 'jwks' | 'rotate'>;
  registry: AgentRegistry;
  audit?: AdminAudit;
}

function field(req: ApiRequest, name: string): string | undefined {
  const v = (req.body as Record<string, unknown> | null)?.[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** The exchange's parameters, checked (the subject token itself was verified by the hook). */
function exchangeRequest(req: ApiRequest): { agent: string; targets: string[] | null; ttlMs: number } {
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
  return { agent, targets, ttlMs: Math.min(parseTtl(field(req, 'ttl') ?? '1h'), MAX_AGENT_TTL_MS) };
}

function exchange(d: AgentRouteDeps): ApiHandler {
  return async (req) => {
    const user: Identity = req.caller!;
    const { agent, targets, ttlMs } = exchangeRequest(req);
    const now = Date.now();
    const tokenId = randomUUID();
    const runId = randomUUID();
    const expiresAt = Math.floor((now + ttlMs) / 1000);
    const jwt = await new SignJWT({
      groups: user.groups,
      ...(user.email ? { email: user.email } : {}),
      act: { sub: `agent:${agent}`, agent, run_id: runId },
      ...(targets ? { targets } : {}),
      launched_via: user.issuer,
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
        expires_in: Math.floor(ttlMs / 1000),
        token_id: tokenId,
        run_id: runId,
      },
    };
  };
}

function inventory(d: AgentRouteDeps): ApiHandler {
  return async (req) => {
    const p = req.url.searchParams;
    const seesAll = req.roles.has('admin') || req.roles.has('auditor');
    const user = p.get('user') ?? (seesAll ? null : req.caller!.subject);
    if (!seesAll && user !== req.caller!.subject)
      throw new ApiError(403, 'forbidden', "only the admin or auditor role may list other users' agents");
    const rows = await d.registry.list({
      ...(user ? { user } : {}),
      ...(p.get('agent') ? { agent: p.get('agent')! } : {}),
    });
    return { status: 200, body: { rows } };
  };
}

function revoke(d: AgentRouteDeps): ApiHandler {
  return async (req) => {
    const caller = req.caller!;
    const tokenId = field(req, 'token_id');
    const agent = field(req, 'agent');
    const user = field(req, 'user');
    if (!tokenId && !agent && !user)
      throw new ApiError(400, 'invalid_request', 'give token_id, agent or user');
    // People stop their own agents; an admin may stop anyone's (the kill switch).
    const owner = tokenId ? (await d.registry.list({ tokenId }))[0]?.user : (user ?? caller.subject);
    if (owner !== undefined && owner !== caller.subject && !req.roles.has('admin'))
      throw new ApiError(403, 'forbidden', "only the admin role may revoke other users' agents");
    const hit = await d.registry.revoke(caller.subject, {
      ...(tokenId ? { tokenId } : {}),
      ...(agent ? { agent } : {}),
      ...(agent || user ? { user: user ?? caller.subject } : {}),
    });
    await d.audit?.({
      subject: caller.subject,
      action: 'REVOKE_AGENTS',
      reason: `revoked ${hit.length} agent token(s): ${tokenId ? `token ${tokenId}` : agent ? `agent ${agent}` : `every agent of ${user}`}`,
      detail: {
        token_id: tokenId ?? null,
        agent: agent ?? null,
        user: user ?? null,
        revoked: hit.map((r) => r.token_id),
      },
    });
    return { status: 200, body: { revoked: hit.map((r) => r.token_id), by: caller.subject } };
  };
}

function rotateKeys(d: AgentRouteDeps): ApiHandler {
  return async (req) => {
    const before = d.keys.kid;
    await d.keys.rotate();
    await d.audit?.({
      subject: req.caller!.subject,
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
