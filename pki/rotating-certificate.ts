// A certificate that renews itself: issued at start, re-issued after two thirds of its lifetime (a
// failed renewal is retried, with the old one serving until it expires), and announced to subscribers —
// the TLS servers swap their secure context, the Envoy file writer rewrites its SDS files.
import type { IssuedCertificate } from './certificate-authority.ts';

export interface CertificateSource {
  current(): IssuedCertificate;
  /** Called with each renewed certificate; returns the unsubscribe function. */
  subscribe(listener: (c: IssuedCertificate) => void): () => void;
}

export interface RotationOptions {
  /** Fraction of the lifetime after which a certificate is renewed. Default 2/3. */
  renewAfter?: number;
  onRenewed?: (c: IssuedCertificate) => void;
  onError?: (err: unknown) => void;
}

/** setTimeout's limit (~24.8 days); a longer wait is taken in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const RETRY_MS = 30_000;

export class RotatingCertificate implements CertificateSource {
  private cert: IssuedCertificate;
  private issuedAt = Date.now();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly listeners = new Set<(c: IssuedCertificate) => void>();

  private constructor(
    private readonly issue: () => Promise<IssuedCertificate>,
    first: IssuedCertificate,
    private readonly o: RotationOptions,
  ) {
    this.cert = first;
    this.schedule(this.renewalDelay());
  }

  static async start(
    issue: () => Promise<IssuedCertificate>,
    o: RotationOptions = {},
  ): Promise<RotatingCertificate> {
    return new RotatingCertificate(issue, await issue(), o);
  }

  current(): IssuedCertificate {
    return this.cert;
  }

  subscribe(listener: (c: IssuedCertificate) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** When the current certificate is renewed, in ms from now. */
  private renewalDelay(): number {
    const lifetime = this.cert.notAfter.getTime() - this.issuedAt;
    return Math.max(0, this.issuedAt + lifetime * (this.o.renewAfter ?? 2 / 3) - Date.now());
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    const step = Math.min(ms, MAX_TIMER_MS);
    this.timer = setTimeout(() => (step < ms ? this.schedule(ms - step) : void this.renew()), step);
    this.timer.unref();
  }

  /** Issues a new certificate now (also what the timer does). */
  async renew(): Promise<void> {
    try {
      const next = await this.issue();
      if (this.closed) return;
      this.cert = next;
      this.issuedAt = Date.now();
      this.o.onRenewed?.(next);
      for (const l of this.listeners) l(next);
      if (this.timer) clearTimeout(this.timer);
      this.schedule(this.renewalDelay());
    } catch (err) {
      this.o.onError?.(err);
      // Retry well before expiry; the current certificate keeps serving meanwhile.
      const left = this.cert.notAfter.getTime() - Date.now();
      this.schedule(Math.max(1000, Math.min(RETRY_MS, left / 10)));
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.listeners.clear();
  }
}
