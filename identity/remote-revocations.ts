// Revocations for an authz server running on its own: it polls the control plane's
// GET /agents/revocations (default every 2 s, so a revocation applies within ~2 s, well inside the 5 s
// promise) and checks every agent identity against the last list. If the control plane cannot be
// reached, the last list stays in force and the failure is logged once per outage.
import type { Logger } from 'pino';
import { RevocationIndex, type RevocationList } from '../fleet/agent-registry.ts';
import type { Identity } from './verifier.ts';

export class RemoteRevocations {
  private index = new RevocationIndex();
  private timer: NodeJS.Timeout | null = null;
  private failing = false;
  lastUpdate: Date | null = null;

  constructor(
    private readonly url: string,
    private readonly logger: Logger,
    private readonly intervalMs = 2000,
  ) {}

  revoked(identity: Identity): string | null {
    return this.index.revoked(identity);
  }

  async refresh(): Promise<void> {
    try {
      const res = await fetch(`${this.url}/agents/revocations`, { signal: AbortSignal.timeout(2000) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      this.index = new RevocationIndex((await res.json()) as RevocationList);
      this.lastUpdate = new Date();
      if (this.failing) this.logger.info('revocation list reachable again');
      this.failing = false;
    } catch (err) {
      if (!this.failing) {
        this.logger.warn(
          { url: this.url, err: err instanceof Error ? err.message : String(err) },
          'revocation list unreachable; the last one stays in force',
        );
      }
      this.failing = true;
    }
  }

  start(): void {
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
