// The store's insert path: records hashed on the fast path or the long way (storable) land with the
// hashes the first chain code gives, pieces of a pipelined batch stay in order, and the optimistic insert
// (no look-up of the batch's ids) still stores each decision once: resends, overlaps, in-batch repeats.
// PGlite always; PostgreSQL too when DATABASE_URL is set.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DecisionRecord, GENESIS_HASH, storable } from '../../audit/records.ts';
import { type AuditStore, openAuditStore } from '../../audit/store.ts';
import { referenceChainHash } from '../support/audit-reference.ts';
import { createTestDatabase, DATABASE_URL, NO_POSTGRES_REASON } from '../support/postgres.ts';

/** The first version of the chain, over storable(r) as the store hashes. */
function referenceChain(records: DecisionRecord[]): string[] {
  let prev = GENESIS_HASH;
  return records.map((raw, i) => {
    prev = referenceChainHash(prev, i + 1, storable(raw));
    return prev;
  });
}

function decision(i: number, over: Partial<DecisionRecord> = {}): DecisionRecord {
  return {
    decision_id: randomUUID(),
    request_id: randomUUID(),
    time: new Date(1_790_000_000_000 + i).toISOString(),
    route_id: i % 3 ? 'demo/0' : null,
    target: 'demo',
    method: 'GET',
    host: 'api.example.test',
    path: `/demo/items/${i}`,
    subject: 'alice',
    issuer: 'https://idp.example.test',
    actor: i % 2 ? { agent: 'bot', run: i } : null,
    decision: 'allow',
    http_status: 200,
    reason: 'rule engineering-read',
    reason_code: 'ALLOWED',
    policy_revision: 'r1',
    latency_us: 120.25,
    input: {
      z: 1,
      a: [i, -0, 1e21, 'é', '\ud83d\ude00', { y: null, b: 'q"\\' }],
      identity: { subject: 'alice' },
    },
    result: { allowed: true },
    ...(i % 5 === 0 ? { shadow: { revision: 'r2', decision: 'deny', differs: true } } : {}),
    ...over,
  };
}

/** Some records need the long way (NUL, lone surrogates, a latency as text); some times have an offset. */
function mixed(n: number, from = 0): DecisionRecord[] {
  return Array.from({ length: n }, (_, k) => {
    const i = from + k;
    switch (i % 7) {
      case 1:
        return decision(i, { reason: 'nul \u0000 here', input: { ['k\ud800']: ['\udc00', 'a\u0000'] } });
      case 3:
        return decision(i, {
          shadow: { revision: '\ud800', decision: 'deny', differs: true },
          latency_us: '7.5' as unknown as number,
        });
      case 5:
        return decision(i, { time: '2026-11-24T10:00:00.5+02:00' });
      default:
        return decision(i);
    }
  });
}

interface Engine {
  name: string;
  skip: boolean;
  open(): Promise<{ store: AuditStore; cleanup(): Promise<void> }>;
}

const engines: Engine[] = [
  {
    name: 'PGlite',
    skip: false,
    open: async () => {
      const store = await openAuditStore({});
      return { store, cleanup: () => store.close() };
    },
  },
  {
    name: 'PostgreSQL',
    skip: !DATABASE_URL,
    open: async () => {
      const db = await createTestDatabase('chaperone_audit_insert');
      const store = await openAuditStore({ url: db.url });
      return {
        store,
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
    `insertDecisions on ${engine.name}${engine.skip ? ` (${NO_POSTGRES_REASON})` : ''}`,
    () => {
      let store: AuditStore;
      let cleanup: () => Promise<void>;
      const all: DecisionRecord[] = [];
      beforeAll(async () => {
        ({ store, cleanup } = await engine.open());
        await store.migrate();
      });
      afterAll(async () => {
        await cleanup?.();
      });

      const stored = async () => {
        const rows = [];
        for (let after = 0; ; ) {
          const page = await store.decisionsAfter(after, 1000);
          if (page.length === 0) return rows;
          rows.push(...page);
          after = page.at(-1)!.seq;
        }
      };

      it('stores a large mixed batch with the hashes of the first chain code, in order', async () => {
        const batch = mixed(700);
        expect(await store.insertDecisions(batch)).toBe(700);
        all.push(...batch);
        const rows = await stored();
        expect(rows.map((r) => r.decision_id)).toEqual(all.map((r) => r.decision_id));
        expect(rows.map((r) => r.hash)).toEqual(referenceChain(all));
        expect(await store.verifyChain()).toEqual({ ok: true, count: 700 });
        // Values as the long way stores them: sanitised strings, a Date as its JSON text.
        expect(rows[1]).toMatchObject({
          reason: 'nul \ufffd here',
          input: { ['k\ufffd']: ['\ufffd', 'a\ufffd'] },
        });
        expect(rows[3]).toMatchObject({ shadow: { revision: '\ufffd' }, latency_us: 7.5 });
        expect(rows[4]).toMatchObject({
          input: JSON.parse(JSON.stringify(batch[4]!.input)),
          actor: null,
          route_id: 'demo/0',
          latency_us: 120.25,
        });
        expect(rows[5]).toMatchObject({ actor: { agent: 'bot', run: 5 }, shadow: batch[5]!.shadow });
      });

      it('stores nothing again on a resend, and only the new ones of an overlapping batch', async () => {
        expect(await store.insertDecisions(all.slice(0, 300))).toBe(0);
        const more = mixed(400, 700);
        // Already stored ones in the first piece, the middle and the last; a repeat within the batch.
        const overlapping = [
          all[5]!,
          ...more.slice(0, 200),
          all[600]!,
          ...more.slice(200),
          more[3]!,
          all[699]!,
        ];
        expect(await store.insertDecisions(overlapping)).toBe(400);
        all.push(...more);
        const rows = await stored();
        expect(rows.map((r) => r.decision_id)).toEqual(all.map((r) => r.decision_id));
        expect(rows.map((r) => r.hash)).toEqual(referenceChain(all));
        expect(await store.verifyChain()).toEqual({ ok: true, count: 1100 });
      });

      it('keeps one chain under concurrent batches', async () => {
        const batches = [mixed(300, 2000), mixed(50, 3000), mixed(200, 4000)];
        const counts = await Promise.all(batches.map((b) => store.insertDecisions(b)));
        expect(counts).toEqual([300, 50, 200]);
        expect(await store.verifyChain()).toEqual({ ok: true, count: 1650 });
      });
    },
  );
}
