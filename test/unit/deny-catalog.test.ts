// The deny catalog (contracts/errors.ts) and docs/errors.md say the same thing: every deny code's row
// shows the status the catalog gives it, and the token codes are marked as decided by the policy.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DENY_CATALOG, denyOf } from '../../contracts/errors.ts';

const docs = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

/** The HTTP cell of a code's row in the first table of docs/errors.md. */
function httpCell(code: string): string | undefined {
  const row = docs.split('\n').find((line) => line.startsWith(`| \`${code}\``));
  return row?.split('|')[2]?.trim();
}

describe('deny catalog', () => {
  for (const [code, rule] of Object.entries(DENY_CATALOG)) {
    const shown = rule.decidedBy === 'server' ? String(rule.status) : '(policy)';
    it(`${code}: docs/errors.md shows ${shown}`, () => {
      if (rule.decidedBy === 'server') expect(httpCell(code)).toBe(shown);
      else expect(httpCell(code)).toContain(shown);
    });
  }

  it('every public reason is short and fixed; only request codes, ERR_APPROVAL_SPENT, ERR_RESPONSE_NOT_MASKABLE and ERR_LISTING_NOT_FILTERABLE show a detail', () => {
    const showsDetail = Object.entries(DENY_CATALOG)
      .filter(([, rule]) => rule.decidedBy === 'server' && rule.publicDetail)
      .map(([code]) => code)
      .sort();
    expect(showsDetail).toEqual(
      [
        'ERR_APPROVAL_SPENT',
        'ERR_BODY_CONTENT_TYPE',
        'ERR_BODY_TOO_LARGE',
        'ERR_BODY_TRUNCATED',
        'ERR_BODY_UNPARSABLE',
        'ERR_LISTING_NOT_FILTERABLE',
        'ERR_PATH_NONCANONICAL',
        'ERR_PROTOCOL_AMBIGUOUS',
        'ERR_PROTOCOL_INVALID',
        'ERR_PROTOCOL_LIMIT',
        'ERR_REQUEST_MALFORMED',
        'ERR_RESPONSE_NOT_MASKABLE',
      ].sort(),
    );
    for (const rule of Object.values(DENY_CATALOG)) {
      if (rule.decidedBy === 'server') expect(rule.publicReason.length).toBeLessThan(80);
    }
  });

  it('a token code forced into a server deny still fails closed (ERR_INTERNAL, never a made-up status)', () => {
    expect(denyOf('ERR_TOKEN_EXPIRED' as never)).toEqual(denyOf('ERR_INTERNAL'));
  });
});
