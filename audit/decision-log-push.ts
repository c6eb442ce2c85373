// Decision logs pushed the way OPA pushes them: batches of decision-log events (opa-decision-log.ts,
// the shape `audit export --format opa` writes) POSTed as a gzip-compressed JSON array to a configured
// endpoint (OPA's `/logs`). Off the Check path: `add()` only appends the event to a bounded queue;
// masking (the audit trail's masks: no token, credential header or secret-named field leaves), encoding
// and uploads run in the background. Memory is bounded by the buffer limit: when the endpoint is slow
// or down the oldest events are dropped, and every drop is counted in `status()`. Uploads follow
// OPA's reporting: one every min..max delay (random), each at most `uploadSizeLimitBytes` before
// compression; a failed upload keeps its events and is retried with exponential backoff and jitter.
// This is a copy for a log pipeline, not the record: the audit trail stays the durable, chained one.
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';
import type { Logger } from 'pino';
import type { DecisionLogsConfig } from '../config/types.ts';
import type { DecisionEvent } from '../contracts/decision.ts';
import { toOpaDecisionLog } from './opa-decision-log.ts';
import { maskInput, maskResult } from './recorder.ts';
import { toDecisionRecord } from './records.ts';

const gzip = promisify(gzipCb);

export interface DecisionLogPushOptions {
  url: string;
  /** The bearer token, read at each upload (a rotated file is picked up): null for none. */
  token: () => string | null;
  minDelayMs: number;
  maxDelayMs: number;
  bufferSizeLimitBytes: number;
  uploadSizeLimitBytes: number;
  /** The decision path the events name (`path`). */
  entrypoint: string;
  /** Header names masked besides the audit trail's list (the token header, credential headers). */
  extraSecretHeaders?: string[];
  /** Added to every event's labels (OPA puts its instance id there). */
  labels?: Record<string, string>;
  logger: Logger;
  fetch?: typeof fetch;
  random?: () => number;
  /** Raw events waiting to be encoded; beyond it new ones are dropped. Default 10,000. */
  maxPending?: number;
}

interface Encoded {
  json: string;
  bytes: number;
}

const FIRST_RETRY_MS = 1000;

export class DecisionLogPush {
  private pending: DecisionEvent[] = [];
  private encodeScheduled = false;
  private buffer: Encoded[] = [];
  private bufferBytes = 0;
  private timer: NodeJS.Timeout | null = null;
  private uploading: Promise<boolean> | null = null;
  private failures = 0;
  private stopped = false;
  private lastError: string | null = null;
  private lastUpload: Date | null = null;
  private readonly counts = { events: 0, uploaded: 0, uploads: 0, failed_uploads: 0 };
  private readonly dropped = { buffer_full: 0, pending_full: 0, too_large: 0 };
  private lastDropLog = 0;

  constructor(private readonly o: DecisionLogPushOptions) {}

  /** Takes one decision; O(1), never throws, never waits. */
  add(event: DecisionEvent): void {
    if (this.stopped) return;
    this.counts.events++;
    if (this.pending.length >= (this.o.maxPending ?? 10_000)) {
      this.drop('pending_full');
      return;
    }
    this.pending.push(event);
    if (!this.encodeScheduled) {
      this.encodeScheduled = true;
      setImmediate(() => this.encodePending());
    }
  }

  start(): void {
    this.schedule(this.nextDelay());
  }

  /** Stops the timer and tries, within `timeoutMs`, to upload what is buffered. */
  async stop(timeoutMs = 5000): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const deadline = new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs).unref());
    await Promise.race([this.flush(), deadline]);
  }

  status(): Record<string, unknown> {
    const u = new URL(this.o.url);
    return {
      url: `${u.protocol}//${u.host}${u.pathname}`,
      buffered_events: this.buffer.length + this.pending.length,
      buffered_bytes: this.bufferBytes,
      ...this.counts,
      dropped: this.dropped.buffer_full + this.dropped.pending_full + this.dropped.too_large,
      drops: { ...this.dropped },
      consecutive_failures: this.failures,
      last_upload: this.lastUpload?.toISOString() ?? null,
      last_error: this.lastError,
    };
  }

  /** Uploads everything buffered now; resolves false when an upload failed (its events are kept). */
  flush(): Promise<boolean> {
    this.encodePending();
    if (this.uploading) return this.uploading.then(() => this.flush());
    this.uploading = this.uploadAll().finally(() => {
      this.uploading = null;
    });
    return this.uploading;
  }

  private encodePending(): void {
    this.encodeScheduled = false;
    const extra = this.o.extraSecretHeaders ?? [];
    for (const e of this.pending.splice(0)) {
      const record = toDecisionRecord(
        { ...e, result: maskResult(e.result, extra) },
        maskInput(e.input, extra),
      );
      const json = JSON.stringify(toOpaDecisionLog(record, this.o.entrypoint, this.o.labels));
      const bytes = Buffer.byteLength(json);
      // One event that cannot fit an upload would block every later one: OPA drops it too.
      if (bytes + 2 > this.o.uploadSizeLimitBytes) {
        this.drop('too_large');
        continue;
      }
      this.buffer.push({ json, bytes });
      this.bufferBytes += bytes;
    }
    this.trim();
  }

  /** Oldest first out when over the limit. */
  private trim(): void {
    while (this.bufferBytes > this.o.bufferSizeLimitBytes && this.buffer.length > 0) {
      this.bufferBytes -= this.buffer.shift()!.bytes;
      this.drop('buffer_full');
    }
  }

  /** Counted always; logged at most once a minute (a standalone authz server has no /status). */
  private drop(cause: keyof DecisionLogPush['dropped']): void {
    this.dropped[cause]++;
    const now = Date.now();
    if (now - this.lastDropLog < 60_000) return;
    this.lastDropLog = now;
    this.o.logger.warn({ drops: { ...this.dropped } }, 'decision log events dropped');
  }

  /** The oldest events that fit one upload (`[` + events joined by `,` + `]`). */
  private takeChunk(): Encoded[] {
    let size = 2;
    let n = 0;
    while (
      n < this.buffer.length &&
      size + this.buffer[n]!.bytes + (n > 0 ? 1 : 0) <= this.o.uploadSizeLimitBytes
    ) {
      size += this.buffer[n]!.bytes + (n > 0 ? 1 : 0);
      n++;
    }
    const chunk = this.buffer.splice(0, n);
    for (const e of chunk) this.bufferBytes -= e.bytes;
    return chunk;
  }

  private async uploadAll(): Promise<boolean> {
    while (this.buffer.length > 0) {
      const chunk = this.takeChunk();
      const error = await this.upload(chunk);
      if (error === null) {
        this.failures = 0;
        this.lastError = null;
        this.lastUpload = new Date();
        this.counts.uploads++;
        this.counts.uploaded += chunk.length;
        continue;
      }
      // Back at the front, in order; what no longer fits beside newer events is dropped oldest first.
      this.buffer.unshift(...chunk);
      for (const e of chunk) this.bufferBytes += e.bytes;
      this.trim();
      this.failures++;
      this.counts.failed_uploads++;
      if (this.lastError !== error)
        this.o.logger.warn({ err: error }, 'decision log upload failed; retrying');
      this.lastError = error;
      return false;
    }
    return true;
  }

  /** null on success, else why not. */
  private async upload(chunk: Encoded[]): Promise<string | null> {
    try {
      const body = await gzip(Buffer.from(`[${chunk.map((e) => e.json).join(',')}]`));
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
      };
      const token = this.o.token();
      if (token) headers['authorization'] = `Bearer ${token}`;
      const res = await (this.o.fetch ?? fetch)(this.o.url, {
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.timeout(30_000),
      });
      await res.body?.cancel();
      return res.ok ? null : `the endpoint answered HTTP ${res.status}`;
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
  }

  private random(): number {
    return (this.o.random ?? Math.random)();
  }

  private nextDelay(): number {
    const { minDelayMs, maxDelayMs } = this.o;
    if (this.failures === 0) return minDelayMs + this.random() * (maxDelayMs - minDelayMs);
    return Math.min(maxDelayMs, FIRST_RETRY_MS * 2 ** (this.failures - 1)) * (0.5 + this.random() / 2);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.flush().then(() => this.schedule(this.nextDelay()));
    }, delayMs);
    this.timer.unref();
  }
}

/** A bearer token reference (`env:NAME`, `file:/path`) read now; the error names the reference only. */
export function readTokenRef(ref: string): string {
  if (ref.startsWith('env:')) {
    const v = process.env[ref.slice(4)];
    if (!v) throw new Error(`token ${ref} is not set`);
    return v.trim();
  }
  try {
    return readFileSync(ref.slice(5), 'utf8').trim();
  } catch (err) {
    throw new Error(`token ${ref} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'EIO'})`);
  }
}

/** The pusher `decision_logs` in chaperone.yaml (or `authz serve --decision-logs-url`) describes. */
export function decisionLogPush(
  cfg: DecisionLogsConfig,
  o: Pick<DecisionLogPushOptions, 'entrypoint' | 'logger' | 'extraSecretHeaders' | 'labels'>,
): DecisionLogPush {
  const token = cfg.token;
  return new DecisionLogPush({
    url: cfg.url,
    token: () => (token ? readTokenRef(token) : null),
    minDelayMs: cfg.minDelaySec * 1000,
    maxDelayMs: cfg.maxDelaySec * 1000,
    bufferSizeLimitBytes: cfg.bufferSizeLimitBytes,
    uploadSizeLimitBytes: cfg.uploadSizeLimitBytes,
    ...o,
  });
}
