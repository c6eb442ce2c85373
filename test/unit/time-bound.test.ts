// The wall-clock bound the fuzz tests use (test/support/time-bound.ts): a run stalled by the machine
// does not fail it, a call that is slow on every run does.
import { describe, expect, it } from 'vitest';
import { withinBound } from '../support/time-bound.ts';

/** Keeps the CPU busy for `ms`: what a call that really does too much work looks like. */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe('withinBound', () => {
  it('returns the result of a call under the bound after one run', () => {
    let runs = 0;
    expect(withinBound(() => ++runs, 50)).toBe(1);
    expect(runs).toBe(1);
  });

  it('passes a call whose first run was stalled and whose next runs are fast', () => {
    let runs = 0;
    const value = withinBound(() => {
      if (runs++ === 0) busy(30);
      return 'ok';
    }, 20);
    expect(value).toBe('ok');
    expect(runs).toBe(2);
  });

  it('fails a call that is over the bound on every run, naming its best time', () => {
    let runs = 0;
    expect(() =>
      withinBound(
        () => {
          runs++;
          busy(25);
        },
        20,
        'the slow call',
      ),
    ).toThrow(/the slow call took \d+\.\d ms at best of 6 runs/);
    expect(runs).toBe(6);
  });
});
