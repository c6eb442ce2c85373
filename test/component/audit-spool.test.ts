// The decision spool and shipper: group commit (many appends, few fsyncs), a torn last line after a
// crash, and a store outage — the spool grows, nothing is lost, and everything ships exactly once.
import { randomUUID } from 'node:crypto';
import { appendFile, mkdtemp, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { maskInput, maskResult, REDACTED, SpoolRecorder } from '../../audit/recorder.ts';
import type { DecisionRecord } from '../../audit/records.ts';
import { Shipper } from '../../audit/shipper.ts';
import { type AppendHandle, Spool, syncDirectory } from '../../audit/spool.ts';
import { type AuditStore, openAuditStore } from '../../audit/store.ts';
import type { DecisionEvent } from '../../contracts/decision.ts';
import { waitFor } from '../support/wait.ts';

const silent = pino({ level: 'silent' });

function record(i: number): DecisionRecord {
  return {
    decision_id: randomUUID(),
    request_id: `req-${i}`,
    time: new Date().toISOString(),
    route_id: 'demo/0',
    target: 'demo',
    method: 'GET',
    host: 'h',
    path: `/demo/${i}`,
    subject: 'alice',
    issuer: 'iss',
    actor: null,
    decision: 'allow',
    http_status: 200,
    reason: 'ok',
    reason_code: 'ALLOWED',
    policy_revision: 'r',
    latency_us: 1,
    input: null,
    result: null,
  };
}

/** A store whose inserts fail while `down` is true: the outage of a real database, at the interface. */
function flaky(store: AuditStore): AuditStore & { down: boolean } {
  const wrapper = Object.create(store) as AuditStore & { down: boolean };
  wrapper.down = false;
  wrapper.insertDecisions = (batch) => {
    if (wrapper.down) return Promise.reject(new Error('connection refused'));
    return store.insertDecisions(batch);
  };
  return wrapper;
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chaperone-spool-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A real segment file whose datasync calls are counted, and fail while `failing` is set. */
function countingDisk() {
  const disk = { datasyncs: 0, failing: false, writesBeforeFailure: 0 };
  const openForAppend = async (path: string): Promise<AppendHandle> => {
    const fh = await open(path, 'a');
    return {
      write: ((...args: Parameters<typeof fh.write>) => fh.write(...args)) as AppendHandle['write'],
      datasync: async () => {
        disk.datasyncs++;
        if (disk.failing) throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
        return fh.datasync();
      },
      truncate: (len) => fh.truncate(len),
      close: () => fh.close(),
    };
  };
  return { disk, openForAppend };
}

describe('spool', () => {
  it('group-commits concurrent appends: every promise resolves after its fsync, far fewer fsyncs', async () => {
    const { disk, openForAppend } = countingDisk();
    const perFsync: number[] = [];
    const spool = await Spool.open({ dir, openForAppend, onFsync: (n) => perFsync.push(n) });
    const done = new Set<number>();
    await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        spool.append(record(i)).then(() => {
          // Resolved only once a datasync covering it has returned.
          expect(disk.datasyncs).toBeGreaterThan(0);
          done.add(i);
        }),
      ),
    );
    expect(done.size).toBe(100);
    expect(perFsync.reduce((a, b) => a + b, 0)).toBe(100);
    expect(disk.datasyncs).toBe(perFsync.length);
    expect(disk.datasyncs).toBeLessThanOrEqual(5);
    const { records } = await spool.read(await spool.readAck(), 1000);
    expect(records).toHaveLength(100);
    expect(spool.stats()).toMatchObject({ appended: 100, pending: 100 });
    await spool.close();
  });

  it('rejects the appends of a failed fsync, cuts their bytes off, and keeps going', async () => {
    const { disk, openForAppend } = countingDisk();
    const spool = await Spool.open({ dir, openForAppend });
    await spool.append(record(1));
    disk.failing = true;
    const failed = await Promise.allSettled([spool.append(record(2)), spool.append(record(3))]);
    expect(failed.map((f) => f.status)).toEqual(['rejected', 'rejected']);
    expect((failed[0] as PromiseRejectedResult).reason).toMatchObject({ code: 'ERR_SPOOL_IO' });
    disk.failing = false;
    await spool.append(record(4));
    const { records, bad } = await spool.read(await spool.readAck(), 100);
    expect(bad).toBe(0);
    // Only what was acknowledged as durable: the failed batch's bytes are gone from the file too.
    expect(records.map((r) => (r as DecisionRecord).request_id)).toEqual(['req-1', 'req-4']);
    expect(spool.stats()).toMatchObject({ appended: 2, pending: 2, broken: false });
    await spool.close();
  });

  it('cuts a torn last line at open and keeps every complete record', async () => {
    const spool = await Spool.open({ dir });
    await spool.append(record(1));
    await spool.append(record(2));
    await spool.close();
    const probe = await Spool.open({ dir });
    const [segment] = await probe.segments();
    await probe.close();
    const file = join(dir, `${String(segment).padStart(10, '0')}.jsonl`);
    await appendFile(file, '{"decision_id":"torn-by-a-cra'); // a crash mid-write
    const reopened = await Spool.open({ dir });
    expect(reopened.stats().pending).toBe(2); // counted from disk at open: the torn line is not one
    await reopened.append(record(3));
    const { records, bad } = await reopened.read(await reopened.readAck(), 100);
    expect(bad).toBe(0);
    expect(records.map((r) => (r as DecisionRecord).request_id)).toEqual(['req-1', 'req-2', 'req-3']);
    expect(await readFile(file, 'utf8')).not.toContain('torn');
    await reopened.close();
  });

  it('reads a record larger than its read chunk instead of stalling on it', async () => {
    const spool = await Spool.open({ dir });
    const big = { ...record(1), input: { blob: 'x'.repeat(3 * 1024 * 1024) } };
    await spool.append(big);
    await spool.append(record(2));
    const first = await spool.read(await spool.readAck(), 1);
    expect((first.records[0] as DecisionRecord).input).toEqual(big.input);
    const second = await spool.read(first.next, 10);
    expect(second.records.map((r) => (r as DecisionRecord).request_id)).toEqual(['req-2']);
    await spool.ack(second.next, 2);
    expect(spool.stats().pending).toBe(0);
    expect((await spool.read(second.next, 10)).records).toEqual([]);
    await spool.close();
  });

  it('masks credentials out of stored inputs without touching the live input', () => {
    const input = {
      attributes: {
        request: {
          http: {
            path: '/x?access_token=abc',
            headers: { authorization: 'Bearer eyJsecret', cookie: 's=1', 'x-api-key': 'k', accept: 'json' },
            rawBody: 'AAAA',
          },
        },
      },
      parsed_query: { access_token: ['abc'], q: ['ok'] },
    };
    const masked = maskInput(input) as typeof input;
    expect(JSON.stringify(masked)).not.toMatch(/eyJsecret|s=1|"k"|abc/);
    expect(masked.attributes.request.http.headers.accept).toBe('json');
    expect(masked.parsed_query.q).toEqual(['ok']);
    expect(input.attributes.request.http.headers.authorization).toBe('Bearer eyJsecret');
  });

  it('masks tokens wherever they appear: custom headers, bodies, claims, query strings, policy headers', () => {
    const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';
    const input = {
      attributes: {
        request: {
          http: {
            path: '/x',
            query: 'q=1&client_secret=s3cr3t&page=2',
            headers: {
              'X-Agent-Token': jwt,
              'x-custom-auth': 'opaque-value',
              'x-upstream': 'Basic dXNlcjpwYXNz',
              accept: 'application/json',
            },
          },
        },
      },
      parsed_body: {
        user: 'alice',
        password: 'hunter2',
        nested: { refresh_token: 'r1', note: 'token limit' },
      },
      identity: { subject: 'alice', claims: { sub: 'alice', upstream_token: `Bearer ${jwt}` } },
    };
    const masked = maskInput(input, ['X-Custom-Auth']) as typeof input;
    const text = JSON.stringify(masked);
    for (const secret of [jwt, 'opaque-value', 'dXNlcjpwYXNz', 's3cr3t', 'hunter2', '"r1"']) {
      expect(text).not.toContain(secret);
    }
    expect(masked.attributes.request.http.query).toBe('q=1&client_secret=%5Bredacted%5D&page=2');
    expect(masked.parsed_body).toEqual({
      user: 'alice',
      password: REDACTED,
      nested: { refresh_token: REDACTED, note: 'token limit' },
    });
    expect(masked.identity.claims.sub).toBe('alice');
    expect(masked.attributes.request.http.headers.accept).toBe('application/json');
    expect(JSON.stringify(input)).toContain('hunter2'); // the live input is untouched

    const result = maskResult({ allowed: true, headers: { Authorization: 'k', 'x-ok': 'v' } }) as {
      headers: Record<string, string>;
    };
    expect(result.headers).toEqual({ Authorization: REDACTED, 'x-ok': 'v' });
  });

  it('SpoolRecorder spools the masked decision and resolves only once it is durable', async () => {
    const fsyncs: number[] = [];
    const spool = await Spool.open({ dir, onFsync: (n) => fsyncs.push(n) });
    const recorder = new SpoolRecorder(spool, { extraSecretHeaders: ['x-agent-token'] });
    const event: DecisionEvent = {
      decisionId: randomUUID(),
      requestId: 'req-x',
      time: new Date(),
      routeId: 'demo/0',
      target: 'demo',
      method: 'GET',
      host: 'demo.local',
      path: '/demo',
      subject: 'alice',
      issuer: 'iss',
      actor: null,
      verdict: {
        decision: 'allow',
        httpStatus: 200,
        reason: 'ok',
        reasonCode: 'ALLOWED',
      } as DecisionEvent['verdict'],
      policyRevision: 'r1',
      latencyUs: 10,
      input: { attributes: { request: { http: { path: '/demo', headers: { 'x-agent-token': 'raw' } } } } },
      result: { allowed: true },
    };
    await recorder.record(event);
    expect(fsyncs).toEqual([1]);
    const { records } = await spool.read(await spool.readAck(), 10);
    const stored = records[0] as DecisionRecord;
    expect(stored).toMatchObject({
      decision_id: event.decisionId,
      decision: 'allow',
      reason_code: 'ALLOWED',
    });
    expect(JSON.stringify(stored)).not.toContain('"raw"');
    await spool.close();
  });
});

describe('spool directory durability and modes', () => {
  /** The spool's file-system calls, in order, through its injectable open and directory sync. */
  function observed(events: string[], o: { failSyncAfter?: number } = {}) {
    let syncs = 0;
    return {
      openForAppend: async (path: string): Promise<AppendHandle> => {
        const name = path.slice(path.lastIndexOf('/') + 1);
        events.push(`create ${name}`);
        const fh = await open(path, 'a', 0o600);
        return {
          write: ((...args: Parameters<AppendHandle['write']>) => {
            events.push(`write ${name}`);
            return (fh.write as (...a: unknown[]) => ReturnType<AppendHandle['write']>)(...args);
          }) as AppendHandle['write'],
          datasync: () => fh.datasync(),
          truncate: (n?: number) => fh.truncate(n),
          close: () => fh.close(),
        };
      },
      syncDir: async (d: string) => {
        syncs++;
        if (o.failSyncAfter !== undefined && syncs > o.failSyncAfter)
          throw new Error('EIO on directory fsync');
        events.push('sync dir');
        await syncDirectory(d);
      },
    };
  }

  it('fsyncs the directory after creating a segment (before writing to it), renaming the ack and deleting segments', async () => {
    const events: string[] = [];
    const spool = await Spool.open({ dir, segmentBytes: 200, ...observed(events) });
    expect(events).toEqual(['create 0000000001.jsonl', 'sync dir']);
    // Each record fills its segment past 200 bytes, so a new segment is created after each write; the
    // next write goes there only once the new name is durable.
    await spool.append(record(1));
    await spool.append(record(2));
    await waitFor(() => events.length === 8, { what: 'the third segment' });
    expect(events).toEqual([
      'create 0000000001.jsonl',
      'sync dir',
      'write 0000000001.jsonl',
      'create 0000000002.jsonl',
      'sync dir',
      'write 0000000002.jsonl',
      'create 0000000003.jsonl',
      'sync dir',
    ]);
    events.length = 0;
    const { next } = await spool.read(await spool.readAck(), 10);
    await spool.ack(next, 2); // renames ack.json into place, deletes segments 1 and 2
    expect(events).toEqual(['sync dir', 'sync dir']);
    expect((await readdir(dir)).sort()).toEqual(['0000000003.jsonl', 'ack.json']);
    await spool.close();
  });

  it('fails closed when the directory cannot be synced: no append is acknowledged after it', async () => {
    const events: string[] = [];
    await expect(Spool.open({ dir, ...observed(events, { failSyncAfter: 0 }) })).rejects.toThrow(/EIO/);
    const spool = await Spool.open({ dir, segmentBytes: 200, ...observed(events, { failSyncAfter: 1 }) });
    await spool.append(record(1)); // durable in segment 1; creating segment 2 then fails to sync
    await waitFor(() => spool.stats().broken, { what: 'the spool to refuse appends' });
    await expect(spool.append(record(2))).rejects.toThrow(/unusable/);
    await spool.close();
  });

  it('creates its directory 0700 and every file 0600, whatever the umask', async () => {
    const before = process.umask(0o000);
    try {
      const spoolDir = join(dir, 'spool');
      const spool = await Spool.open({ dir: spoolDir });
      await spool.append(record(1));
      const { next } = await spool.read(await spool.readAck(), 10);
      await spool.ack(next, 1);
      await spool.close();
      expect((await stat(spoolDir)).mode & 0o777).toBe(0o700);
      for (const f of await readdir(spoolDir))
        expect([f, (await stat(join(spoolDir, f))).mode & 0o777]).toEqual([f, 0o600]);
      expect((await readdir(spoolDir)).sort()).toEqual(['0000000001.jsonl', 'ack.json']);
    } finally {
      process.umask(before);
    }
  });
});

describe('shipper', () => {
  it('keeps decisions spooled while the store is down and ships each exactly once when it returns', async () => {
    const real = await openAuditStore({});
    await real.migrate();
    const store = flaky(real);
    const spool = await Spool.open({ dir, segmentBytes: 4096 }); // small segments: rotation is exercised
    const shipper = new Shipper(spool, store, silent, { maxBackoffMs: 100 });
    shipper.start();

    await Promise.all(Array.from({ length: 20 }, (_, i) => spool.append(record(i))));
    await waitFor(async () => (await real.lastSeq()) === 20, { what: 'the first 20 decisions' });

    store.down = true;
    await Promise.all(Array.from({ length: 80 }, (_, i) => spool.append(record(20 + i))));
    await waitFor(() => shipper.stats().failures > 0, { what: 'a failed shipment' });
    expect(await real.lastSeq()).toBe(20);
    expect(await spool.pendingBytes()).toBeGreaterThan(0);

    expect(shipper.stats()).toMatchObject({ spooled: 100, shipped: 20, pending: 80 });
    expect(shipper.stats().lastError).toMatch(/connection refused/);

    store.down = false;
    expect(await shipper.flush(10_000)).toBe(true);
    expect(shipper.stats()).toMatchObject({ spooled: 100, shipped: 100, pending: 0, lastError: null });
    expect(await real.lastSeq()).toBe(100);
    const all = await real.decisionsAfter(0, 1000);
    expect(new Set(all.map((r) => r.request_id)).size).toBe(100);
    expect(all.map((r) => r.request_id)).toEqual(Array.from({ length: 100 }, (_, i) => `req-${i}`));
    expect(await real.verifyChain()).toEqual({ ok: true, count: 100 });
    expect((await spool.segments()).length).toBeLessThanOrEqual(2); // shipped segments are deleted

    await shipper.stop();
    await spool.close();
    await real.close();
  });

  it('gathers decisions that trickle in into batches (lingerMs)', async () => {
    const store = await openAuditStore({});
    await store.migrate();
    const spool = await Spool.open({ dir });
    const shipper = new Shipper(spool, store, silent, { lingerMs: 150, batchSize: 50 });
    shipper.start();
    // One decision every ~5 ms: shipping on every append would make about one batch each.
    for (let i = 0; i < 100; i++) {
      await spool.append(record(i));
      await new Promise((r) => setTimeout(r, 5));
    }
    await waitFor(async () => (await store.lastSeq()) === 100, { what: 'every trickled decision' });
    expect(shipper.stats().batches).toBeLessThan(25);
    expect(await store.verifyChain()).toEqual({ ok: true, count: 100 });
    await shipper.stop();
    await spool.close();
    await store.close();
  });

  it('ships a full batch at once, however long the linger', async () => {
    const store = await openAuditStore({});
    await store.migrate();
    const spool = await Spool.open({ dir });
    const shipper = new Shipper(spool, store, silent, { lingerMs: 10 * 60_000, batchSize: 50 });
    shipper.start();
    // The start's run is over before anything is appended: a run that overlapped the appends would ship
    // part of them as a short batch, and the rest would rightly wait for the linger.
    expect(await shipper.flush(5_000)).toBe(true);
    await Promise.all(Array.from({ length: 20 }, (_, i) => spool.append(record(i))));
    expect(shipper.stats()).toMatchObject({ pending: 20, shipped: 0 }); // lingering, durable in the spool
    await Promise.all(Array.from({ length: 30 }, (_, i) => spool.append(record(20 + i))));
    await waitFor(async () => (await store.lastSeq()) === 50, { what: 'the full batch', timeoutMs: 20_000 });
    // Shutdown does not wait for the linger either.
    await spool.append(record(50));
    expect(await shipper.flush(10_000)).toBe(true);
    expect(await store.lastSeq()).toBe(51);
    await shipper.stop();
    await spool.close();
    await store.close();
  });

  it('resends after a crash between store and ack without duplicating', async () => {
    const store = await openAuditStore({});
    await store.migrate();
    const spool = await Spool.open({ dir });
    await Promise.all(Array.from({ length: 5 }, (_, i) => spool.append(record(i))));
    const { records } = await spool.read(await spool.readAck(), 100);
    await store.insertDecisions(records as DecisionRecord[]); // stored, but the ack never written
    const shipper = new Shipper(spool, store, silent);
    expect(await shipper.flush()).toBe(true);
    expect(await store.lastSeq()).toBe(5);
    await shipper.stop();
    await spool.close();
    await store.close();
  });

  it('sets aside a record the store refuses as data, and ships the others behind it', async () => {
    const store = await openAuditStore({});
    await store.migrate();
    const spool = await Spool.open({ dir });
    const shipper = new Shipper(spool, store, silent);
    const poison = { ...record(1), http_status: 1e12 }; // beyond INTEGER: SQLSTATE 22003, on every retry
    const foreign = { hello: 'not a decision' };
    await Promise.all([
      spool.append(record(0)),
      spool.append(poison),
      spool.append(foreign),
      spool.append(record(2)),
    ]);
    expect(await shipper.flush(5_000)).toBe(true);
    expect((await store.decisionsAfter(0)).map((r) => r.request_id)).toEqual(['req-0', 'req-2']);
    expect(shipper.stats()).toMatchObject({ shipped: 2, rejected: 2, pending: 0 });
    const rejected = (await readFile(join(dir, 'rejected.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rejected.map((r) => r.record)).toEqual([foreign, poison]);
    await shipper.stop();
    await spool.close();
    await store.close();
  });
});

describe('signed checkpoints', () => {
  it('pin the chain: a rewrite that recomputes every hash is still caught', async () => {
    const { AgentKeys } = await import('../../fleet/agent-keys.ts');
    const { chainHash } = await import('../../audit/records.ts');
    const { TrustedKeys } = await import('../../audit/checkpoints.ts');
    const { verifyTrail } = await import('../../audit/verify.ts');
    const signer = await AgentKeys.open(null);
    const trust = new TrustedKeys(signer.pinnedJwks());
    const store = await openAuditStore({});
    await store.migrate();
    store.signBatches({ signer });
    const spool = await Spool.open({ dir });
    const shipper = new Shipper(spool, store, silent, { batchSize: 5 });
    await Promise.all(Array.from({ length: 12 }, (_, i) => spool.append(record(i))));
    expect(await shipper.flush()).toBe(true);
    const last = await store.lastCheckpoint();
    expect(last?.seq).toBe(12);
    // One checkpoint per committed batch (5 + 5 + 2), tiling the chain.
    expect((await store.checkpointsAfter('decisions', 0)).map((c) => [c.prev_seq, c.seq])).toEqual([
      [0, 5],
      [5, 10],
      [10, 12],
    ]);
    expect(await verifyTrail(store, { trust })).toMatchObject({ ok: true, count: 12, checkpoints: 3 });

    // The attacker edits record 7 and recomputes every later hash, so the links verify again…
    const sql = (store as unknown as { sql: { query(t: string, p?: unknown[]): Promise<unknown> } }).sql;
    const rows = await store.decisionsAfter(0, 100);
    let prev = rows[5]!.hash;
    for (const r of rows.slice(6)) {
      const changed = r.seq === 7 ? { ...r, reason: 'nothing to see' } : r;
      const hash = chainHash(prev, r.seq, changed);
      await sql.query('UPDATE decisions SET reason = $1, prev_hash = $2, hash = $3 WHERE seq = $4', [
        changed.reason,
        prev,
        hash,
        r.seq,
      ]);
      prev = hash;
    }
    expect(await store.verifyChain()).toMatchObject({ ok: true }); // links alone cannot tell
    // …but not the signed checkpoint of the batch holding it.
    expect(await verifyTrail(store, { trust })).toMatchObject({
      ok: false,
      firstBadSeq: 6, // the batch 6..10 holds the edit; the checkpoint at 5 still vouches for 1..5
      reason: expect.stringMatching(/rewritten: records 6\.\.10 /),
    });
    await shipper.stop();
    await spool.close();
    await store.close();
  });
});
