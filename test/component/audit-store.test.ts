// The audit store on both engines with the same SQL: migrations, idempotent inserts, queries with
// keyset paging, and the hash chain catching a changed, deleted, inserted or reordered record.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessLogEntry } from '../../control-plane/als/access-log-service.ts';
import type { DecisionRecord } from '../../control-plane/audit/records.ts';
import { type AuditStore, openAuditStore } from '../../control-plane/audit/store.ts';
import {
  createTestDatabase,
  DATABASE_URL,
  NO_POSTGRES_REASON,
  type TestDatabase,
} from '../support/postgres.ts';

function decision(over: Partial<DecisionRecord> = {}): DecisionRecord {
  return {
    decision_id: randomUUID(),
    request_id: randomUUID(),
    time: new Date().toISOString(),
    route_id: 'demo/0',
    target: 'demo',
    method: 'GET',
    host: 'demo.local',
    path: '/demo/items',
    subject: 'alice',
    issuer: 'https://idp.example.test',
    actor: null,
    decision: 'allow',
    http_status: 200,
    reason: 'rule engineering-read',
    reason_code: 'ALLOWED',
    policy_revision: 'rev1',
    latency_us: 120.5,
    input: { parsed_path: ['demo', 'items'] },
    result: { allowed: true },
    ...over,
  };
}

interface Engine {
  name: string;
  skip: boolean;
  open(): Promise<{ store: AuditStore; tamper: (sql: string) => Promise<void>; cleanup(): Promise<void> }>;
}

const engines: Engine[] = [
  {
    name: 'PGlite (embedded)',
    skip: false,
    open: async () => {
      const store = await openAuditStore({});
      // Tampering goes through the store's own connection (PGlite is in-process).
      const sql = (store as unknown as { sql: { query(t: string): Promise<unknown> } }).sql;
      return { store, tamper: async (t) => void (await sql.query(t)), cleanup: () => store.close() };
    },
  },
  {
    name: 'PostgreSQL',
    skip: !DATABASE_URL,
    open: async () => {
      const db: TestDatabase = await createTestDatabase();
      const store = await openAuditStore({ url: db.url });
      const tamper = async (t: string) => {
        const c = new pg.Client({ connectionString: db.url });
        await c.connect();
        await c.query(t);
        await c.end();
      };
      return {
        store,
        tamper,
        cleanup: async () => {
          await store.close();
          await db.drop();
        },
      };
    },
  },
];

for (const engine of engines) {
  describe.skipIf(engine.skip)(
    `audit store on ${engine.name}${engine.skip ? ` (${NO_POSTGRES_REASON})` : ''}`,
    () => {
      let store: AuditStore;
      let tamper: (sql: string) => Promise<void>;
      let cleanup: () => Promise<void>;

      beforeAll(async () => {
        ({ store, tamper, cleanup } = await engine.open());
      });
      afterAll(async () => {
        await cleanup?.();
      });

      it('applies the migrations once', async () => {
        expect(await store.migrate()).toEqual(['0001', '0002']);
        expect(await store.migrate()).toEqual([]);
      });

      it('inserts decisions idempotently and chains them', async () => {
        const batch = [decision(), decision({ subject: 'bob', decision: 'deny', http_status: 403 })];
        expect(await store.insertDecisions(batch)).toBe(2);
        expect(await store.insertDecisions(batch)).toBe(0); // a resend after a crash changes nothing
        expect(await store.lastSeq()).toBe(2);
        expect(await store.verifyChain()).toEqual({ ok: true, count: 2 });
      });

      it('queries by user, target and decision, newest first, with keyset paging', async () => {
        const more = Array.from({ length: 7 }, (_, i) => decision({ subject: 'carol', path: `/demo/${i}` }));
        await store.insertDecisions(more);
        const first = await store.queryDecisions({ subject: 'carol', limit: 5 });
        expect(first.rows).toHaveLength(5);
        expect(first.rows[0]!.path).toBe('/demo/6');
        expect(first.nextCursor).not.toBeNull();
        const second = await store.queryDecisions({ subject: 'carol', limit: 5, cursor: first.nextCursor! });
        expect(second.rows.map((r) => r.path)).toEqual(['/demo/1', '/demo/0']);
        expect(second.nextCursor).toBeNull();
        const denied = await store.queryDecisions({ decision: 'deny' });
        expect(denied.rows.map((r) => r.subject)).toEqual(['bob']);
        expect((await store.queryDecisions({ since: new Date(Date.now() + 60_000) })).rows).toEqual([]);
        expect(first.rows[0]!.input).toEqual({ parsed_path: ['demo', 'items'] });
      });

      it('stores access-log entries idempotently, joinable on request id', async () => {
        const d = decision();
        await store.insertDecisions([d]);
        const entry: AccessLogEntry = {
          requestId: d.request_id,
          decisionId: d.decision_id,
          policyRevision: 'rev1',
          time: new Date(),
          nodeId: 'edge-1',
          route: 'demo/0',
          method: 'GET',
          authority: 'demo.local',
          path: '/demo/items',
          responseCode: 200,
          responseCodeDetails: 'via_upstream',
          bytesSent: 100,
          bytesReceived: 50,
          durationMs: 3.5,
          upstreamHost: '127.0.0.1:8080',
          upstreamCluster: 'target/demo',
          metadata: {},
        };
        expect(await store.insertAccessLogs([entry, entry])).toBe(1);
        const [log] = await store.accessLogsFor(d.request_id);
        expect(log?.['decision_id']).toBe(d.decision_id);
      });

      it('detects a changed record', async () => {
        await tamper("UPDATE decisions SET reason = 'edited' WHERE seq = 3");
        expect(await store.verifyChain()).toMatchObject({
          ok: false,
          firstBadSeq: 3,
          reason: expect.stringMatching(/content/),
        });
      });

      it('detects a deleted, an inserted and a reordered record', async () => {
        const fresh = await engine.open();
        try {
          await fresh.store.migrate();
          await fresh.store.insertDecisions([decision(), decision(), decision(), decision()]);
          await fresh.tamper('DELETE FROM decisions WHERE seq = 2');
          expect(await fresh.store.verifyChain()).toMatchObject({ ok: false, firstBadSeq: 2 });
          // Re-insert a forged record 2 with a plausible hash: the next record's prev_hash exposes it.
          await fresh.tamper(
            "INSERT INTO decisions SELECT 2, 'forged', request_id, time, route_id, target, method, host, path, subject, issuer, actor, decision, http_status, reason, reason_code, policy_revision, latency_us, input, result, prev_hash, hash FROM decisions WHERE seq = 1",
          );
          expect(await fresh.store.verifyChain()).toMatchObject({ ok: false, firstBadSeq: 2 });
          await fresh.tamper('DELETE FROM decisions WHERE seq = 2');
          // Reorder: swap the contents of records 3 and 4 (seq numbers stay, chain breaks at 3).
          await fresh.tamper('UPDATE decisions SET seq = -3 WHERE seq = 3');
          await fresh.tamper('UPDATE decisions SET seq = 3 WHERE seq = 4');
          await fresh.tamper('UPDATE decisions SET seq = 4 WHERE seq = -3');
          const verdict = await fresh.store.verifyChain();
          expect(verdict.ok).toBe(false);
        } finally {
          await fresh.cleanup();
        }
      });
    },
  );
}
