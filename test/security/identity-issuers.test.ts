// Two issuers, one name: a real `chaperone up --dev` trusting its dev issuer (A) and a second real
// OpenID provider (B) that also has a user "alice". B's alice is another person: she cannot spend A's
// alice's approval grant, read her approval status, list or revoke her agents, or reach an upstream as
// her; the audit trail and the agent tokens keep the issuer. Agent tokens die with the person's token
// they came from, a kill switch covers tokens minted before it, and an agent token is no subject token.
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.ts';
import {
  apiFetch,
  devGatewayYaml,
  devToken,
  type GatewayPorts,
  type GatewayProcess,
  startGatewayProcess,
} from '../support/gateway-process.ts';
import { type OidcProvider, startOidcProvider } from '../support/oidc-provider.ts';
import { waitFor } from '../support/wait.ts';

let gw: GatewayProcess;
let idpB: OidcProvider;
let issuerA: string;
/** A's people by name, and B's ("b-alice" is B's alice, "b-carol" B's carol). */
const tokens: Record<string, string> = {};
const AGENT_TTL_MAX = '10m';

/** The dev config plus issuer B, no clock tolerance (so expiry is exact) and a short agent token cap. */
function twoIssuerYaml(p: GatewayPorts): string {
  const yaml = devGatewayYaml(p).replace(
    `    - issuer: http://127.0.0.1:${p.idp}\n      audiences: [chaperone]\n`,
    `    - issuer: http://127.0.0.1:${p.idp}\n      audiences: [chaperone]\n` +
      `    - issuer: ${idpB.issuer}\n      audiences: [chaperone]\n` +
      `  clock_tolerance: 0\n  agent_token_max_ttl: ${AGENT_TTL_MAX}\n`,
  );
  expect(yaml).toContain(idpB.issuer);
  return yaml;
}

interface Exchanged {
  status: number;
  error?: string;
  reason?: string;
  access_token?: string;
  token_id?: string;
  expires_in?: number;
}

/** RFC 8693 exchange at the HTTP API, as an OAuth client sends it. */
async function exchange(subjectToken: string, name: string, ttl = '1h'): Promise<Exchanged> {
  const res = await fetch(`${gw.api}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: subjectToken,
      agent_name: name,
      targets: 'demo',
      ttl,
    }).toString(),
  });
  return { status: res.status, ...((await res.json()) as Omit<Exchanged, 'status'>) };
}

async function agentToken(subjectToken: string, name: string): Promise<{ token: string; id: string }> {
  const r = await exchange(subjectToken, name);
  expect(r.status, r.reason).toBe(200);
  return { token: r.access_token!, id: r.token_id! };
}

function egress(path: string, token: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  return fetch(`${gw.egress}${path}`, { ...init, headers });
}

/** Who the demo upstream saw: the headers Chaperone set for it. */
async function seenUpstream(token: string): Promise<{ user: string; issuer: string; groups: string }> {
  const res = await egress('/demo/items', token);
  expect(res.status).toBe(200);
  return ((await res.json()) as { seen: { user: string; issuer: string; groups: string } }).seen;
}

function postJson(token: string, path: string, body: unknown): Promise<Response> {
  return apiFetch(gw, token, path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

async function errorOf(res: Response): Promise<string> {
  return `${res.status} ${((await res.json()) as { error?: string }).error}`;
}

interface AgentRow {
  agent: string;
  user: string;
  user_issuer: string;
  revoked_at: string | null;
}

async function inventory(token: string, query = ''): Promise<AgentRow[]> {
  const res = await apiFetch(gw, token, `/agents${query}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { rows: AgentRow[] }).rows;
}

/** A person signs in again after a kill switch: waits for a token issued after it to mint agents. */
async function signInAgain(who: string, signIn: () => Promise<string>): Promise<void> {
  await waitFor(
    async () => {
      tokens[who] = await signIn();
      return (await exchange(tokens[who], 'after-kill-bot')).status === 200;
    },
    { what: `a fresh sign-in of ${who} to mint an agent` },
  );
}

beforeAll(async () => {
  idpB = await startOidcProvider({
    audience: 'chaperone',
    users: [
      { sub: 'alice', groups: ['engineering'] },
      { sub: 'carol', groups: ['security'] },
    ],
  });
  gw = await startGatewayProcess({ yaml: twoIssuerYaml });
  issuerA = `http://127.0.0.1:${gw.ports.idp}`;
  for (const u of ['alice', 'carol']) tokens[u] = await devToken(gw, u);
  tokens['b-alice'] = await idpB.tokenFor('alice');
  tokens['b-carol'] = await idpB.tokenFor('carol');
}, 180_000);

afterAll(async () => {
  await gw?.cleanup();
  await idpB?.close();
});

describe('a second issuer with the same subject is another person', () => {
  it('upstreams see whose alice it is, also behind an agent token', async () => {
    expect(await seenUpstream(tokens['alice']!)).toMatchObject({ user: 'alice', issuer: issuerA });
    expect(await seenUpstream(tokens['b-alice']!)).toMatchObject({ user: 'alice', issuer: idpB.issuer });
    const agentB = await agentToken(tokens['b-alice']!, 'seen-bot');
    const claims = decodeJwt(agentB.token);
    expect(claims.iss).toBe(gw.api);
    expect(claims['sub_id']).toEqual({ format: 'iss_sub', iss: idpB.issuer, sub: 'alice' });
    expect(await seenUpstream(agentB.token)).toMatchObject({ user: 'alice', issuer: idpB.issuer });
  });

  it("B's alice cannot read A's alice's approval status, nor spend her grant", async () => {
    const held = await egress('/demo/items/7', tokens['alice']!, { method: 'DELETE' });
    expect(held.status).toBe(403);
    const { approval_id: id } = (await held.json()) as { approval_id: string };
    const status = (token: string) => apiFetch(gw, token, `/approvals/status?id=${id}`);
    expect((await status(tokens['alice']!)).status).toBe(200);
    expect(await errorOf(await status(tokens['b-alice']!))).toBe('404 not_found');

    expect((await postJson(tokens['carol']!, '/approvals/approve', { id })).status).toBe(200);
    // The same request by B's alice is her own request, held for its own approval.
    const other = await egress('/demo/items/7', tokens['b-alice']!, { method: 'DELETE' });
    expect(other.status).toBe(403);
    const otherBody = (await other.json()) as { error: string; approval_id: string };
    expect(otherBody.error).toBe('approval_required');
    expect(otherBody.approval_id).not.toBe(id);
    // A's alice spends her one-time grant; it was still there for her.
    expect((await egress('/demo/items/7', tokens['alice']!, { method: 'DELETE' })).status).toBe(200);
    expect(((await (await status(tokens['alice']!)).json()) as { status: string }).status).toBe('used');
  });

  it('self-approval is the same issuer and subject: B-carol may decide A-carol’s request, A-carol may not', async () => {
    const held = await egress('/demo/items/8', tokens['carol']!, { method: 'DELETE' });
    expect(held.status).toBe(403);
    const { approval_id: id } = (await held.json()) as { approval_id: string };
    expect(await errorOf(await postJson(tokens['carol']!, '/approvals/approve', { id }))).toBe(
      '403 self_approval',
    );
    const decided = await postJson(tokens['b-carol']!, '/approvals/approve', { id });
    expect(decided.status).toBe(200);
    expect(await decided.json()).toMatchObject({
      requester: { subject: 'carol', issuer: issuerA },
      decided_by: 'carol',
      decided_by_issuer: idpB.issuer,
    });
  });

  it("B's alice lists only her own agents and cannot revoke A's alice's", async () => {
    const agentA = await agentToken(tokens['alice']!, 'a-bot');
    await agentToken(tokens['b-alice']!, 'b-bot');
    const mine = await inventory(tokens['b-alice']!);
    expect(mine.map((r) => r.agent)).toContain('b-bot');
    expect(mine.every((r) => r.user === 'alice' && r.user_issuer === idpB.issuer)).toBe(true);
    expect((await inventory(tokens['alice']!)).every((r) => r.user_issuer === issuerA)).toBe(true);
    const asked = await apiFetch(gw, tokens['b-alice']!, `/agents?issuer=${encodeURIComponent(issuerA)}`);
    expect(await errorOf(asked)).toBe('403 forbidden');

    // By id, by A's issuer, by agent name or by her own name: A's agent keeps working.
    expect(await errorOf(await postJson(tokens['b-alice']!, '/agents/revoke', { token_id: agentA.id }))).toBe(
      '403 forbidden',
    );
    const byIssuer = await runCli([
      'agents',
      'revoke',
      '--user',
      'alice',
      '--issuer',
      issuerA,
      '--api',
      gw.api,
      '--token',
      tokens['b-alice']!,
    ]);
    expect(byIssuer.code, byIssuer.out).toBe(3);
    const own = await runCli([
      'agents',
      'revoke',
      '--agent',
      'a-bot',
      '--api',
      gw.api,
      '--token',
      tokens['b-alice']!,
    ]);
    expect(own.out).toContain('revoked 0 token(s)');
    const self = await runCli([
      'agents',
      'revoke',
      '--user',
      'alice',
      '--api',
      gw.api,
      '--token',
      tokens['b-alice']!,
    ]);
    expect(self.code, self.out).toBe(0);
    expect((await egress('/demo/items', agentA.token)).status).toBe(200);
    const after = await inventory(tokens['b-alice']!);
    expect(after.every((r) => r.revoked_at !== null)).toBe(true);
    // Her own kill switch covers the token she held; she signs in again to mint agents.
    await signInAgain('b-alice', () => idpB.tokenFor('alice'));
  });

  it("the audit trail names the person's issuer: requests, agents' requests and admin records", async () => {
    const agentB = await agentToken(tokens['b-alice']!, 'audit-bot');
    expect((await egress('/demo/items', agentB.token)).status).toBe(200);
    type Row = {
      subject: string;
      issuer: string;
      actor: { agent?: string } | null;
      method: string;
      decision: string;
    };
    const rows = async (query: string) =>
      ((await (await apiFetch(gw, tokens['carol']!, `/audit/decisions?${query}`)).json()) as { rows: Row[] })
        .rows;
    await waitFor(async () => (await rows('agent=audit-bot&limit=10')).length > 0, {
      what: "the agent's decision in the trail",
    });
    expect(await rows('agent=audit-bot&limit=10')).toEqual(
      expect.arrayContaining([expect.objectContaining({ subject: 'alice', issuer: idpB.issuer })]),
    );
    const people = await rows('user=alice&limit=200');
    expect(people.some((r) => r.actor === null && r.issuer === issuerA)).toBe(true);
    expect(people.some((r) => r.actor === null && r.issuer === idpB.issuer)).toBe(true);
    expect(people.every((r) => r.issuer === issuerA || r.issuer === idpB.issuer)).toBe(true);
    await waitFor(
      async () =>
        (await rows('decision=admin&limit=50')).some(
          (r) => r.method === 'REVOKE_AGENTS' && r.subject === 'alice' && r.issuer === idpB.issuer,
        ),
      { what: "B-alice's revocation in the trail with her issuer" },
    );
  });
});

describe('agent tokens live no longer than the person behind them', () => {
  it('an agent token minted from a short-lived person token dies with it', async () => {
    const short = await idpB.tokenFor('alice', { ttlSec: 10 });
    const personExp = decodeJwt(short).exp!;
    const minted = await exchange(short, 'short-bot', '15m');
    expect(minted.status, minted.reason).toBe(200);
    expect(decodeJwt(minted.access_token!).exp).toBe(personExp);
    expect(minted.expires_in).toBeLessThanOrEqual(10);
    expect((await egress('/demo/items', minted.access_token!)).status).toBe(200);
    await waitFor(async () => (await egress('/demo/items', minted.access_token!)).status === 401, {
      what: 'the agent token to expire with the person token',
      timeoutMs: 20_000,
      intervalMs: 250,
    });
    expect(Date.now() / 1000).toBeGreaterThanOrEqual(personExp);
    const refused = await egress('/demo/items', minted.access_token!);
    expect(((await refused.json()) as { code: string }).code).toBe('ERR_TOKEN_EXPIRED');
  });

  it('never outlives the configured maximum, whatever it asks for', async () => {
    const minted = await exchange(tokens['b-alice']!, 'long-bot', '24h');
    expect(minted.status).toBe(200);
    expect(minted.expires_in).toBeLessThanOrEqual(600);
    const claims = decodeJwt(minted.access_token!);
    expect(claims.exp! - claims.iat!).toBeLessThanOrEqual(600);
  });

  it('an agent token is no subject token: no chains', async () => {
    const agent = await agentToken(tokens['alice']!, 'chain-bot');
    const chained = await exchange(agent.token, 'chained-bot');
    expect([chained.status, chained.error]).toEqual([400, 'invalid_request']);
  });

  it('after `agents revoke --user`, tokens minted before are refused through Envoy, and the old person token mints none', async () => {
    const before = await agentToken(tokens['alice']!, 'kill-bot');
    const bAgent = await agentToken(tokens['b-alice']!, 'other-kill-bot');
    expect((await egress('/demo/items', before.token)).status).toBe(200);
    // carol (admin, issuer A) pulls the kill switch on A's alice; the CLI names her own issuer.
    const kill = await runCli([
      'agents',
      'revoke',
      '--user',
      'alice',
      '--api',
      gw.api,
      '--token',
      tokens['carol']!,
    ]);
    expect(kill.code, kill.out).toBe(0);
    const refused = await egress('/demo/items', before.token);
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { code: string }).code).toBe('ERR_TOKEN_REVOKED');
    // B's alice is someone else: her agent keeps working.
    expect((await egress('/demo/items', bAgent.token)).status).toBe(200);
    // The token A's alice held at that moment cannot mint a replacement agent.
    const again = await exchange(tokens['alice']!, 'kill-bot');
    expect([again.status, again.error]).toEqual([400, 'invalid_grant']);
    // Signed in again (a token issued after the kill switch), she can.
    await signInAgain('alice', () => devToken(gw, 'alice'));
  });
});
