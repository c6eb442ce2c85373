// The ALS's AccessLogSink: Envoy's access-log entries are batched into the audit store. Envoy's ALS is
// lossy by design, and so is this buffer: bounded, oldest dropped and counted when the store is down for
// long, because the decisions (spooled before ALLOW) are the audit record, these only the outcome.
import type { Logger } from 'pino';
import type { AccessLogEntry, AccessLogSink } from './access-log-service.ts';
import { Redactor } from './redaction.ts';
import type { AuditStore } from './store.ts';

export interface AccessLogSinkOptions {
  /** Entries held while the store is slow or down; beyond it the oldest are dropped. Default 100,000. */
  maxBuffered?: number;
  /** Rows per insert. Default 500. */
  batchSize?: number;
  /** How long entries may wait to fill a batch. Default 200 ms. */
  lingerMs?: number;
  /** Retry delay after a failed insert. Default 2 s. */
  retryMs?: number;
  /** The redaction every entry passes before it is buffered; default the built-in rules. */
  redactor?: Redactor;
}

export interface AccessLogSinkStats {
  stored: number;
  pending: number;
  dropped: number;
  lastError: string | null;
}

export class BatchingAccessLogSink implements AccessLogSink {
  private buffer: AccessLogEntry[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** The one drain in progress: two would insert the same head of the buffer and then remove it twice. */
  private draining: Promise<void> | null = null;
  private stored = 0;
  private dropped = 0;
  private lastError: string | null = null;
  private closed = false;
  private readonly redactor: Redactor;

  constructor(
    private readonly store: Pick<AuditStore, 'insertAccessLogs'>,
    private readonly logger: Logger,
    private readonly o: AccessLogSinkOptions = {},
  ) {
    this.redactor = o.redactor ?? new Redactor();
  }

  /** Queues the entries; resolves at once (the store is written in the background). */
  async write(entries: AccessLogEntry[]): Promise<void> {
    if (this.closed || entries.length === 0) return;
    for (const e of entries) this.buffer.push(this.redactor.accessLog(e));
    const max = this.o.maxBuffered ?? 100_000;
    if (this.buffer.length > max) {
      const over = this.buffer.length - max;
      this.buffer.splice(0, over);
      this.dropped += over;
      this.logger.error(
        { dropped: over, total_dropped: this.dropped },
        'access-log buffer full: oldest entries dropped',
      );
    }
    if (this.buffer.length >= (this.o.batchSize ?? 500)) this.schedule(0);
    else this.schedule(this.o.lingerMs ?? 200);
  }

  private schedule(delayMs: number): void {
    if (this.closed || this.draining) return;
    if (this.timer && delayMs > 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.drain();
    }, delayMs);
  }

  /** Writes everything buffered; on a store error keeps it and retries later. Resolves when done or failed. */
  drain(): Promise<void> {
    if (this.draining) return this.draining;
    this.draining = this.drainLoop().finally(() => {
      this.draining = null;
      if (this.buffer.length > 0 && !this.closed && !this.timer)
        this.schedule(this.lastError ? (this.o.retryMs ?? 2000) : 0);
    });
    return this.draining;
  }

  private async drainLoop(): Promise<void> {
    const size = this.o.batchSize ?? 500;
    while (this.buffer.length > 0) {
      const batch = this.buffer.slice(0, size);
      const droppedBefore = this.dropped;
      try {
        this.stored += await this.store.insertAccessLogs(batch);
      } catch (err) {
        this.lastError = err instanceof Error ? err.message : String(err);
        return;
      }
      // Entries dropped for space while this batch was in flight came off the head, i.e. off this batch.
      this.buffer.splice(0, Math.max(0, batch.length - (this.dropped - droppedBefore)));
      this.lastError = null;
    }
  }

  stats(): AccessLogSinkStats {
    return {
      stored: this.stored,
      pending: this.buffer.length,
      dropped: this.dropped,
      lastError: this.lastError,
    };
  }

  /** Stores what is buffered (one attempt) and stops accepting entries. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.drain();
  }
}
