// Delegated agent identities on the HTTP API: Chaperone as a small OAuth 2.0 authorization server.
// POST /oauth/token implements Token Exchange (RFC 8693): a user's OIDC access token in, a short-lived
// agent token out — a JWT signed with Chaperone's own key, `sub` = the user, `act` = {agent, run_id},
// the targets it may reach. Discovery and JWKS are published so authz servers verify it like any issuer.
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { AgentRegistry } from '../../fleet/agent-registry.ts';
import { parseTtl } from '../../fleet/approval-store.ts';
import type { FleetKeys } from '../../fleet/fleet-keys.ts';
import type { IdentityVerifier } from '../../identity/verifier.ts';
import { ApiError, type ApiHandler, type ApiRequest } from '../http-api.ts';
import type { AdminAudit } from './approvals.ts';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
export const AGENT_AUDIENCE = 'chaperone';
const MAX_AGENT_TTL_MS = 24 * 3.6e6;

function oauthError(status: number, error: string, description: string): never {
  throw new ApiError(status, error, description);
}

function field(req: ApiRequest, name: string): string | undefined {
  const v = (req.body as Record<string, unknown> | null)?.[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

async function userFrom(verifier: IdentityVerifier | null, headers: Record<string, string>) {
  if (!verifier) oauthError(503, 'temporarily_unavailable', 'no identity issuer is configured');
  const res = await verifier.verify(headers);
  if (!res.ok) oauthError(401, 'invalid_token', res.reason);
  return res.identity;
}

export function agentRoutes(o: {
  issuer: string;
  keys: Pick<FleetKeys, 'kid' | 'signingKey' | 'jwks' | 'rotate'>;
  registry: AgentRegistry;
  /** Verifies the human's token (the configured issuers, not Chaperone's own). */
  userVerifier: IdentityVerifier | null;
  audit?: AdminAudit;
}): Record<string, ApiHandler> {
  const { issuer, keys, registry } = o;
  return {
    'GET /.well-known/openid-configuration': () => ({
      status: 200,
      body: {
        issuer,
        jwks_uri: `${issuer}/.well-known/jwks.json`,
        token_endpoint: `${issuer}/oauth/token`,
        grant_types_supported: [TOKEN_EXCHANGE_GRANT],
        id_token_signing_alg_values_supported: ['ES256'],
      },
    }),
    'GET /.well-known/jwks.json': () => ({ status: 200, body: keys.jwks() }),
    'POST /oauth/token': async (req) => {
      if (field(req, 'grant_type') !== TOKEN_EXCHANGE_GRANT) {
        oauthError(400, 'unsupported_grant_type', `grant_type must be ${TOKEN_EXCHANGE_GRANT}`);
      }
      const subjectToken = field(req, 'subject_token');
      if (!subjectToken) oauthError(400, 'invalid_request', 'subject_token is required');
      const type = field(req, 'subject_token_type') ?? ACCESS_TOKEN_TYPE;
      if (type !== ACCESS_TOKEN_TYPE && type !== JWT_TOKEN_TYPE)
        oauthError(400, 'invalid_request', 'unsupported subject_token_type');
      const user = await userFrom(o.userVerifier, { authorization: `Bearer ${subjectToken}` });
      if (user.actor)
        oauthError(400, 'invalid_request', 'an agent token cannot be exchanged for another agent token');
      const agent = field(req, 'agent_name');
      if (!agent || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(agent)) {
        oauthError(400, 'invalid_request', 'agent_name is required: letters, digits, ".", "_", "-" (max 64)');
      }
      const targets =
        field(req, 'targets')
          ?.split(',')
          .map((t) => t.trim())
          .filter(Boolean) ?? null;
      const ttlMs = Math.min(parseTtl(field(req, 'ttl') ?? '1h'), MAX_AGENT_TTL_MS);
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
        .setProtectedHeader({ alg: 'ES256', kid: keys.kid, typ: 'at+jwt' })
        .setIssuer(issuer)
        .setSubject(user.subject)
        .setAudience(AGENT_AUDIENCE)
        .setIssuedAt(Math.floor(now / 1000))
        .setExpirationTime(expiresAt)
        .setJti(tokenId)
        .sign(keys.signingKey);
      await registry.register({
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
    },
    'GET /agents': async (req) => {
      await userFrom(o.userVerifier, headersOf(req));
      const p = req.url.searchParams;
      return {
        status: 200,
        body: {
          rows: await registry.list({
            ...(p.get('user') ? { user: p.get('user')! } : {}),
            ...(p.get('agent') ? { agent: p.get('agent')! } : {}),
          }),
        },
      };
    },
    'POST /agents/revoke': async (req) => {
      const caller = await userFrom(o.userVerifier, headersOf(req));
      const tokenId = field(req, 'token_id');
      const agent = field(req, 'agent');
      const user = field(req, 'user');
      if (!tokenId && !agent && !user) oauthError(400, 'invalid_request', 'give token_id, agent or user');
      // Users stop their own agents; the security group may stop anyone's (the kill switch).
      const security = caller.groups.includes('security');
      const owner = tokenId ? (await registry.list({ tokenId }))[0]?.user : (user ?? caller.subject);
      if (owner !== undefined && owner !== caller.subject && !security) {
        oauthError(403, 'forbidden', "only the security group may revoke other users' agents");
      }
      const hit = await registry.revoke(caller.subject, {
        ...(tokenId ? { tokenId } : {}),
        ...(agent ? { agent } : {}),
        ...(agent || user ? { user: user ?? caller.subject } : {}),
      });
      await o.audit?.({
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
    },
    // Polled by authz servers running on their own (`chaperone authz serve --control-plane`), so a
    // revocation reaches every one of them within their poll interval.
    'GET /agents/revocations': () => ({ status: 200, body: registry.revocations() }),
    // Key rotation: new tokens and checkpoints are signed with a new key; the previous public keys stay
    // in the JWKS so what was signed before still verifies.
    'POST /admin/keys/rotate': async (req) => {
      const caller = await userFrom(o.userVerifier, headersOf(req));
      if (!caller.groups.includes('security'))
        oauthError(403, 'forbidden', 'only the security group may rotate keys');
      const before = keys.kid;
      await keys.rotate();
      await o.audit?.({
        subject: caller.subject,
        action: 'ROTATE_KEYS',
        reason: `signing key ${before} retired, ${keys.kid} active`,
      });
      return {
        status: 200,
        body: { active: keys.kid, retired: before, published: keys.jwks().keys.map((k) => k.kid) },
      };
    },
  };
}

function headersOf(req: ApiRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') out[k] = v;
  return out;
}
