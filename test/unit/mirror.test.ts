// The generic mirror of fleet state (fleet/mirror.ts), against a source whose reads the test finishes
// by hand: bursts of notices coalesce into one read, a read never overlaps another, a late read never
// overwrites what this process wrote after the read began, a failed read makes the next one load
// everything, and SharedState drives it — a notice naming a record reloads that record, a lost LISTEN
// connection reloads everything.
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { Mirror, type MirrorSource } from '../../fleet/mirror.ts';
import { SharedState } from '../../fleet/shared-state.ts';
import type { Sql } from '../../store/sql.ts';
import { waitFor } from '../support/wait.ts';

type Rows = [string, number][];

interface PendingRead {
  keys: readonly string[] | 'all';
  answer(rows: Rows): void;
  fail(err: Error): void;
}

/** A source whose reads stay open until the test answers them. */
class ManualSource implements MirrorSource<string, number> {
  readonly reads: PendingRead[] = [];
  active = 0;
  maxActive = 0;

  loadAll(): Promise<Rows> {
    return this.open('all');
  }

  loadSome(keys: readonly string[]): Promise<Rows> {
    return this.open([...keys].sort());
  }

  private open(keys: PendingRead['keys']): Promise<Rows> {
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    return new Promise<Rows>((resolve, reject) => {
      const done = () => this.active--;
      this.reads.push({
        keys,
        answer: (rows) => {
          done();
          resolve(rows);
        },
        fail: (err) => {
          done();
          reject(err);
        },
      });
    });
  }

  /** The read started `n`th (0-based), once it has started. */
  async read(n: number): Promise<PendingRead> {
    await waitFor(() => this.reads.length > n, {
      what: `read ${n} to start`,
      timeoutMs: 1000,
      intervalMs: 1,
    });
    return this.reads[n]!;
  }
}

const entries = (m: Mirror<string, number>, keys: string[]) => keys.map((k) => [k, m.get(k)]);

describe('Mirror', () => {
  it('loads everything, then reloads one record; a record missing from the answer is dropped', async () => {
    const source = new ManualSource();
    const changes: [string, number | undefined, number | undefined][] = [];
    const mirror = new Mirror(source, (k, v, prev) => changes.push([k, v, prev]));
    const loaded = mirror.reloadAll();
    (await source.read(0)).answer([
      ['a', 1],
      ['b', 1],
    ]);
    await loaded;
    expect([...mirror.values()]).toEqual([1, 1]);

    const one = mirror.reload(['a', 'b']);
    (await source.read(1)).answer([['a', 2]]);
    await one;
    expect(source.reads[1]!.keys).toEqual(['a', 'b']);
    expect(entries(mirror, ['a', 'b'])).toEqual([
      ['a', 2],
      ['b', undefined],
    ]);
    expect(changes).toEqual([
      ['a', 1, undefined],
      ['b', 1, undefined],
      ['b', undefined, 1],
      ['a', 2, 1],
    ]);
  });

  it('coalesces a burst: reads never overlap, and the calls made during one share the next read', async () => {
    const source = new ManualSource();
    const mirror = new Mirror(source);
    const first = mirror.reload(['a']);
    const burst = ['b', 'c', 'd', 'b', 'e'].map((k) => mirror.reload([k]));
    (await source.read(0)).answer([['a', 1]]);
    await first;
    const second = await source.read(1);
    // One read for the whole burst, started after the first ended.
    expect(second.keys).toEqual(['b', 'c', 'd', 'e']);
    expect(source.maxActive).toBe(1);
    second.answer([
      ['b', 1],
      ['e', 1],
    ]);
    await Promise.all(burst);
    expect(source.reads).toHaveLength(2);
    expect(mirror.size).toBe(3);
  });

  it('a reload of everything requested during a burst covers the named records too', async () => {
    const source = new ManualSource();
    const mirror = new Mirror(source);
    const first = mirror.reloadAll();
    const more = [mirror.reload(['x']), mirror.reloadAll(), mirror.reload(['y'])];
    (await source.read(0)).answer([]);
    await first;
    (await source.read(1)).answer([['x', 1]]);
    await Promise.all(more);
    expect(source.reads.map((r) => r.keys)).toEqual(['all', 'all']);
    expect(mirror.get('x')).toBe(1);
  });

  it('ignores what a late read says about a record this process wrote while it was in flight', async () => {
    const source = new ManualSource();
    const mirror = new Mirror(source);
    const loaded = mirror.reloadAll();
    (await source.read(0)).answer([
      ['spent', 1],
      ['kept', 1],
    ]);
    await loaded;

    const reload = mirror.reloadAll();
    const late = await source.read(1);
    // Written and committed here after the read began: the read holds the older state.
    mirror.set('spent', undefined);
    mirror.set('new', 5);
    late.answer([
      ['spent', 1],
      ['kept', 2],
    ]);
    await reload;
    expect(entries(mirror, ['spent', 'kept', 'new'])).toEqual([
      ['spent', undefined],
      ['kept', 2],
      ['new', 5],
    ]);

    // The next read is not late: it began after the writes, so it wins.
    const next = mirror.reload(['spent']);
    (await source.read(2)).answer([['spent', 3]]);
    await next;
    expect(mirror.get('spent')).toBe(3);
  });

  it('a failed read is reported to its callers, and the next call loads everything', async () => {
    const source = new ManualSource();
    const mirror = new Mirror(source);
    const failing = mirror.reload(['a']);
    (await source.read(0)).fail(new Error('store down'));
    await expect(failing).rejects.toThrow('store down');
    const retry = mirror.reload(['b']);
    (await source.read(1)).answer([['a', 1]]);
    await retry;
    expect(source.reads[1]!.keys).toBe('all');
    expect(mirror.get('a')).toBe(1);
  });

  it('without loadSome, a reload of named records loads everything', async () => {
    let reads = 0;
    const mirror = new Mirror<string, number>({
      loadAll: async () => {
        reads++;
        return [['only', reads]];
      },
    });
    await mirror.reload(['anything']);
    expect(mirror.get('only')).toBe(1);
    expect(reads).toBe(1);
  });
});

/** The LISTEN side of a Sql, driven by the test; nothing else of it is used by SharedState here. */
function listeningSql() {
  const channel: { notice?: (payload: string) => void; resync?: () => void } = {};
  const sql = {
    engine: 'postgres',
    sharesThread: false,
    listen: async (_name: string, onNotice: (payload: string) => void, onResync: () => void) => {
      channel.notice = onNotice;
      channel.resync = onResync;
      return async () => undefined;
    },
  } as unknown as Sql;
  return { sql, channel };
}

describe('SharedState.follow', () => {
  it('reloads the named record on its notice, everything on a bare notice and after a lost connection', async () => {
    const { sql, channel } = listeningSql();
    const state = await SharedState.open(sql, 'node-1', pino({ level: 'silent' }));
    const source = new ManualSource();
    const mirror = new Mirror(source);
    state.follow('approval', mirror);

    channel.notice!(JSON.stringify({ kind: 'approval', origin: 'node-2', id: 'r1' }));
    (await source.read(0)).answer([['r1', 1]]);
    channel.notice!(JSON.stringify({ kind: 'revocations', origin: 'node-2' }));
    channel.notice!(JSON.stringify({ kind: 'approval', origin: 'node-2' }));
    (await source.read(1)).answer([['r1', 1]]);
    channel.resync!();
    (await source.read(2)).answer([]);
    await waitFor(() => mirror.size === 0, { what: 'the resync to apply', timeoutMs: 1000, intervalMs: 1 });

    expect(source.reads.map((r) => r.keys)).toEqual([['r1'], 'all', 'all']);
    expect(state.status()).toMatchObject({ notices: 3, resyncs: 1 });
  });
});
