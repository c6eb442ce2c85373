// Fleet state through PostgreSQL, node against node: each "node" here is its own connection pool and
// LISTEN connection to one database, exactly as two processes would have. Approvals, revocations and
// config revisions made on one are seen by the other; a one-time grant is spent once fleet-wide; a
// node whose LISTEN connection was cut catches up when it is back; a node started with a stale config
// file does not roll the fleet back.
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuditStore, openAuditStore } from '../../audit/store.ts';
import type { TargetConfig } from '../../config/types.ts';
import { AgentRegistry } from '../../fleet/agent-registry.ts';
import { ApprovalStore } from '../../fleet/approval-store.ts';
import { type ConfigRevision, SharedTargets } from '../../fleet/config-revisions.ts';
import { SharedState } from '../../fleet/shared-state.ts';
import {
  createTestDatabase,
  DATABASE_URL,
  NO_POSTGRES_REASON,
  type TestDatabase,
} from '../support/postgres.ts';
import { waitFor } from '../support/wait.ts';

const silent = pino({ level: 'silent' });

interface Node {
  store: AuditStore;
  state: SharedState;
  approvals: ApprovalStore;
  agents: AgentRegistry;
}

let db: TestDatabase;
const nodes: Node[] = [];

async function node(name: string): Promise<Node> {
  const store = await openAuditStore({ url: db.url });
  await store.migrate();
  const state = await SharedState.open(store.sql, name, silent);
  const n = {
    store,
    state,
    approvals: await ApprovalStore.open(state),
    agents: await AgentRegistry.open(state),
  };
  nodes.push(n);
  return n;
}

function target(name: string): TargetConfig {
  return {
    name,
    upstream: `http://127.0.0.1:9/${name}`.replace(/\/[a-z]+$/, ''),
    tls: null,
    match: { hosts: [], pathPrefix: `/${name}` },
    prefixRewrite: null,
    timeout: null,
    protocol: 'http',
    credentials: [],
  } as unknown as TargetConfig;
}

const agentIdentity = (tokenId: string, iat: number) => ({
  token_id: tokenId,
  subject: 'alice',
  actor: { agent: 'bot' },
  claims: { iat },
});

describe.skipIf(!DATABASE_URL)(
  `shared state on PostgreSQL${DATABASE_URL ? '' : ` (${NO_POSTGRES_REASON})`}`,
  () => {
    let one: Node;
    let two: Node;

    beforeAll(async () => {
      db = await createTestDatabase('chaperone_state');
      one = await node('one');
      two = await node('two');
    });

    afterAll(async () => {
      for (const n of nodes) {
        await n.agents.close();
        await n.state.close();
        await n.store.close();
      }
      await db?.drop();
    });

    it('an approval requested on one node and decided on the other is a grant on the first, spent once', async () => {
      const ask = {
        fingerprint: 'fp-1',
        subject: 'alice',
        actor: null,
        target: 'demo',
        method: 'DELETE',
        path: '/demo/items/1',
        bodySha256: null,
        spec: { reviewers: ['security'] },
      };
      const [r1, r2] = await Promise.all([one.approvals.request(ask), two.approvals.request(ask)]);
      // Asked on both nodes at once: one request, fleet-wide.
      expect(r2.id).toBe(r1.id);
      expect((await two.approvals.list({ status: 'pending' })).map((r) => r.id)).toEqual([r1.id]);

      await expect(
        two.approvals.decide(r1.id, { subject: 'alice', groups: ['security'] }, 'approve'),
      ).rejects.toMatchObject({ code: 'ERR_APPROVAL', kind: 'self_approval' });
      await two.approvals.decide(r1.id, { subject: 'carol', groups: ['security'] }, 'approve');
      await waitFor(() => one.approvals.grantFor('fp-1') !== null, {
        what: 'the grant on node one',
        timeoutMs: 2000,
      });

      const claims = await Promise.all([one.approvals.claim(r1.id), two.approvals.claim(r1.id)]);
      expect(claims.filter(Boolean)).toHaveLength(1);
      await waitFor(
        () => one.approvals.grantFor('fp-1') === null && two.approvals.grantFor('fp-1') === null,
        {
          what: 'the spent grant to leave both nodes',
          timeoutMs: 2000,
        },
      );
      expect((await one.approvals.get(r1.id))?.status).toBe('used');
    });

    it('a revocation on one node is enforced by the other on its next check', async () => {
      const iat = Math.floor(Date.now() / 1000) - 5;
      await one.agents.register({
        token_id: 'tok-1',
        agent: 'bot',
        run_id: 'run-1',
        user: 'alice',
        targets: ['demo'],
        issued_at: new Date(iat * 1000).toISOString(),
        expires_at: new Date(Date.now() + 3.6e6).toISOString(),
      });
      expect(two.agents.revoked(agentIdentity('tok-1', iat))).toBeNull();
      const hit = await one.agents.revoke('alice', { tokenId: 'tok-1' });
      expect(hit.map((r) => r.token_id)).toEqual(['tok-1']);
      // The revoking node applies it before it answers.
      expect(one.agents.revoked(agentIdentity('tok-1', iat))).toMatch(/revoked/);
      await waitFor(() => two.agents.revoked(agentIdentity('tok-1', iat)) !== null, {
        what: 'the revocation on node two',
        timeoutMs: 1000,
        intervalMs: 10,
      });
      // The inventory is the fleet's: node two lists the token node one registered, as revoked.
      const [row] = await two.agents.list({ tokenId: 'tok-1' });
      expect(row?.revoked_by).toBe('alice');
    });

    it('a node whose LISTEN connection was cut reloads what it missed once it is back', async () => {
      const iat = Math.floor(Date.now() / 1000) - 5;
      const admin = await openAuditStore({ url: db.url });
      try {
        // Cut node one's LISTEN connection (as a network failure or a server restart would).
        await admin.sql.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()`,
        );
        await two.agents.revoke('security-bot', { user: 'mallory' });
        await waitFor(() => one.agents.revoked({ ...agentIdentity('x', iat), subject: 'mallory' }) !== null, {
          what: 'node one to catch up after reconnecting',
          timeoutMs: 10_000,
        });
        expect(one.state.status().resyncs).toBe(1);
      } finally {
        await admin.close();
      }
    });

    it('nodes starting together on an empty database apply each migration once', async () => {
      const empty = await createTestDatabase('chaperone_migrate');
      const stores = await Promise.all([1, 2, 3].map(() => openAuditStore({ url: empty.url })));
      try {
        const applied = await Promise.all(stores.map((s) => s.migrate()));
        // Every migration applied by exactly one of them; none failed.
        expect(applied.flat().sort()).toEqual(['0001', '0002', '0003', '0004', '0009']);
        const rows = await stores[0]!.sql.query<{ version: string }>('SELECT version FROM schema_migrations');
        expect(rows.map((r) => r.version).sort()).toEqual(['0001', '0002', '0003', '0004', '0009']);
      } finally {
        for (const s of stores) await s.close();
        await empty.drop();
      }
    });

    it('config revisions: the newest wins everywhere; a stale file does not roll the fleet back', async () => {
      const seen: ConfigRevision[] = [];
      const a = await SharedTargets.open(one.state, [target('a')], {
        logger: silent,
        onRevision: () => undefined,
      });
      const b = await SharedTargets.open(two.state, [target('a')], {
        logger: silent,
        onRevision: (r) => seen.push(r),
      });
      // The same file on both: one revision.
      expect(b.revision.revision).toBe(a.revision.revision);

      await a.shared.propose([target('a'), target('b')]);
      await waitFor(() => seen.length > 0, {
        what: "node two to serve node one's revision",
        timeoutMs: 2000,
      });
      expect(seen.at(-1)!.targets.map((t) => t.name)).toEqual(['a', 'b']);
      expect(seen.at(-1)!.origin).toBe('one');

      const newest = seen.at(-1)!.revision;
      // A node restarting with the old file serves the newest revision instead.
      const stale = await SharedTargets.open(two.state, [target('a')], {
        logger: silent,
        onRevision: () => undefined,
      });
      expect(stale.revision.targets.map((t) => t.name)).toEqual(['a', 'b']);
      // A file with targets the fleet never had is a change: it becomes the newest revision.
      const fresh = await SharedTargets.open(two.state, [target('c')], {
        logger: silent,
        onRevision: () => undefined,
      });
      expect(fresh.revision.revision).toBeGreaterThan(newest);
      expect(fresh.revision.origin).toBe('two');
    });
  },
);
