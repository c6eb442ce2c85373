// Audit trust outside the database, on both engines: every committed batch (decisions and access-log
// entries) carries a checkpoint signed in its transaction; verifyTrail trusts only keys and checkpoints
// it is given from outside the database, and names the first record it cannot vouch for when rows are
// rewritten with a key added to the database, appended or forged through SQL, truncated, or when
// checkpoints are deleted. Also: the node's anchor, and upgrading a store written by an earlier version.
import { randomUUID } from 'node:crypto';
import { cp as copyDir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AccessLogEntry } from '../../audit/access-log-service.ts';
import { CheckpointAnchor } from '../../audit/anchor.ts';
import {
  CHECKPOINT_FORMAT,
  type ChainName,
  type Checkpoint,
  type CheckpointFile,
  TrustedKeys,
} from '../../audit/checkpoints.ts';
import type { DecisionRecord } from '../../audit/records.ts';
import { type AuditStore, openAuditStore } from '../../audit/store.ts';
import { verifyTrail } from '../../audit/verify.ts';
import { AgentKeys } from '../../fleet/agent-keys.ts';
import { MIGRATIONS_DIR, migrate } from '../../store/sql.ts';
import {
  appendDecision,
  foreignKey,
  forgeAccessLog,
  type Query,
  resignFrom,
  rewriteDecision,
  truncateDecisions,
} from '../support/audit-attacks.ts';
import { createTestDatabase, DATABASE_URL, NO_POSTGRES_REASON } from '../support/postgres.ts';

const silent = pino({ level: 'silent' });

function decision(i: number): DecisionRecord {
  return {
    decision_id: randomUUID(),
    request_id: `req-${i}`,
    time: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
    route_id: 'demo/0',
    target: 'demo',
    method: 'GET',
    host: 'demo.local',
    path: '/demo/items',
    subject: i % 2 ? 'alice' : 'bob',
    issuer: 'https://idp.example.test',
    actor: null,
    decision: i % 2 ? 'allow' : 'deny',
    http_status: i % 2 ? 200 : 403,
    reason: i % 2 ? 'rule engineering-read' : 'no rule allows this request',
    reason_code: i % 2 ? 'ALLOWED' : 'FORBIDDEN',
    policy_revision: 'rev1',
    latency_us: 10 + i,
    input: { parsed_path: ['demo', 'items'], n: i },
    result: { allowed: i % 2 === 1 },
  };
}

function accessLog(i: number): AccessLogEntry {
  return {
    requestId: `req-${i}`,
    decisionId: null,
    policyRevision: 'rev1',
    time: new Date(Date.UTC(2026, 0, 1, 0, 0, i, 123)),
    nodeId: 'edge-1',
    route: 'demo/0',
    method: 'GET',
    authority: 'demo.local',
    path: '/demo/items',
    responseCode: 200,
    responseCodeDetails: 'via_upstream',
    bytesSent: 1_000_000_007 + i,
    bytesReceived: 50,
    durationMs: 0.1 + 0.2 * i,
    upstreamHost: '127.0.0.1:8080',
    upstreamCluster: 'target/demo',
    metadata: { 'envoy.filters.http.ext_authz': { decision_id: `d-${i}`, ratio: 1.5, list: [1, 'a', null] } },
  };
}

interface Opened {
  store: AuditStore;
  q: Query;
  cleanup(): Promise<void>;
}

const engines: { name: string; skip: boolean; open(): Promise<Opened> }[] = [
  {
    name: 'PGlite (embedded)',
    skip: false,
    open: async () => {
      const store = await openAuditStore({});
      return { store, q: (t, p) => store.sql.query(t, p), cleanup: () => store.close() };
    },
  },
  {
    name: 'PostgreSQL',
    skip: !DATABASE_URL,
    open: async () => {
      const db = await createTestDatabase('chaperone_trust');
      const store = await openAuditStore({ url: db.url });
      // The attacker's own connection.
      const attacker = new pg.Client({ connectionString: db.url });
      await attacker.connect();
      return {
        store,
        q: async (t, p) => (await attacker.query(t, p)).rows,
        cleanup: async () => {
          await attacker.end();
          await store.close();
          await db.drop();
        },
      };
    },
  },
];

/** Batches of decisions and access-log entries, each committed (and signed) on its own. */
async function fill(store: AuditStore, batches: number[]): Promise<void> {
  let i = 0;
  for (const n of batches) {
    await store.insertDecisions(Array.from({ length: n }, () => decision(++i)));
    await store.insertAccessLogs(Array.from({ length: n }, (_, k) => accessLog(i - k)));
  }
}

for (const engine of engines) {
  describe.skipIf(engine.skip)(
    `audit trust on ${engine.name}${engine.skip ? ` (${NO_POSTGRES_REASON})` : ''}`,
    () => {
      let db: Opened;
      let store: AuditStore;
      let node: AgentKeys;
      let trust: TrustedKeys;
      const signed: [ChainName, Checkpoint][] = [];

      beforeEach(async () => {
        db = await engine.open();
        store = db.store;
        await store.migrate();
        node = await AgentKeys.open(null);
        trust = new TrustedKeys(node.pinnedJwks());
        signed.length = 0;
        store.signBatches({ signer: node, onCheckpoint: (chain, cp) => signed.push([chain, cp]) });
        await fill(store, [3, 4, 2, 5]); // decisions 1..14 in batches ending at 3, 7, 9, 14
      });
      afterEach(async () => {
        await db?.cleanup();
      });

      it('signs every committed batch in its transaction: the signed ranges tile both chains', async () => {
        for (const chain of ['decisions', 'access_log'] as const) {
          expect((await store.checkpointsAfter(chain, 0)).map((c) => [c.prev_seq, c.seq])).toEqual([
            [0, 3],
            [3, 7],
            [7, 9],
            [9, 14],
          ]);
        }
        expect(signed.map(([c, cp]) => `${c}:${cp.seq}`)).toEqual([
          'decisions:3',
          'access_log:3',
          'decisions:7',
          'access_log:7',
          'decisions:9',
          'access_log:9',
          'decisions:14',
          'access_log:14',
        ]);
        // A resend of stored entries commits nothing, so signs nothing.
        expect(await store.insertAccessLogs([accessLog(1), accessLog(2)])).toBe(0);
        expect(signed).toHaveLength(8);
        expect(await verifyTrail(store, { trust })).toEqual({
          ok: true,
          count: 14,
          checkpoints: 4,
          legacy: 0,
          access_log: { count: 14, checkpoints: 4, legacy: 0 },
          anchors: 0,
          trusted_keys: [node.kid],
        });
      });

      it('a rewrite re-signed with a key added to the database fails, naming the first record of the batch', async () => {
        const attacker = await foreignKey(db.q);
        const { batchStart } = await rewriteDecision(
          db.q,
          8,
          (r) => ({ ...r, decision: 'allow', http_status: 200, reason: 'nothing to see' }),
          attacker,
        );
        expect(batchStart).toBe(8);
        // The rewrite is complete: trusting the database's keys (the node's and the attacker's), it verifies…
        const dbKeys = new TrustedKeys({ keys: [...node.pinnedJwks().keys, attacker.jwk] });
        expect(await verifyTrail(store, { trust: dbKeys })).toMatchObject({ ok: true, count: 14 });
        // …but not against the keys pinned outside it.
        expect(await verifyTrail(store, { trust })).toEqual({
          ok: false,
          chain: 'decisions',
          firstBadSeq: 8,
          reason: `checkpoint 9 is signed with key ${attacker.kid}, which is not trusted`,
          count: 0,
        });
      });

      it('a rewrite left with the original signatures fails at its batch', async () => {
        const attacker = await foreignKey(db.q);
        await rewriteDecision(db.q, 5, (r) => ({ ...r, subject: 'carol' }), attacker);
        // The attacker keeps the node's signature on the batch holding the edit (theirs would not verify).
        await db.q('UPDATE checkpoints SET signature = $1, key_id = $2 WHERE seq = 7', [
          ...((await db.q('SELECT signature, key_id FROM checkpoints WHERE seq = 3')).map((r) => [
            r['signature'],
            r['key_id'],
          ])[0] as [string, string]),
        ]);
        expect(await verifyTrail(store, { trust })).toMatchObject({
          ok: false,
          firstBadSeq: 4,
          reason: 'checkpoint 7 does not match what was signed',
        });
      });

      it('a decision appended through SQL is not covered by any signed batch, even after later batches', async () => {
        const forged = await appendDecision(db.q);
        expect(forged).toBe(15);
        expect(await store.verifyChain()).toEqual({ ok: true, count: 15 }); // the links alone verify
        expect(await verifyTrail(store, { trust })).toMatchObject({
          ok: false,
          firstBadSeq: 15,
          reason: expect.stringMatching(/^records 15\.\.15 are not covered by a signed checkpoint/),
        });
        // The node goes on: its next batch links to the forged record, but its checkpoint starts after it.
        await store.insertDecisions([decision(99)]);
        expect(await verifyTrail(store, { trust })).toMatchObject({
          ok: false,
          firstBadSeq: 15,
          reason: expect.stringMatching(/^records 15\.\.15 are not covered/),
        });
      });

      it('a deleted checkpoint leaves a gap; deleting them all leaves every record uncovered', async () => {
        await db.q('DELETE FROM checkpoints WHERE seq = 7');
        expect(await verifyTrail(store, { trust })).toMatchObject({
          ok: false,
          firstBadSeq: 4,
          reason: expect.stringMatching(/^records 4\.\.7 are not covered/),
        });
        await db.q('DELETE FROM checkpoints');
        expect(await verifyTrail(store, { trust })).toMatchObject({
          ok: false,
          firstBadSeq: 1,
          reason: expect.stringMatching(/^records 1\.\.14 are not covered/),
        });
      });

      it('claiming the first records predate signing (moving where it begins) is caught', async () => {
        await db.q("UPDATE audit_chains SET since = 7 WHERE chain = 'decisions'");
        await db.q('DELETE FROM checkpoints WHERE seq <= 7');
        expect(await verifyTrail(store, { trust })).toMatchObject({
          ok: false,
          chain: 'decisions',
          reason:
            'where signed batches begin was moved: the store says after record 7, checkpoint 9 signed 0',
        });
      });

      it('rows deleted with their checkpoints left behind are caught; deleted with them, only an anchor catches it', async () => {
        const exported: CheckpointFile = {
          format: CHECKPOINT_FORMAT,
          written_at: new Date().toISOString(),
          decisions: await store.lastCheckpoint('decisions'),
          access_log: await store.lastCheckpoint('access_log'),
        };
        await truncateDecisions(db.q, 9, { checkpoints: false });
        expect(await verifyTrail(store, { trust })).toMatchObject({
          ok: false,
          firstBadSeq: 14,
          reason: 'record 14 named by a signed checkpoint is missing (deleted)',
        });
        await truncateDecisions(db.q, 9, { checkpoints: true });
        expect(await verifyTrail(store, { trust })).toMatchObject({ ok: true, count: 9 }); // looks whole…
        expect(
          await verifyTrail(store, { trust, anchors: [{ source: 'export.json', file: exported }] }),
        ).toEqual({
          ok: false,
          chain: 'decisions',
          firstBadSeq: 10,
          reason: 'the chain was truncated: export.json names record 14, the store ends at 9',
          count: 9,
        });
      });

      it('an exported checkpoint signed by an untrusted key, or altered, is refused', async () => {
        const attacker = await foreignKey(db.q);
        await resignFrom(db.q, 'decisions', 14, attacker);
        const forged: CheckpointFile = {
          format: CHECKPOINT_FORMAT,
          written_at: '',
          decisions: await store.lastCheckpoint('decisions'),
        };
        const res = await verifyTrail(store, { trust, anchors: [{ source: 'x.json', file: forged }] });
        expect(res).toMatchObject({ ok: false, reason: expect.stringMatching(/not trusted/) });
        const genuine = signed.filter(([c]) => c === 'decisions').at(-1)![1];
        const altered = { ...genuine, seq: 13 };
        await db.q('UPDATE checkpoints SET signature = $1, key_id = $2 WHERE seq = 14', [
          genuine.signature,
          genuine.key_id,
        ]);
        expect(
          await verifyTrail(store, {
            trust,
            anchors: [
              { source: 'x.json', file: { format: CHECKPOINT_FORMAT, written_at: '', decisions: altered } },
            ],
          }),
        ).toMatchObject({
          ok: false,
          reason: 'the decisions checkpoint in x.json does not match what was signed',
        });
      });

      it('access-log rows: a forged row, bare or chained, and an edited one are caught', async () => {
        await forgeAccessLog(db.q, { chained: false });
        expect(await verifyTrail(store, { trust })).toMatchObject({
          ok: false,
          chain: 'access_log',
          reason: expect.stringMatching(/^access-log rows outside the chain/),
        });
        await db.q('DELETE FROM access_log WHERE seq IS NULL');
        expect(await forgeAccessLog(db.q, { chained: true })).toBe(15);
        expect(await verifyTrail(store, { trust })).toMatchObject({
          ok: false,
          chain: 'access_log',
          firstBadSeq: 15,
          reason: expect.stringMatching(/^access-log records 15\.\.15 are not covered/),
        });
        await db.q('DELETE FROM access_log WHERE seq = 15');
        await db.q('UPDATE access_log SET response_code = 500 WHERE seq = 5');
        expect(await verifyTrail(store, { trust })).toMatchObject({
          ok: false,
          chain: 'access_log',
          firstBadSeq: 5,
          reason: 'access-log record 5 content does not match its hash',
        });
      });

      it("the node's anchor follows its checkpoints, never backwards, and raises the alarm on a truncated store", async () => {
        const dir = await mkdtemp(join(tmpdir(), 'chaperone-anchor-'));
        try {
          const path = join(dir, 'audit-checkpoint.json');
          const anchor = await CheckpointAnchor.open({
            path,
            hashAt: (c, s) => store.hashAt(c, s),
            logger: silent,
          });
          store.signBatches({ signer: node, onCheckpoint: anchor.onCheckpoint });
          await store.insertDecisions([decision(15), decision(16)]);
          await store.insertAccessLogs([accessLog(15), accessLog(16)]);
          await anchor.flush();
          expect(anchor.status()).toEqual({ file: path, decisions: 16, access_log: 16, alarm: null });
          expect(
            await verifyTrail(store, { trust, anchors: [{ source: 'anchor', file: anchor.file() }] }),
          ).toMatchObject({ ok: true, anchors: 2 });
          await truncateDecisions(db.q, 14, { checkpoints: true });
          await store.insertDecisions([decision(50)]); // a batch ending at 15 after one ending at 16
          await anchor.flush();
          expect(anchor.status().decisions).toBe(16);
          expect(anchor.status().alarm).toMatch(/behind this node's anchor/);
          const reopened = await CheckpointAnchor.open({
            path,
            hashAt: (c, s) => store.hashAt(c, s),
            logger: silent,
          });
          expect(reopened.status()).toMatchObject({
            decisions: 16,
            alarm: expect.stringMatching(/no longer holds/),
          });
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      });
    },
  );
}

describe('a store written by an earlier version', () => {
  let dir: string;
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('is upgraded: old records and periodic checkpoints still verify, new batches are signed after them', async () => {
    dir = await mkdtemp(join(tmpdir(), 'chaperone-upgrade-'));
    const old = join(dir, 'migrations');
    await copyDir(MIGRATIONS_DIR, old, { recursive: true });
    // Up to 0004, plus 0007: the trace_id column today's insert writes (it has nothing to do with
    // chaining; a store of that age gets it before 0005 on upgrade, which the runner allows).
    for (const f of await readdir(old)) if (f >= '0005' && !f.startsWith('0007')) await rm(join(old, f));
    const store = await openAuditStore({});
    try {
      await migrate(store.sql, old);
      // What the earlier version wrote: chained decisions, a periodic checkpoint (signed {seq, hash,
      // time}), and unchained access-log rows.
      await store.insertDecisions([decision(1), decision(2), decision(3)]);
      const node = await AgentKeys.open(null);
      const { CompactSign } = await import('jose');
      const [three] = await store.decisionsAfter(2, 1);
      const time = new Date().toISOString();
      const sig = await new CompactSign(
        new TextEncoder().encode(JSON.stringify({ seq: 3, hash: three!.hash, time })),
      )
        .setProtectedHeader({ alg: 'ES256', kid: node.kid })
        .sign(node.signingKey);
      await store.sql.query(
        'INSERT INTO checkpoints (seq, hash, signature, key_id, time) VALUES (3, $1, $2, $3, $4)',
        [three!.hash, sig, node.kid, time],
      );
      await store.sql.query(
        `INSERT INTO access_log (entry_key, request_id, node_id, time, route, method, authority, path, response_code,
           response_code_details, bytes_sent, bytes_received, duration_ms, upstream_host, upstream_cluster)
         VALUES ('k1', 'r1', 'n', now(), 'r', 'GET', 'a', '/', 200, '', 1, 1, 1, '', ''),
                ('k2', 'r2', 'n', now(), 'r', 'GET', 'a', '/', 200, '', 1, 1, 1, '', '')`,
      );
      expect(await store.migrate()).toEqual(expect.arrayContaining(['0005']));
      store.signBatches({ signer: node });
      await store.insertDecisions([decision(4)]);
      await store.insertAccessLogs([accessLog(3)]);
      const trust = new TrustedKeys(node.pinnedJwks());
      expect(await verifyTrail(store, { trust })).toMatchObject({
        ok: true,
        count: 4,
        checkpoints: 2,
        legacy: 3,
        access_log: { count: 3, checkpoints: 1, legacy: 2 },
      });
    } finally {
      await store.close();
    }
  });
});
