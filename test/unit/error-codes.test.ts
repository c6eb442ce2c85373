// Every error code Chaperone can produce (deny codes and operational codes) is documented in docs/errors.md.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const source = readFileSync(new URL('../../contracts/errors.ts', import.meta.url), 'utf8');
const docs = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
const unionOf = (name: string) =>
  source.slice(
    source.indexOf(`export type ${name}`),
    source.indexOf(';', source.indexOf(`export type ${name}`)),
  );
const codes = ['AuthzErrorCode', 'OperationalErrorCode'].flatMap((name) =>
  [...unionOf(name).matchAll(/'(ERR_[A-Z_]+)'/g)].map((m) => m[1]!),
);

describe('docs/errors.md', () => {
  it('finds the error codes', () => {
    expect(codes.length).toBeGreaterThan(15);
  });
  for (const code of codes) {
    it(`documents ${code}`, () => {
      expect(docs).toContain(`\`${code}\``);
    });
  }
});
