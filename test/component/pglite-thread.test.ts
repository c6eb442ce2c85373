// The embedded database in its own worker thread (store/pglite-thread.ts behind openPglite's `thread`),
// as the gateway runs it: the same answers as PGlite in the calling thread (types, errors with their
// SQLSTATE, transactions that commit or roll back, LISTEN/NOTIFY), and — the reason it exists — the
// calling thread's event loop keeps turning while a statement runs.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPglite, type Sql } from '../../store/sql.ts';
import { waitFor } from '../support/wait.ts';

describe('PGlite in its own thread', () => {
  let here: Sql;
  let thread: Sql;

  beforeAll(async () => {
    [here, thread] = await Promise.all([openPglite(null), openPglite(null, { thread: true })]);
    for (const sql of [here, thread])
      await sql.exec('CREATE TABLE t (id int PRIMARY KEY, at timestamptz, doc jsonb, big bigint, raw bytea)');
  }, 60_000);

  afterAll(async () => {
    await Promise.all([here?.close(), thread?.close()]);
  });

  it('answers a query exactly as PGlite in the calling thread does', async () => {
    const row = [
      1,
      new Date('2026-12-02T10:00:00.123Z'),
      { a: [1, 'x', null] },
      2n ** 40n,
      Buffer.from('hi'),
    ];
    const read = async (sql: Sql) => {
      await sql.query('INSERT INTO t VALUES ($1, $2, $3, $4, $5)', row);
      return sql.query('SELECT * FROM t WHERE id = $1', [1]);
    };
    const [a, b] = [await read(here), await read(thread)];
    expect(b).toEqual(a);
    expect(b[0]?.['at']).toBeInstanceOf(Date);
    expect(b[0]?.['doc']).toEqual({ a: [1, 'x', null] });
  });

  it("carries the database's error back with its SQLSTATE (the shipper decides retry or set aside on it)", async () => {
    await thread.query('INSERT INTO t (id) VALUES (2)');
    const err = await thread.query('INSERT INTO t (id) VALUES (2)').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).toMatchObject({ code: '23505', constraint: 't_pkey' });
    const bad = await thread.query('SELEC 1').catch((e: unknown) => e);
    expect(bad).toMatchObject({ code: '42601' });
  });

  it('commits a transaction whose function resolves and rolls back one whose function throws', async () => {
    const out = await thread.transaction(async (tx) => {
      await tx.query('INSERT INTO t (id) VALUES (10)');
      await tx.query('INSERT INTO t (id) VALUES (11)');
      return 'done';
    });
    expect(out).toBe('done');
    const thrown = await thread
      .transaction(async (tx) => {
        await tx.query('INSERT INTO t (id) VALUES (12)');
        throw new Error('changed my mind');
      })
      .catch((e: unknown) => e);
    expect(thrown).toMatchObject({ message: 'changed my mind' });
    // A statement failing inside: the whole transaction is gone, the error is the database's.
    const failed = await thread
      .transaction(async (tx) => {
        await tx.query('INSERT INTO t (id) VALUES (13)');
        await tx.query('INSERT INTO t (id) VALUES (10)');
      })
      .catch((e: unknown) => e);
    expect(failed).toMatchObject({ code: '23505' });
    const ids = await thread.query<{ id: number }>('SELECT id FROM t WHERE id >= 10 ORDER BY id');
    expect(ids.map((r) => r.id)).toEqual([10, 11]);
  });

  it('serialises transactions: two at once both commit, one after the other', async () => {
    await Promise.all(
      [20, 30].map((base) =>
        thread.transaction(async (tx) => {
          const [{ n }] = (await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM t')) as [
            { n: number },
          ];
          await tx.query('INSERT INTO t (id) VALUES ($1)', [base + n]);
        }),
      ),
    );
    const [{ n }] = (await thread.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM t WHERE id >= 20',
    )) as [{ n: number }];
    expect(n).toBe(2);
  });

  it('delivers NOTIFY to a listener until it unsubscribes', async () => {
    const seen: string[] = [];
    const off = await thread.listen(
      'changes',
      (p) => seen.push(p),
      () => undefined,
    );
    await thread.query("SELECT pg_notify('changes', 'one')");
    await waitFor(() => seen.includes('one'), { what: 'the notice', timeoutMs: 5000 });
    await off();
    await thread.query("SELECT pg_notify('changes', 'two')");
    await thread.query('SELECT 1'); // the thread answers in order: a notice for 'two' would be here by now
    expect(seen).toEqual(['one']);
  });

  it("keeps the calling thread's event loop turning while a statement runs", async () => {
    const heavy = 'SELECT count(*) FROM generate_series(1, 3000000)';
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const started = Date.now();
    try {
      await thread.query(heavy);
    } finally {
      clearInterval(timer);
    }
    const elapsed = Date.now() - started;
    // At least a few hundred ms of database work; the timer fired through it (in the calling thread it
    // could not fire once until the statement ended).
    expect(elapsed).toBeGreaterThan(100);
    expect(ticks).toBeGreaterThan(elapsed / 5 / 4);
  });

  it('refuses calls once closed, with ERR_AUDIT_STORE', async () => {
    const sql = await openPglite(null, { thread: true });
    await sql.close();
    await expect(sql.query('SELECT 1')).rejects.toMatchObject({ code: 'ERR_AUDIT_STORE' });
  });

  it('keeps what it stored in a data directory across a close and a reopen', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pglite-thread-'));
    try {
      const sql = await openPglite(join(dir, 'db'), { thread: true });
      await sql.exec('CREATE TABLE kept (v text)');
      await sql.query("INSERT INTO kept VALUES ('x')");
      await sql.close();
      const again = await openPglite(join(dir, 'db'), { thread: true });
      expect(await again.query('SELECT v FROM kept')).toEqual([{ v: 'x' }]);
      await again.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
