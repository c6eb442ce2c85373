// Moves spooled decisions into the audit store, in order, in batches. Idempotent by decision id, so a
// crash between "stored" and "acknowledged" only resends what the store already has. When the store
// is down the spool simply grows; the shipper retries with backoff and catches up when it returns.
// Each batch is committed with its signed checkpoint when the store signs (AuditStore.signBatches).
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { DecisionRecord } from './records.ts';
import type { Spool } from './spool.ts';
import type { AuditStore } from './store.ts';

export interface ShipperStats {
  /** Records made durable in the spool since start. */
  spooled: number;
  /** Durable records not yet in the store. */
  pending: number;
  /** Records stored by this shipper (resends the store already had are not counted twice). */
  shipped: number;
  /** Records the store refused as data (not an outage), set aside in `<spool dir>/rejected.jsonl`. */
  rejected: number;
  batches: number;
  failures: number;
  lastError: string | null;
  lastShippedAt: string | null;
}

export class Shipper {
  private timer: NodeJS.Timeout | null = null;
  private timerDue = 0;
  private running: Promise<void> | null = null;
  private stopped = false;
  private backoffMs = 0;
  private unsubscribe: (() => void) | null = null;
  private readonly statsValue: Omit<ShipperStats, 'spooled' | 'pending'> = {
    shipped: 0,
    rejected: 0,
    batches: 0,
    failures: 0,
    lastError: null,
    lastShippedAt: null,
  };

  constructor(
    private readonly spool: Spool,
    private readonly store: AuditStore,
    private readonly logger: Logger,
    private readonly o: {
      batchSize?: number;
      idleMs?: number;
      maxBackoffMs?: number;
      /**
       * How long new records may wait in the spool (where they are durable already) for more to join
       * their batch; a full batch goes at once. Each batch costs the same fixed work whatever its size —
       * reading the spool, a transaction, a signed checkpoint, the acknowledgement and the anchor, each
       * fsynced — so at a few hundred decisions per second one-record batches cost several times the
       * records themselves. Default 0: ship on every append.
       */
      lingerMs?: number;
    } = {},
  ) {}

  start(): void {
    this.unsubscribe = this.spool.onAppend(() => this.kick(this.lingerFor()));
    this.kick();
  }

  /** No wait once a full batch is pending. */
  private lingerFor(): number {
    return this.spool.stats().pending >= (this.o.batchSize ?? 500) ? 0 : (this.o.lingerMs ?? 0);
  }

  stats(): ShipperStats {
    const spool = this.spool.stats();
    return { spooled: spool.appended, pending: spool.pending, ...this.statsValue };
  }

  /** Schedules a run soon (coalesced: an earlier wake-up replaces a later one, never the reverse). */
  private kick(delay = 0): void {
    if (this.stopped) return;
    const due = Date.now() + Math.max(delay, this.backoffMs);
    if (this.timer) {
      if (due >= this.timerDue) return;
      clearTimeout(this.timer);
    }
    this.timerDue = due;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        // A run in progress may have read the spool before what woke us became durable (its last,
        // empty read): dropping this wake-up would strand those records until the next append.
        const again = () => this.kick(this.lingerFor());
        if (this.running) void this.running.then(again, again);
        else this.running = this.runOnce().finally(() => (this.running = null));
      },
      Math.max(delay, this.backoffMs),
    );
  }

  /** Ships until the spool is empty or the store fails; returns whether everything was shipped. */
  private async runOnce(): Promise<void> {
    const batchSize = this.o.batchSize ?? 500;
    for (;;) {
      const from = await this.spool.readAck();
      const { records, next, bad } = await this.spool.read(from, batchSize);
      if (bad > 0) this.logger.error({ bad }, 'audit spool: unreadable lines skipped');
      if (records.length === 0) {
        if (next.segment !== from.segment || next.offset !== from.offset) await this.spool.ack(next, bad);
        this.backoffMs = 0;
        return;
      }
      // Set-aside records are written again if an outage makes this batch retry: rejected.jsonl may
      // repeat a record, never miss one.
      const good = await this.setAsideMalformed(records);
      let stored: number;
      try {
        stored = await this.store.insertDecisions(good);
      } catch (err) {
        if (!isDataError(err)) {
          this.failed(err);
          return;
        }
        // One record the store will never take must not hold back every record after it.
        try {
          stored = await this.shipOneByOne(good);
        } catch (err2) {
          this.failed(err2);
          return;
        }
      }
      await this.spool.ack(next, records.length + bad);
      this.backoffMs = 0;
      this.statsValue.shipped += stored;
      this.statsValue.batches++;
      this.statsValue.lastError = null;
      this.statsValue.lastShippedAt = new Date().toISOString();
      // A short batch emptied the spool as it was: what arrived since waits for the linger to gather
      // more (the append woke a timer for it). A full one means a backlog: go on at once.
      if (records.length < batchSize && (this.o.lingerMs ?? 0) > 0) return;
    }
  }

  private failed(err: unknown): void {
    this.statsValue.failures++;
    this.statsValue.lastError = err instanceof Error ? err.message : String(err);
    this.backoffMs = Math.min(this.backoffMs ? this.backoffMs * 2 : 200, this.o.maxBackoffMs ?? 5000);
    this.logger.warn(
      { err: this.statsValue.lastError, retry_ms: this.backoffMs },
      'audit store unavailable; decisions stay spooled',
    );
    this.kick(this.backoffMs);
  }

  /** Stores records one at a time, setting aside those the store refuses as data; outages still throw. */
  private async shipOneByOne(records: DecisionRecord[]): Promise<number> {
    let stored = 0;
    for (const r of records) {
      try {
        stored += await this.store.insertDecisions([r]);
      } catch (err) {
        if (!isDataError(err)) throw err;
        await this.reject(r, err instanceof Error ? err.message : String(err));
      }
    }
    return stored;
  }

  /** The records shaped like a decision; the others are set aside (a foreign line in the spool dir). */
  private async setAsideMalformed(records: unknown[]): Promise<DecisionRecord[]> {
    const good: DecisionRecord[] = [];
    for (const r of records) {
      if (isDecisionRecord(r)) good.push(r);
      else await this.reject(r, 'not a decision record');
    }
    return good;
  }

  private async reject(record: unknown, reason: string): Promise<void> {
    this.statsValue.rejected++;
    const id = (record as { decision_id?: unknown } | null)?.decision_id;
    this.logger.error(
      { decision_id: typeof id === 'string' ? id : null, reason },
      'audit record refused by the store; kept in rejected.jsonl',
    );
    // Kept, never dropped: an operator can inspect and re-import it. The record is already masked.
    await appendFile(
      join(this.spool.dir, 'rejected.jsonl'),
      `${JSON.stringify({ reason, time: new Date().toISOString(), record })}\n`,
      { mode: 0o600 },
    );
  }

  /** Ships what is spooled now (retrying up to `timeoutMs`); for shutdown and tests. */
  async flush(timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    // This call ships what is spooled now; a wake-up already scheduled would only start another run
    // later, which could take what is appended after this returns as a short batch instead of letting
    // the linger gather it. Appends made from here on schedule their own.
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (;;) {
      if (this.running) await this.running;
      this.running = this.runOnce().finally(() => (this.running = null));
      await this.running;
      if ((await this.spool.pendingBytes()) === 0) return true;
      if (Date.now() > deadline) {
        this.kick(this.backoffMs); // still spooled: the shipper goes on trying
        return false;
      }
      await new Promise((r) => setTimeout(r, Math.min(this.backoffMs || 50, 500)));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.running) await this.running;
  }
}

/**
 * SQLSTATE classes 22 (data exception) and 23 (integrity constraint): the record itself is the problem,
 * retrying cannot help. Anything else (connection refused, timeouts, server restarting) is an outage.
 */
function isDataError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^2[23][0-9A-Z]{3}$/.test(code);
}

const TEXT_FIELDS = [
  'decision_id',
  'request_id',
  'method',
  'host',
  'path',
  'decision',
  'reason',
  'reason_code',
];

function isDecisionRecord(r: unknown): r is DecisionRecord {
  if (!r || typeof r !== 'object') return false;
  const o = r as Record<string, unknown>;
  return (
    TEXT_FIELDS.every((f) => typeof o[f] === 'string') &&
    typeof o['policy_revision'] === 'string' &&
    (o['decision_id'] as string).length > 0 &&
    typeof o['time'] === 'string' &&
    !Number.isNaN(Date.parse(o['time'] as string)) &&
    Number.isInteger(o['http_status']) &&
    typeof o['latency_us'] === 'number'
  );
}
