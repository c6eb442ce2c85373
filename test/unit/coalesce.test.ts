// Mirrored-state reloads run one at a time, and a call made during a run gets a run that starts after it.
import { describe, expect, it } from 'vitest';
import { coalesced } from '../../lib/coalesce.ts';

describe('coalesced', () => {
  it('never overlaps runs and folds calls made during a run into one more run', async () => {
    let active = 0;
    let maxActive = 0;
    const starts: number[] = [];
    let calls = 0;
    const reload = coalesced(async () => {
      starts.push(calls);
      active++;
      maxActive = Math.max(maxActive, active);
      await new Promise((r) => setTimeout(r, 20));
      active--;
    });
    calls = 1;
    const first = reload();
    calls = 2;
    const second = reload();
    calls = 3;
    const third = reload();
    await Promise.all([first, second, third]);
    expect(maxActive).toBe(1);
    // One run for the first call, one more for the two made while it ran; it began after both.
    expect(starts).toEqual([1, 3]);
    expect(second).toBe(third);
  });

  it('a call made as a run ends joins the queued run instead of starting one beside it', async () => {
    let active = 0;
    let maxActive = 0;
    const reload = coalesced(async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      await new Promise((r) => setTimeout(r, 5));
      active--;
    });
    const first = reload();
    const second = reload();
    await first;
    // The first run is over and the queued one has not started yet.
    const third = reload();
    await Promise.all([second, third]);
    expect(maxActive).toBe(1);
    expect(third).toBe(second);
  });

  it('a failed run does not block the next one, and its caller sees the failure', async () => {
    let n = 0;
    const reload = coalesced(async () => {
      n++;
      if (n === 1) throw new Error('store down');
    });
    await expect(reload()).rejects.toThrow('store down');
    await expect(reload()).resolves.toBeUndefined();
    expect(n).toBe(2);
  });
});
