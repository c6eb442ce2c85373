// Moves spooled decisions into the audit store, in order, in batches. Idempotent by decision id, so a
// crash between "stored" and "acknowledged" only resends what the store already has. When the store
// is down the spool simply grows; the shipper retries with backoff and catches up when it returns.
import type { Logger } from 'pino';
import { type CheckpointSigner, signCheckpoint } from './checkpoints.ts';
import type { DecisionRecord } from './records.ts';
import type { Spool } from './spool.ts';
import type { AuditStore } from './store.ts';

export interface ShipperStats {
  shipped: number;
  batches: number;
  failures: number;
  lastError: string | null;
  lastShippedAt: string | null;
}

export class Shipper {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private backoffMs = 0;
  private unsubscribe: (() => void) | null = null;
  private readonly statsValue: ShipperStats = {
    shipped: 0,
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
      /** Signs a checkpoint every `checkpointEvery` records (and at flush) when given. */
      signer?: CheckpointSigner;
      checkpointEvery?: number;
    } = {},
  ) {}

  /** Signs (seq, hash) of the newest record if it moved since the last checkpoint. */
  async checkpoint(force = false): Promise<void> {
    if (!this.o.signer) return;
    const last = await this.store.lastCheckpoint();
    const seq = await this.store.lastSeq();
    if (seq === 0 || seq === last?.seq) return;
    if (!force && seq - (last?.seq ?? 0) < (this.o.checkpointEvery ?? 100)) return;
    const [row] = await this.store.decisionsAfter(seq - 1, 1);
    if (row) await this.store.insertCheckpoint(await signCheckpoint(this.o.signer, row.seq, row.hash));
  }

  start(): void {
    this.unsubscribe = this.spool.onAppend(() => this.kick());
    this.kick();
  }

  stats(): ShipperStats {
    return { ...this.statsValue };
  }

  /** Schedules a run soon (coalesced). */
  private kick(delay = 0): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        if (!this.running) this.running = this.runOnce().finally(() => (this.running = null));
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
        if (next.segment !== from.segment || next.offset !== from.offset) await this.spool.ack(next);
        this.backoffMs = 0;
        return;
      }
      try {
        await this.store.insertDecisions(records as DecisionRecord[]);
      } catch (err) {
        this.statsValue.failures++;
        this.statsValue.lastError = err instanceof Error ? err.message : String(err);
        this.backoffMs = Math.min(this.backoffMs ? this.backoffMs * 2 : 200, this.o.maxBackoffMs ?? 5000);
        this.logger.warn(
          { err: this.statsValue.lastError, retry_ms: this.backoffMs },
          'audit store unavailable; decisions stay spooled',
        );
        this.kick(this.backoffMs);
        return;
      }
      await this.spool.ack(next);
      this.backoffMs = 0;
      this.statsValue.shipped += records.length;
      this.statsValue.batches++;
      this.statsValue.lastError = null;
      this.statsValue.lastShippedAt = new Date().toISOString();
      await this.checkpoint().catch((err: unknown) =>
        this.logger.warn(
          { err: err instanceof Error ? err.message : String(err) },
          'audit checkpoint not written',
        ),
      );
    }
  }

  /** Ships what is spooled now (retrying up to `timeoutMs`); for shutdown and tests. */
  async flush(timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.running) await this.running;
      this.running = this.runOnce().finally(() => (this.running = null));
      await this.running;
      if ((await this.spool.pendingBytes()) === 0) {
        await this.checkpoint(true).catch(() => undefined);
        return true;
      }
      if (Date.now() > deadline) return false;
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
