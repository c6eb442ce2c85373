// The wait estimate behind load shedding (authz-server/transport/admission.ts): a Check's age on
// Envoy's clock less the smallest age seen while the event loop kept up, so the network and an offset
// between the two hosts' clocks cancel out; nothing is estimated before a baseline exists.
import { describe, expect, it } from 'vitest';
import { QueueDelay, requestTimeMs } from '../../authz-server/transport/admission.ts';

describe('QueueDelay', () => {
  it('estimates nothing before it has seen a calm sample', () => {
    const q = new QueueDelay();
    expect(q.observe(1_000, 5_000, false)).toBe(0);
  });

  it('measures the wait against the smallest calm age, whatever the clocks’ offset', () => {
    for (const offset of [0, 2_000, -2_000]) {
      const q = new QueueDelay();
      const now = 1_000_000;
      // Envoy's clock is `offset` ms ahead; the network takes 3 ms.
      expect(q.observe(now - 3 + offset, now, true)).toBe(0);
      expect(q.observe(now - 5 + offset, now + 10, true)).toBe(12); // 15 ms old, 3 ms the baseline
      // While the loop is behind: a Check stamped 400 ms before it was read waited ~397 ms.
      expect(q.observe(now + 100 - 400 + offset, now + 100, false)).toBe(397);
    }
  });

  it('does not learn its baseline from samples taken while the loop was behind', () => {
    const q = new QueueDelay();
    q.observe(1_000, 1_005, true); // baseline 5 ms
    q.observe(1_000, 1_900, false); // 900 ms old while behind: not a baseline
    expect(q.observe(2_000, 2_305, false)).toBe(300);
  });

  it('forgets a baseline older than two windows (clock drift)', () => {
    const q = new QueueDelay();
    q.observe(0, 5, true);
    q.observe(100_000, 100_050, true); // a later window
    q.observe(200_000, 200_050, true); // and another: the 5 ms sample is gone
    expect(q.observe(300_000, 300_250, false)).toBe(200);
  });
});

describe('requestTimeMs', () => {
  it.each([
    [
      { attributes: { request: { time: { seconds: 1_780_000_000, nanos: 250_000_000 } } } },
      1_780_000_000_250,
    ],
    [{ attributes: { request: { time: { seconds: 1_780_000_000 } } } }, 1_780_000_000_000],
    [{ attributes: { request: {} } }, null],
    [{ attributes: { request: { time: { seconds: 0 } } } }, null],
    [{ attributes: { request: { time: { seconds: 'x' } } } }, null],
    [null, null],
  ])('%j → %s', (request, expected) => expect(requestTimeMs(request)).toBe(expected));
});
