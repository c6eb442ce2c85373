// Property-based fuzzing (fast-check) of the two readers every decision starts with: the strict JSON
// reader agrees with JSON.parse on documents without duplicate keys, refuses what it must, never
// throws; the raw-path gate agrees with the WHATWG URL parser on what it accepts (the upstream's reading
// of the path is ours) and never throws. Short runs with fixed seeds: a few hundred ms each.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkRawPath } from '../../authz-server/input/raw-path.ts';
import { parseStrictJson } from '../../authz-server/input/strict-json.ts';
import { withinBound } from '../support/time-bound.ts';

/**
 * Each call must stay under this, whatever the input. Typical calls take well under a millisecond; the
 * bound catches work that grows with the input (seconds). On a loaded 2-core machine one run can read
 * 150 ms, so a run over the bound is repeated and only the fastest counts (test/support/time-bound.ts).
 */
const BOUND_MS = 100;

const timed = <T>(fn: () => T): T => withinBound(fn, BOUND_MS);

// JSON values a strict reader must read exactly as JSON.parse: unique lower-case keys (no case
// variants), numbers JSON.parse does not round, strings of whole characters (no lone surrogates).
const { value: jsonValue } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double({ noNaN: true, min: -1e15, max: 1e15 }),
    fc.string({ unit: 'grapheme', maxLength: 12 }),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.stringMatching(/^[a-z_$][a-z0-9_]{0,5}$/), tie('value'), { maxKeys: 4 }),
  ),
}));

describe('fuzz: strict JSON reader', () => {
  it('agrees with JSON.parse on documents without duplicate or case-variant keys', () => {
    fc.assert(
      fc.property(jsonValue, fc.constantFrom(undefined, 2), (value, indent) => {
        const text = JSON.stringify(value, null, indent);
        expect(timed(() => parseStrictJson(text))).toEqual({ ok: true, value: JSON.parse(text) });
      }),
      { numRuns: 400, seed: 42 },
    );
  });

  it('refuses a duplicated or case-varied key wherever it is', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.stringMatching(/^[a-z]{1,5}$/), jsonValue, { minKeys: 1, maxKeys: 4 }),
        fc.boolean(),
        (obj, upper) => {
          const [key] = Object.keys(obj);
          const text = JSON.stringify(obj).replace(
            /\}$/,
            `,${JSON.stringify(upper ? key!.toUpperCase() : key)}:1}`,
          );
          const r = timed(() =>
            parseStrictJson(JSON.stringify({ outer: [JSON.parse('0'), 'x'] }).replace('"x"', text)),
          );
          expect(r).toMatchObject({ ok: false, problem: upper ? 'case_variant_key' : 'duplicate_key' });
        },
      ),
      { numRuns: 200, seed: 7 },
    );
  });

  it('never throws on arbitrary text, and what it accepts JSON.parse reads the same', () => {
    const jsonish = fc
      .array(
        fc.constantFrom(
          '{',
          '}',
          '[',
          ']',
          '"',
          ':',
          ',',
          '\\',
          'u',
          'd',
          '8',
          '0',
          '1',
          'e',
          '-',
          '.',
          ' ',
          'a',
          'null',
          'true',
        ),
        { maxLength: 40 },
      )
      .map((a) => a.join(''));
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 40 }), jsonish), (text) => {
        const r = timed(() => parseStrictJson(text));
        if (r.ok) expect(r.value).toEqual(JSON.parse(text));
      }),
      { numRuns: 1000, seed: 3 },
    );
  });

  it('bounds hostile nesting in linear time', () => {
    for (const text of ['['.repeat(200_000), `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`]) {
      expect(timed(() => parseStrictJson(text))).toMatchObject({ ok: false, problem: 'too_deep' });
    }
  });
});

describe('fuzz: raw path gate', () => {
  const piece = fc.constantFrom(
    'a',
    'b',
    '.',
    '..',
    '%2e',
    '%2E',
    '%2f',
    '%5c',
    '%41',
    '%25',
    '%',
    '%zz',
    ';',
    '\\',
    '~',
    '@',
    ':',
    '%c3%a9',
    '%00',
    ' ',
    '//',
  );
  const rawPath = fc.array(piece, { maxLength: 8 }).map((p) => `/${p.join('')}`);
  const segmented = fc
    .array(
      fc.array(piece, { maxLength: 3 }).map((p) => p.join('')),
      { maxLength: 5 },
    )
    .map((s) => `/${s.join('/')}`);

  it('never throws; what it accepts, a URL parser reads as the same path, segment by segment', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          rawPath,
          segmented,
          fc.string({ maxLength: 30 }).map((s) => `/${s}`),
        ),
        (raw) => {
          const r = timed(() => checkRawPath(raw));
          if (!r.ok) return;
          // The WHATWG parser normalises dot segments, backslashes and more: an accepted path must
          // come out unchanged, so the upstream (whatever URL parser it uses) names what the policy saw.
          expect(new URL(raw, 'http://upstream.test').pathname).toBe(raw);
          expect(r.segments).toEqual(
            raw
              .slice(1)
              .split('/')
              .map((s) => decodeURIComponent(s)),
          );
          for (const s of r.segments) {
            expect(s).not.toContain('/');
            expect(['.', '..']).not.toContain(s);
          }
        },
      ),
      { numRuns: 1500, seed: 11 },
    );
  });
});
