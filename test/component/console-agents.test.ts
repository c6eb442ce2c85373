// The console's agents page and its revoke form, on a real agent registry (PGlite): a person is issuer and
// subject, so with two issuers that both have an alice, an admin's kill switch and "revoke agent" buttons
// name the alice of the row, and revoking one leaves the other's agents alone.
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConsoleDeps } from '../../api/console/deps.ts';
import { agentsPage, revokeAgentsAction } from '../../api/console/pages/agents.ts';
import type { ApiRequest, Role } from '../../api/route.ts';
import { type AuditStore, openAuditStore } from '../../audit/store.ts';
import { AgentRegistry } from '../../fleet/agent-registry.ts';
import { SharedState } from '../../fleet/shared-state.ts';
import { verifiedIdentity } from '../support/identity.ts';

const A = 'https://idp-a.example.test';
const B = 'https://idp-b.example.test';
const ADMIN: ReadonlySet<Role> = new Set(['admin', 'auditor']);

let store: AuditStore;
let state: SharedState;
let agents: AgentRegistry;
let deps: ConsoleDeps;

async function register(tokenId: string, issuer: string): Promise<void> {
  const now = Date.now();
  await agents.register({
    token_id: tokenId,
    agent: 'bot',
    run_id: 'run-1',
    user_issuer: issuer,
    user: 'alice',
    targets: null,
    issued_at: new Date(now).toISOString(),
    expires_at: new Date(now + 3_600_000).toISOString(),
  });
}

function request(body: Record<string, string> | null = null): ApiRequest {
  return {
    method: body ? 'POST' : 'GET',
    url: new URL('http://127.0.0.1:8181/console/agents'),
    headers: {},
    body,
    caller: verifiedIdentity('carol', { issuer: A, groups: ['security'] }),
    roles: ADMIN,
    session: { csrf: 'csrf', expiresAt: '2030-01-01T00:00:00.000Z' },
  };
}

const revokedIds = async () =>
  (await agents.list())
    .filter((r) => r.revoked_at)
    .map((r) => r.token_id)
    .sort();

beforeAll(async () => {
  store = await openAuditStore({});
  await store.migrate();
  state = await SharedState.open(store.sql, 'console-agents', pino({ level: 'silent' }));
  agents = await AgentRegistry.open(state);
  deps = { agents } as unknown as ConsoleDeps;
  await register('a-1', A);
  await register('b-1', B);
});

afterAll(async () => {
  await state?.close();
  await store?.close();
});

describe("the console's kill switch names the person, issuer included", () => {
  it('offers one button per person, each form carrying the issuer', async () => {
    const res = await agentsPage(deps)(request());
    const text = String(res.body);
    expect(text).toContain(`Revoke every agent of alice (${A})`);
    expect(text).toContain(`Revoke every agent of alice (${B})`);
    expect(text).toContain(`name="issuer" value="${B}"`);
  });

  it("revokes B's alice's agent and leaves A's alice's alone", async () => {
    await revokeAgentsAction(deps)(request({ agent: 'bot', user: 'alice', issuer: B, csrf: 'csrf' }));
    expect(await revokedIds()).toEqual(['b-1']);
    await revokeAgentsAction(deps)(request({ user: 'alice', issuer: A, csrf: 'csrf' }));
    expect(await revokedIds()).toEqual(['a-1', 'b-1']);
  });
});
