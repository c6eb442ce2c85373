// Follows a bundle server the way OPA's bundle plugin does, so Chaperone can sit in a fleet that
// serves OPA: GET the bundle URL with `If-None-Match: <etag>` (304: nothing changed), a bearer token
// read from `env:`/`file:` at every request (rotation needs no restart), the next poll after a random
// delay between min and max (a fleet does not poll in step), and after an error an exponential backoff
// from 1 s, with jitter, up to the max delay. A downloaded bundle is handed to the PolicyStore, which
// serves it only if it loads and verifies; the ETag of the last bundle received — served or refused —
// is sent next time, so the same refused bundle is not downloaded again and again.
import type { Logger } from 'pino';
import { MAX_BUNDLE_BYTES } from './bundle-archive.ts';
import { readKeyMaterial } from './bundle-keys.ts';

export interface BundleServiceOptions {
  url: string;
  /** `env:NAME` or `file:/path`, or null. */
  token: string | null;
  minDelayMs: number;
  maxDelayMs: number;
  /** Serves the bundle; resolves true when it is now the policy. */
  onBundle(bytes: Buffer, origin: string): Promise<boolean>;
  /** The server could not be asked or answered with an error (the policy keeps serving). */
  onError(origin: string, message: string): void;
  logger: Logger;
  fetch?: typeof fetch;
  random?: () => number;
  timeoutMs?: number;
}

export type PollOutcome = 'loaded' | 'refused' | 'not_modified' | 'failed';

const FIRST_RETRY_MS = 1000;

/** The URL as shown in logs and status: no user info, no query (either may carry a credential). */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return 'an unparsable URL';
  }
}

export class BundleService {
  private etag: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private failures = 0;
  private counts = { downloads: 0, not_modified: 0, loaded: 0, refused: 0, failed: 0 };
  private lastError: string | null = null;
  private lastSuccess: Date | null = null;
  readonly origin: string;

  constructor(private readonly o: BundleServiceOptions) {
    this.origin = `url ${displayUrl(o.url)}`;
  }

  /** Polls from now on (the first poll after one delay; call pollOnce() first to load at start). */
  start(): void {
    this.schedule(this.nextDelay());
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  status(): Record<string, unknown> {
    return {
      url: displayUrl(this.o.url),
      etag: this.etag,
      last_success: this.lastSuccess?.toISOString() ?? null,
      last_error: this.lastError,
      consecutive_failures: this.failures,
      ...this.counts,
    };
  }

  /** One request; never throws. */
  async pollOnce(): Promise<PollOutcome> {
    let res: Response;
    try {
      res = await (this.o.fetch ?? fetch)(this.o.url, {
        headers: this.headers(),
        signal: AbortSignal.timeout(this.o.timeoutMs ?? 30_000),
      });
    } catch (err) {
      return this.failed(`bundle request failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (res.status === 304) {
      await res.body?.cancel();
      this.counts.not_modified++;
      return this.succeeded('not_modified');
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      return this.failed(`bundle server answered HTTP ${res.status}`);
    }
    const length = Number(res.headers.get('content-length') ?? 0);
    if (length > MAX_BUNDLE_BYTES) {
      await res.body?.cancel();
      return this.failed('bundle server sent a bundle larger than 64 MiB');
    }
    let bytes: Buffer;
    try {
      bytes = Buffer.from(await res.arrayBuffer());
    } catch (err) {
      return this.failed(`bundle download failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    this.counts.downloads++;
    this.etag = res.headers.get('etag');
    const served = await this.o.onBundle(bytes, this.origin);
    this.counts[served ? 'loaded' : 'refused']++;
    return this.succeeded(served ? 'loaded' : 'refused');
  }

  private headers(): Record<string, string> {
    const h: Record<string, string> = { accept: 'application/gzip, application/octet-stream' };
    if (this.etag) h['if-none-match'] = this.etag;
    if (this.o.token) {
      // Read at every request: a rotated token file is picked up without a restart.
      h['authorization'] =
        `Bearer ${readKeyMaterial(this.o.token, 'bundle token', false).toString('utf8').trim()}`;
    }
    return h;
  }

  private succeeded(outcome: PollOutcome): PollOutcome {
    this.failures = 0;
    this.lastSuccess = new Date();
    this.lastError = null;
    return outcome;
  }

  private failed(message: string): PollOutcome {
    this.failures++;
    this.counts.failed++;
    this.lastError = message;
    this.o.onError(this.origin, message);
    return 'failed';
  }

  private random(): number {
    return (this.o.random ?? Math.random)();
  }

  /** After a success: between min and max. After n failures: 1 s·2^(n-1), jittered, at most max. */
  private nextDelay(): number {
    const { minDelayMs, maxDelayMs } = this.o;
    if (this.failures === 0) return minDelayMs + this.random() * (maxDelayMs - minDelayMs);
    const backoff = Math.min(maxDelayMs, FIRST_RETRY_MS * 2 ** (this.failures - 1));
    return backoff * (0.5 + this.random() / 2);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.pollOnce().then(() => this.schedule(this.nextDelay()));
    }, delayMs);
    this.timer.unref();
  }
}
