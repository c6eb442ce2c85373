// The audit store on both engines (PGlite also in its own thread, as the gateway runs it) with the same SQL: migrations, idempotent inserts, queries with
// keyset paging, the decision ↔ access-log join, values PostgreSQL would refuse, concurrent writers,
// and the hash chain catching a changed, deleted, inserted or reordered record.
import { randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessLogEntry } from '../../audit/access-log-service.ts';
import { BatchingAccessLogSink } from '../../audit/access-log-sink.ts';
import type { DecisionRecord } from '../../audit/records.ts';
import { type AuditStore, openAuditStore } from '../../audit/store.ts';
import { MIGRATIONS_DIR } from '../../store/sql.ts';
import { createTestDatabase, DATABASE_URL, NO_POSTGRES_REASON } from '../support/postgres.ts';
import { waitFor } from '../support/wait.ts';

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

function accessLog(d: DecisionRecord, over: Partial<AccessLogEntry> = {}): AccessLogEntry {
  return {
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
    metadata: { 'envoy.filters.http.ext_authz': { decision_id: d.decision_id } },
    ...over,
  };
}

type Rows = Record<string, unknown>[];

interface Opened {
  store: AuditStore;
  /** SQL outside the store's API: the tamperer's (and the analyst's) own connection. */
  sql: (text: string, params?: unknown[]) => Promise<Rows>;
  /** A second store on the same database, when the engine allows one (PostgreSQL). */
  another?: () => Promise<AuditStore>;
  cleanup(): Promise<void>;
}

interface Engine {
  name: string;
  skip: boolean;
  open(): Promise<Opened>;
}

const engines: Engine[] = [
  {
    name: 'PGlite (embedded)',
    skip: false,
    open: async () => {
      const store = await openAuditStore({});
      // PGlite is in-process with a single connection: tampering goes through the store's own.
      const inner = (store as unknown as { sql: { query(t: string, p?: unknown[]): Promise<Rows> } }).sql;
      return { store, sql: (t, p) => inner.query(t, p), cleanup: () => store.close() };
    },
  },
  {
    // What the gateway runs: the same database in a worker thread, every call a message to it.
    name: 'PGlite (embedded, own thread)',
    skip: false,
    open: async () => {
      const store = await openAuditStore({ thread: true });
      const inner = (store as unknown as { sql: { query(t: string, p?: unknown[]): Promise<Rows> } }).sql;
      return { store, sql: (t, p) => inner.query(t, p), cleanup: () => store.close() };
    },
  },
  {
    name: 'PostgreSQL',
    skip: !DATABASE_URL,
    open: async () => {
      const db = await createTestDatabase();
      const store = await openAuditStore({ url: db.url });
      const others: AuditStore[] = [];
      return {
        store,
        sql: async (t, p) => {
          const c = new pg.Client({ connectionString: db.url });
          await c.connect();
          try {
            return (await c.query(t, p)).rows;
          } finally {
            await c.end();
          }
        },
        another: async () => {
          const s = await openAuditStore({ url: db.url });
          others.push(s);
          return s;
        },
        cleanup: async () => {
          for (const s of [store, ...others]) await s.close();
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
      let db: Opened;
      let store: AuditStore;

      beforeAll(async () => {
        db = await engine.open();
        store = db.store;
      });
      afterAll(async () => {
        await db?.cleanup();
      });

      it('applies each migration once, recorded in schema_migrations', async () => {
        // Every file of store/migrations, so a new migration needs no edit here.
        const versions = readdirSync(MIGRATIONS_DIR)
          .filter((f) => f.endsWith('.sql'))
          .map((f) => f.slice(0, 4))
          .sort();
        expect(versions).toEqual(expect.arrayContaining(['0001', '0004', '0008']));
        expect(await store.migrate()).toEqual(versions);
        expect(await store.migrate()).toEqual([]);
        const applied = await db.sql('SELECT version FROM schema_migrations ORDER BY version');
        expect(applied.map((r) => r['version'])).toEqual(versions);
      });

      it('inserts decisions idempotently and chains them', async () => {
        const batch = [decision(), decision({ subject: 'bob', decision: 'deny', http_status: 403 })];
        expect(await store.insertDecisions(batch)).toBe(2);
        expect(await store.insertDecisions(batch)).toBe(0); // a resend after a crash changes nothing
        expect(await store.insertDecisions([batch[1]!, decision(), batch[1]!])).toBe(1);
        expect(await store.lastSeq()).toBe(3);
        expect(await store.verifyChain()).toEqual({ ok: true, count: 3 });
      });

      it('queries by user, agent, target, decision and time, newest first, with keyset paging', async () => {
        const from = new Date(Date.now() - 1000);
        const more = Array.from({ length: 7 }, (_, i) =>
          decision({ subject: 'carol', path: `/demo/${i}`, target: i % 2 ? 'github' : 'demo' }),
        );
        await store.insertDecisions(more);
        await store.insertDecisions([
          decision({ subject: 'carol', actor: { sub: 'agent:triage', agent: 'triage' }, path: '/agent' }),
        ]);
        const first = await store.queryDecisions({ subject: 'carol', limit: 5 });
        expect(first.rows.map((r) => r.path)).toEqual(['/agent', '/demo/6', '/demo/5', '/demo/4', '/demo/3']);
        expect(first.nextCursor).not.toBeNull();
        const second = await store.queryDecisions({ subject: 'carol', limit: 5, cursor: first.nextCursor! });
        expect(second.rows.map((r) => r.path)).toEqual(['/demo/2', '/demo/1', '/demo/0']);
        expect(second.nextCursor).toBeNull();
        const seqs = [...first.rows, ...second.rows].map((r) => r.seq);
        expect(seqs).toEqual([...seqs].sort((a, b) => b - a));

        expect((await store.queryDecisions({ decision: 'deny' })).rows.map((r) => r.subject)).toEqual([
          'bob',
        ]);
        expect(
          (await store.queryDecisions({ subject: 'carol', target: 'github' })).rows.map((r) => r.path),
        ).toEqual(['/demo/5', '/demo/3', '/demo/1']);
        expect((await store.queryDecisions({ agent: 'triage' })).rows.map((r) => r.path)).toEqual(['/agent']);
        expect((await store.queryDecisions({ since: new Date(Date.now() + 60_000) })).rows).toEqual([]);
        expect((await store.queryDecisions({ until: from })).rows).toEqual([]);
        expect((await store.queryDecisions({ subject: 'carol', since: from })).rows).toHaveLength(8);
        expect(first.rows[1]!.input).toEqual({ parsed_path: ['demo', 'items'] });
        await expect(store.queryDecisions({ cursor: 'not-a-cursor' })).rejects.toThrow(/invalid cursor/);
      });

      it('stores access-log entries idempotently, joinable with decisions on request id', async () => {
        const d = decision({ subject: 'dave' });
        await store.insertDecisions([d]);
        const entry = accessLog(d);
        expect(await store.insertAccessLogs([entry, entry])).toBe(1);
        expect(await store.insertAccessLogs([entry])).toBe(0); // Envoy resending the same entry
        const [log] = await store.accessLogsFor(d.request_id);
        expect(log?.['decision_id']).toBe(d.decision_id);
        expect(log?.['metadata']).toEqual(entry.metadata);
        const joined = await db.sql(
          `SELECT d.subject, d.decision, a.response_code, a.upstream_host
             FROM decisions d JOIN access_log a ON a.request_id = d.request_id AND a.decision_id = d.decision_id
            WHERE d.subject = $1`,
          ['dave'],
        );
        expect(joined).toEqual([
          { subject: 'dave', decision: 'allow', response_code: 200, upstream_host: '127.0.0.1:8080' },
        ]);
      });

      it('batches access-log entries through an outage of the store, each stored once', async () => {
        let down = true;
        const flaky = {
          insertAccessLogs: (batch: AccessLogEntry[]) =>
            down ? Promise.reject(new Error('connection refused')) : store.insertAccessLogs(batch),
        };
        const sink = new BatchingAccessLogSink(flaky, pino({ level: 'silent' }), {
          batchSize: 7,
          lingerMs: 1,
          retryMs: 20,
        });
        const d = decision({ subject: 'erin' });
        const entries = Array.from({ length: 30 }, (_, i) => accessLog(d, { nodeId: `edge-${i}` }));
        await Promise.all([sink.write(entries.slice(0, 15)), sink.write(entries.slice(15))]);
        await waitFor(() => sink.stats().lastError !== null, { what: 'a failed access-log insert' });
        expect(sink.stats().pending).toBe(30);
        down = false;
        await waitFor(() => sink.stats().pending === 0, { what: 'the access-log backlog to drain' });
        expect(sink.stats()).toMatchObject({ stored: 30, dropped: 0, lastError: null });
        expect(await store.accessLogsFor(d.request_id)).toHaveLength(30);
        await sink.close();
      });

      it('stores values PostgreSQL refuses as such (NUL, lone surrogates) instead of stalling', async () => {
        const d = decision({
          reason: 'nul \u0000 here',
          input: { parsed_body: { 'k\u0000': 'a\u0000b', s: 'x\ud800y', ok: 'é😀' } },
        });
        expect(await store.insertDecisions([d])).toBe(1);
        const [row] = (await store.queryDecisions({ limit: 1 })).rows;
        expect(row?.reason).toBe('nul \ufffd here');
        expect(row?.input).toEqual({ parsed_body: { 'k\ufffd': 'a\ufffdb', s: 'x\ufffdy', ok: 'é😀' } });
        const entry = accessLog(d, { path: '/a\u0000', metadata: { m: '\udc00' } });
        expect(await store.insertAccessLogs([entry])).toBe(1);
        expect((await store.verifyChain()).ok).toBe(true);
      });

      it('round-trips text that array literals treat specially (quotes, braces, NULL, backslashes)', async () => {
        const awkward = decision({
          subject: 'NULL',
          target: '',
          path: '/{a,b}/"q"/\\x\\',
          reason: 'a, b; {c} "d" \\e \n f',
          route_id: null,
          actor: { agent: 'NULL', note: '{"x":[1,2]}' },
          input: { s: '\\"}{,', n: [null, 0, -1.5e-7] },
          result: null,
        });
        await store.insertDecisions([awkward]);
        const [row] = (await store.queryDecisions({ subject: 'NULL' })).rows;
        expect(row).toMatchObject({
          subject: 'NULL',
          target: '',
          path: awkward.path,
          reason: awkward.reason,
          route_id: null,
          actor: awkward.actor,
          input: awkward.input,
          result: null,
        });
        const entry = accessLog(awkward, { authority: 'NULL', path: '{"}', policyRevision: null });
        expect(await store.insertAccessLogs([entry])).toBe(1);
        expect(await store.accessLogsFor(awkward.request_id)).toMatchObject([
          { authority: 'NULL', path: '{"}', policy_revision: null },
        ]);
        expect((await store.verifyChain()).ok).toBe(true);
      });

      it('keeps one unbroken chain under concurrent writers and large batches', async () => {
        const writers = [store, store, ...(db.another ? [await db.another(), await db.another()] : [])];
        const before = await store.lastSeq();
        await Promise.all(
          writers.map((w, i) =>
            w.insertDecisions(
              Array.from({ length: i === 0 ? 1200 : 40 }, () => decision({ subject: 'load' })),
            ),
          ),
        );
        const total = 1200 + 40 * (writers.length - 1);
        expect(await store.lastSeq()).toBe(before + total);
        expect(await store.verifyChain()).toEqual({ ok: true, count: before + total });
      });

      it('detects a changed record, naming it', async () => {
        await db.sql("UPDATE decisions SET reason = 'edited' WHERE seq = 3");
        expect(await store.verifyChain()).toMatchObject({
          ok: false,
          firstBadSeq: 3,
          reason: expect.stringMatching(/content/),
        });
      });

      describe('on a fresh chain of five', () => {
        let fresh: Opened;
        beforeAll(async () => {
          fresh = await engine.open();
          await fresh.store.migrate();
        });
        afterAll(async () => {
          await fresh?.cleanup();
        });
        // An empty table restarts the chain at seq 1 from the genesis hash.
        const chainOfFive = async () => {
          await fresh.sql('DELETE FROM decisions');
          await fresh.store.insertDecisions(Array.from({ length: 5 }, () => decision()));
          expect(await fresh.store.verifyChain()).toEqual({ ok: true, count: 5 });
        };

        it("keeps a decision's trace id, finds a trace's decisions, and chains it (records without one hash as before)", async () => {
          const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
          const traced = decision({ trace_id: traceId });
          await fresh.sql('DELETE FROM decisions');
          expect(await fresh.store.insertDecisions([decision(), traced])).toBe(2);
          const { rows } = await fresh.store.queryDecisions({ traceId });
          expect(rows.map((r) => [r.decision_id, r.trace_id])).toEqual([[traced.decision_id, traceId]]);
          const [untraced] = await fresh.store.decisionsAfter(0, 1);
          expect(untraced?.trace_id).toBeNull();
          expect(await fresh.store.verifyChain()).toMatchObject({ ok: true });
          // The trace id is covered: changing it breaks the chain.
          await fresh.sql(
            `UPDATE decisions SET trace_id = '${'0'.repeat(31)}1' WHERE decision_id = '${traced.decision_id}'`,
          );
          expect(await fresh.store.verifyChain()).toMatchObject({
            ok: false,
            reason: 'record content does not match its hash',
          });
          await fresh.sql(
            `UPDATE decisions SET trace_id = '${traceId}' WHERE decision_id = '${traced.decision_id}'`,
          );
          expect(await fresh.store.verifyChain()).toMatchObject({ ok: true });
        });

        it('detects a deleted record', async () => {
          await chainOfFive();
          await fresh.sql('DELETE FROM decisions WHERE seq = 2');
          expect(await fresh.store.verifyChain()).toMatchObject({
            ok: false,
            firstBadSeq: 2,
            reason: expect.stringMatching(/missing/),
          });
        });

        it('detects an inserted record', async () => {
          await chainOfFive();
          // Make room after record 2 and slip in a forged record 3 that copies record 2's links.
          await fresh.sql('UPDATE decisions SET seq = seq + 100 WHERE seq >= 3');
          await fresh.sql('UPDATE decisions SET seq = seq - 99 WHERE seq >= 103');
          await fresh.sql(
            `INSERT INTO decisions SELECT 3, 'forged', request_id, time, route_id, target, method, host, path,
               'mallory', issuer, actor, decision, http_status, reason, reason_code, policy_revision, latency_us,
               input, result, prev_hash, hash FROM decisions WHERE seq = 2`,
          );
          expect(await fresh.store.verifyChain()).toMatchObject({
            ok: false,
            firstBadSeq: 3,
            reason: expect.stringMatching(/prev_hash/),
          });
        });

        it('detects reordered records', async () => {
          await chainOfFive();
          await fresh.sql('UPDATE decisions SET seq = -3 WHERE seq = 3');
          await fresh.sql('UPDATE decisions SET seq = 3 WHERE seq = 4');
          await fresh.sql('UPDATE decisions SET seq = 4 WHERE seq = -3');
          expect(await fresh.store.verifyChain()).toMatchObject({
            ok: false,
            firstBadSeq: 3,
            reason: expect.stringMatching(/prev_hash/),
          });
        });
      });
    },
  );
}
