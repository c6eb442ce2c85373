// Waiting on a condition with a deadline: the only way tests synchronise with processes they start
// (never a fixed sleep). The error names what was awaited and the last failure seen, if any.

export interface WaitOptions {
  /** Give up after this long. Default 10 s. */
  timeoutMs?: number;
  /** Pause between attempts. Default 50 ms. */
  intervalMs?: number;
  /** What is being waited for, for the error message ("envoy admin /ready"). */
  what: string;
}

export class WaitTimeoutError extends Error {
  readonly code = 'ERR_WAIT_TIMEOUT';
  constructor(what: string, timeoutMs: number, lastError: unknown) {
    const detail =
      lastError === undefined
        ? ''
        : ` (last error: ${lastError instanceof Error ? lastError.message : String(lastError)})`;
    super(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    this.name = 'WaitTimeoutError';
  }
}

/** Resolves once `cond` returns true; a throwing `cond` counts as "not yet". */
export async function waitFor(cond: () => Promise<boolean> | boolean, opts: WaitOptions): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await cond()) return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) throw new WaitTimeoutError(opts.what, timeoutMs, lastError);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
