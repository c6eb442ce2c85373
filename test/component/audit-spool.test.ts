// The decision spool and shipper: group commit (many appends, few fsyncs), a torn last line after a
// crash, and a store outage — the spool grows, nothing is lost, and everything ships exactly once.
import { randomUUID } from 'node:crypto';
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { maskInput } from '../../control-plane/audit/recorder.ts';
import type { DecisionRecord } from '../../control-plane/audit/records.ts';
import { Shipper } from '../../control-plane/audit/shipper.ts';
import { Spool } from '../../control-plane/audit/spool.ts';
import { type AuditStore, openAuditStore } from '../../control-plane/audit/store.ts';
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

describe('spool', () => {
  it('group-commits concurrent appends: every promise resolves after its fsync, far fewer fsyncs', async () => {
    const fsyncs: number[] = [];
    const spool = await Spool.open({ dir, onFsync: (n) => fsyncs.push(n) });
    await Promise.all(Array.from({ length: 200 }, (_, i) => spool.append(record(i))));
    expect(fsyncs.reduce((a, b) => a + b, 0)).toBe(200);
    expect(fsyncs.length).toBeLessThan(20);
    const { records } = await spool.read(await spool.readAck(), 1000);
    expect(records).toHaveLength(200);
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
    await reopened.append(record(3));
    const { records, bad } = await reopened.read(await reopened.readAck(), 100);
    expect(bad).toBe(0);
    expect(records.map((r) => (r as DecisionRecord).request_id)).toEqual(['req-1', 'req-2', 'req-3']);
    expect(await readFile(file, 'utf8')).not.toContain('torn');
    await reopened.close();
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

    store.down = false;
    expect(await shipper.flush(10_000)).toBe(true);
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
});

describe('signed checkpoints', () => {
  it('pin the chain: a rewrite that recomputes every hash is still caught', async () => {
    const { AgentKeys } = await import('../../control-plane/agents/agent-keys.ts');
    const { chainHash } = await import('../../control-plane/audit/records.ts');
    const signer = await AgentKeys.open(null);
    const store = await openAuditStore({});
    await store.migrate();
    const spool = await Spool.open({ dir });
    const shipper = new Shipper(spool, store, silent, { signer, checkpointEvery: 5 });
    await Promise.all(Array.from({ length: 12 }, (_, i) => spool.append(record(i))));
    expect(await shipper.flush()).toBe(true);
    const last = await store.lastCheckpoint();
    expect(last?.seq).toBe(12);
    expect(await store.verifyChain({ jwks: signer.jwks() })).toMatchObject({ ok: true, count: 12 });

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
    // …but not the signed checkpoint.
    expect(await store.verifyChain({ jwks: signer.jwks() })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/rewritten/),
    });
    await shipper.stop();
    await spool.close();
    await store.close();
  });
});
