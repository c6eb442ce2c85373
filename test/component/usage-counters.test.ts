// Rate-limit and budget counters through the store, on both engines: a node's counts are in its own
// snapshot at once and in the store after a flush; on PostgreSQL two nodes (each its own pool and
// LISTEN connection, as two processes) see each other's counts through the notice of totals, concurrent
// flushes add up exactly, a node started later loads the current windows, and a new minute starts at
// zero while the day goes on.
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { type AuditStore, openAuditStore } from '../../audit/store.ts';
import { noticePayloads, UsageCounters, type UsageKey } from '../../fleet/usage-counters.ts';
import {
  createTestDatabase,
  DATABASE_URL,
  NO_POSTGRES_REASON,
  type TestDatabase,
} from '../support/postgres.ts';
import { waitFor } from '../support/wait.ts';

const silent = pino({ level: 'silent' });
const alice: UsageKey = { target: 'llm', issuer: 'https://idp.test', subject: 'alice', agent: null };
const aliceBot: UsageKey = { ...alice, agent: 'bot' };
const bob: UsageKey = { ...alice, subject: 'bob' };

const closers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of closers.reverse()) await c();
});

async function open(store: AuditStore, node: string, now?: () => number): Promise<UsageCounters> {
  const c = await UsageCounters.open(store.sql, {
    node,
    logger: silent,
    flushIntervalMs: 50,
    ...(now ? { now } : {}),
  });
  closers.push(() => c.close());
  return c;
}

describe('usage counters on PGlite (one node)', () => {
  it('counts in memory at once, stores on flush, and a new minute starts at zero', async () => {
    const store = await openAuditStore({});
    closers.push(() => store.close());
    await store.migrate();
    let now = Date.UTC(2026, 11, 2, 10, 0, 10);
    const c = await open(store, 'a', () => now);
    c.countRequest(alice);
    c.countRequest(aliceBot);
    c.countTokens(aliceBot, 120);
    const s = c.snapshot(aliceBot);
    expect(s.user.minute).toEqual({ requests: 2, tokens: 120 });
    expect(s.agent?.minute).toEqual({ requests: 1, tokens: 120 });
    expect(s.target.day).toEqual({ requests: 2, tokens: 120 });
    expect(s.windows.minute.resets_in).toBe(50);
    expect(c.snapshot(alice).agent).toBeNull();
    expect(c.snapshot(bob).user.day).toEqual({ requests: 0, tokens: 0 });
    await c.flush();
    const rows = await store.sql.query<{ scope: string; requests: string }>(
      "SELECT scope, requests FROM usage_counters WHERE window_kind = 'day' ORDER BY scope",
    );
    expect(rows.map((r) => [r.scope, Number(r.requests)])).toEqual([
      ['agent', 1],
      ['target', 2],
      ['user', 2],
    ]);
    expect(await c.agentsToday()).toEqual([
      { issuer: 'https://idp.test', subject: 'alice', agent: 'bot', requests: 1, tokens: 120 },
    ]);
    now += 60_000;
    const next = c.snapshot(aliceBot);
    expect(next.user.minute).toEqual({ requests: 0, tokens: 0 });
    expect(next.user.day).toEqual({ requests: 2, tokens: 120 });
  });
});

describe.skipIf(!DATABASE_URL)(
  `usage counters across PostgreSQL nodes${DATABASE_URL ? '' : ` (${NO_POSTGRES_REASON})`}`,
  () => {
    let db: TestDatabase;
    const stores: AuditStore[] = [];
    const store = async () => {
      const s = await openAuditStore({ url: db.url });
      await s.migrate();
      stores.push(s);
      closers.push(() => s.close());
      return s;
    };

    it('each node sees the other’s counts within a flush and a notice; concurrent flushes add up', async () => {
      db = await createTestDatabase('chaperone_usage');
      closers.unshift(() => db.drop());
      const a = await open(await store(), 'a');
      const b = await open(await store(), 'b');
      for (let i = 0; i < 50; i++) {
        a.countRequest(alice);
        b.countRequest(alice);
      }
      a.countTokens(alice, 700);
      b.countTokens(alice, 300);
      await waitFor(
        () =>
          a.snapshot(alice).user.day.requests === 100 &&
          b.snapshot(alice).user.day.requests === 100 &&
          b.snapshot(alice).user.day.tokens === 1000,
        { what: 'both nodes at 100 requests and 1000 tokens', timeoutMs: 10_000 },
      );
      expect(a.status()).toMatchObject({ flush_errors: 0, pending: 0 });
      expect(b.status().notices).toBeGreaterThan(0);

      // A node that joins later reads the current windows from the store.
      const c = await open(await store(), 'c');
      expect(c.snapshot(alice).user).toEqual({
        minute: { requests: 100, tokens: 1000 },
        day: { requests: 100, tokens: 1000 },
      });
      const [row] = await stores[0]!.sql.query<{ requests: string }>(
        "SELECT requests FROM usage_counters WHERE window_kind = 'day' AND scope = 'user'",
      );
      expect(Number(row?.requests)).toBe(100);
    });

    it('a node whose notices were lost catches up on its next full read', async () => {
      const a = await open(await store(), 'late-a');
      const b = await open(await store(), 'late-b');
      const before = a.snapshot(bob).user.day.requests;
      // Written straight to the store, announced to nobody.
      await stores[0]!.sql.query(
        `UPDATE usage_counters SET requests = requests + 5 WHERE window_kind = 'day' AND scope = 'user' AND subject = 'alice'`,
      );
      b.countRequest(bob);
      await b.flush();
      await a.resync();
      expect(a.snapshot(alice).user.day.requests).toBeGreaterThanOrEqual(105);
      await waitFor(() => a.snapshot(bob).user.day.requests === before + 1, { what: 'bob counted on a' });
    });
  },
);

describe('notices', () => {
  it('split the totals of one flush into payloads under PostgreSQL’s 8000 bytes', () => {
    const rows = Array.from({ length: 400 }, (_, i) => ({
      window_kind: 'day' as const,
      window_start: 1_700_000_000,
      scope: 'user' as const,
      target: 'llm',
      issuer: 'https://idp.example.test/realms/a-rather-long-realm-name',
      subject: `user-${i}`,
      agent: '',
      requests: i,
      tokens: i * 10,
    }));
    const payloads = noticePayloads(rows, 'node-a');
    expect(payloads.length).toBeGreaterThan(1);
    for (const p of payloads) expect(Buffer.byteLength(p)).toBeLessThan(8000);
    expect(payloads.flatMap((p) => (JSON.parse(p) as { r: unknown[] }).r)).toHaveLength(400);
  });
});
