// Keeps the gateway's Envoy running: starts it, and when it exits unexpectedly (a crash, an OOM kill,
// someone's SIGKILL) logs why, says so on the status line, and starts it again after a backoff that
// grows with repeated failures and resets once Envoy has stayed up for a minute. Between the exit and
// the new Envoy being ready, `ready()` is false: `/readyz` reports it, and since Envoy is the only path
// to an upstream, no request passes meanwhile.
import type { Logger } from 'pino';
import { adminReady } from '../lib/envoy-admin.ts';
import type { ManagedEnvoy, StatusLine } from './context.ts';
import { type EnvoyProcess, type EnvoyProcessOptions, startEnvoy } from './envoy-process.ts';

/** Restart delays after an unexpected exit; the last repeats. */
export const ENVOY_RESTART_BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000, 15_000, 30_000] as const;
/** An Envoy that ran this long before exiting starts the backoff from the beginning again. */
const STABLE_AFTER_MS = 60_000;

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

export class EnvoySupervisor implements ManagedEnvoy {
  readonly mode = 'managed' as const;
  private proc: EnvoyProcess | null = null;
  private starting: Promise<EnvoyProcess> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopping = false;
  private failures = 0;
  private restarts = 0;
  private upSince = 0;
  private lastExit: string | null = null;

  constructor(
    private readonly opts: EnvoyProcessOptions,
    private readonly logger: Logger,
    private readonly say: StatusLine,
  ) {}

  /** The first start: a failure here fails the gateway's start-up (nothing to fall back to). */
  start(): Promise<EnvoyProcess> {
    return this.launch();
  }

  current(): EnvoyProcess | null {
    return this.proc;
  }

  async ready(): Promise<boolean> {
    const p = this.proc;
    return p !== null && (await adminReady(p.adminUrl));
  }

  status(): Record<string, unknown> {
    return {
      mode: 'managed',
      state: this.proc ? 'running' : this.stopping ? 'stopped' : 'restarting',
      pid: this.proc?.pid ?? null,
      admin: this.opts.adminUrl,
      restarts: this.restarts,
      last_exit: this.lastExit,
    };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    const pending = this.starting;
    if (pending) await pending.then((p) => p.stop()).catch(() => undefined);
    await this.proc?.stop();
  }

  private async launch(): Promise<EnvoyProcess> {
    this.starting = startEnvoy(this.opts);
    try {
      const p = await this.starting;
      this.proc = p;
      this.upSince = Date.now();
      void p.exited.then(() => this.onExit(p));
      return p;
    } finally {
      this.starting = null;
    }
  }

  private onExit(p: EnvoyProcess): void {
    if (this.stopping || this.proc !== p) return;
    this.proc = null;
    this.lastExit = p.exitReason();
    if (Date.now() - this.upSince > STABLE_AFTER_MS) this.failures = 0;
    const delay = this.scheduleRestart();
    this.logger.error(
      { pid: p.pid, exit: this.lastExit, retry_ms: delay, log: p.recentLog().slice(-2000) },
      'envoy exited',
    );
    this.say(
      'envoy',
      `exited (${this.lastExit}); restarting in ${delay} ms — not ready, no traffic passes`,
      'down',
    );
  }

  private scheduleRestart(): number {
    const delay =
      ENVOY_RESTART_BACKOFF_MS[Math.min(this.failures, ENVOY_RESTART_BACKOFF_MS.length - 1)] ?? 30_000;
    this.failures++;
    this.timer = setTimeout(() => void this.restart(), delay);
    return delay;
  }

  private async restart(): Promise<void> {
    this.timer = null;
    if (this.stopping) return;
    try {
      const p = await this.launch();
      this.restarts++;
      if (this.stopping) return void (await p.stop());
      this.logger.warn({ pid: p.pid, restarts: this.restarts }, 'envoy restarted');
      this.say('envoy', `restarted (pid ${p.pid}, restart ${this.restarts}); ready again`, 'up');
    } catch (err) {
      const delay = this.scheduleRestart();
      this.logger.error({ err: message(err), retry_ms: delay }, 'envoy restart failed');
      this.say('envoy', `restart failed; next attempt in ${delay} ms — no traffic passes meanwhile`, 'down');
    }
  }
}
