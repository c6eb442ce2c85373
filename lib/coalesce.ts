// Reloads of mirrored state must not overlap: two concurrent reads could finish out of order and leave
// the older one in memory (a revocation missing until the next change). `coalesced(fn)` runs fn one at
// a time; calls made while it runs share one more run, started after the current one ends, so the last
// caller always sees a read that began after its call.
export function coalesced(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | null = null;
  let next: Promise<void> | null = null;
  const run = (): Promise<void> => {
    const current: Promise<void> = fn().finally(() => {
      if (running === current) running = null;
    });
    running = current;
    return current;
  };
  return () => {
    // `next` first: between the end of a run and the start of the queued one, `running` is already
    // null, and a call there must join the queued run rather than start one beside it.
    if (next) return next;
    if (!running) return run();
    next = running
      .catch(() => undefined)
      .then(() => {
        next = null;
        return run();
      });
    return next;
  };
}
