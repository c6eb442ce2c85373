// The request body as every rule and protocol view reads it: the strict JSON reader (what JSON.parse
// lets through and other servers read differently is refused) and the declared content type (a body
// in another type is refused where something reads it, never silently unread).
import { describe, expect, it } from 'vitest';
import { readContentType } from '../../authz-server/input/body.ts';
import { buildInput } from '../../authz-server/input/build-input.ts';
import { parseStrictJson } from '../../authz-server/input/strict-json.ts';
import { protocolHook } from '../../authz-server/protocols/index.ts';
import { checkRequest } from '../support/authz-client.ts';
import { verifiedIdentity } from '../support/identity.ts';

const identity = verifiedIdentity();

function build(body: string, headers: Record<string, string>, protocol?: string) {
  const req = checkRequest({
    method: 'POST',
    path: '/x',
    headers,
    body,
    contextExtensions: { route_id: 'x/0', target: 'x', ...(protocol ? { protocol } : {}) },
  });
  return buildInput(
    req,
    { identity, identityError: null },
    { requireCompleteBody: true, protocol: protocolHook },
  );
}

describe('strict JSON reader', () => {
  it.each<[string, string, string]>([
    ['a duplicate key', '{"a":1,"a":2}', 'duplicate_key'],
    ['a nested duplicate key', '{"a":{"b":1,"b":1}}', 'duplicate_key'],
    ['keys differing in case', '{"model":"a","Model":"b"}', 'case_variant_key'],
    ['Unicode case folding (long s)', '{"stream":true,"\u017ftream":false}', 'case_variant_key'],
    ['Unicode case folding (Kelvin sign)', '{"kind":1,"\u212aind":2}', 'case_variant_key'],
    ['a key spelled with an ASCII escape', '{"m\\u0065thod":"x"}', 'escaped_key'],
    ['a key with an escaped slash', '{"a\\/b":1}', 'escaped_key'],
    ['an unpaired high surrogate', '{"a":"\\ud800"}', 'unpaired_surrogate'],
    ['an unpaired low surrogate', '{"a":"\\udc00x"}', 'unpaired_surrogate'],
    ['an integer beyond 2^53', '{"max_tokens":9007199254740993}', 'ambiguous_number'],
    ['a number that overflows', '{"max_tokens":1e400}', 'ambiguous_number'],
    ['nesting beyond the bound', `${'['.repeat(65)}${']'.repeat(65)}`, 'too_deep'],
    ['a BOM', '\ufeff{}', 'syntax'],
    ['concatenated values', '{}{}', 'syntax'],
    ['trailing comma', '{"a":1,}', 'syntax'],
    ['a raw control character', '{"a":"\u0001"}', 'syntax'],
  ])('refuses %s', (_name, text, problem) => {
    expect(parseStrictJson(text)).toMatchObject({ ok: false, problem });
  });

  it.each([
    '{"caf\\u00e9":1,"a":"\\ud83d\\ude00","b":"\\"\\\\\\/\\n"}',
    '[1,-0,0.5,1e3,9007199254740991,-9007199254740991,1.5e300]',
    '{"__proto__":{"polluted":true}}',
    ' \n\t"x" ',
    'null',
  ])('reads %s as JSON.parse does', (text) => {
    expect(parseStrictJson(text)).toEqual({ ok: true, value: JSON.parse(text) });
  });

  it('never lets __proto__ become the prototype', () => {
    const r = parseStrictJson('{"__proto__":{"polluted":true}}');
    expect(r.ok && Object.getPrototypeOf(r.value)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });
});

describe('Content-Type', () => {
  it.each<[string, unknown]>([
    ['application/json', { ok: true, media: { type: 'application/json', charset: null } }],
    [
      'Application/JSON; charset="UTF-8"',
      { ok: true, media: { type: 'application/json', charset: 'utf-8' } },
    ],
    [
      'multipart/form-data; boundary="a,b"',
      { ok: true, media: { type: 'multipart/form-data', charset: null } },
    ],
    ['application/json, text/plain', { ok: false, reason: 'content-type is repeated' }],
    ['application/json,application/json', { ok: false, reason: 'content-type is repeated' }],
    ['json', { ok: false, reason: 'content-type is not a media type' }],
    [
      'application/json; charset=utf-8; charset=latin1',
      { ok: false, reason: 'content-type repeats its charset' },
    ],
  ])('%s', (value, expected) => {
    expect(readContentType(value)).toEqual(expected);
  });

  it('refuses a body under a repeated Content-Type on every route', () => {
    expect(build('{"a":1}', { 'content-type': 'application/json,text/plain' })).toMatchObject({
      ok: false,
      code: 'ERR_BODY_CONTENT_TYPE',
    });
  });

  it('refuses JSON in another charset than UTF-8', () => {
    expect(build('{"a":1}', { 'content-type': 'application/json; charset=latin1' })).toMatchObject({
      ok: false,
      code: 'ERR_BODY_CONTENT_TYPE',
    });
  });

  it('refuses ambiguous JSON as parsed_body on plain routes too', () => {
    expect(
      build('{"priority":"low","Priority":"critical"}', { 'content-type': 'application/json' }),
    ).toMatchObject({
      ok: false,
      code: 'ERR_BODY_UNPARSABLE',
    });
  });

  it.each(['mcp', 'llm', 'graphql'])('a %s route takes application/json only', (protocol) => {
    const variants: Record<string, string>[] = [
      {},
      { 'content-type': 'text/plain' },
      { 'content-type': 'text/json' },
      { 'content-type': 'application/x-www-form-urlencoded' },
    ];
    for (const headers of variants) {
      expect(build('{"jsonrpc":"2.0","id":1,"method":"tools/list"}', headers, protocol)).toMatchObject({
        ok: false,
        code: 'ERR_BODY_CONTENT_TYPE',
      });
    }
  });

  it('a plain route leaves text bodies unparsed (the library refuses them where a body rule applies)', () => {
    const r = build('{"priority":"critical"}', { 'content-type': 'text/plain' });
    expect(r.ok && 'parsed_body' in r.input).toBe(false);
  });
});
