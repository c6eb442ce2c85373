// Chaperone runs only on a Node.js whose JSON.parse reads escaped object keys correctly (V8 in Node.js
// 24 does not: nodejs/node#63785). The suite runs on that runtime, and the product's probe agrees.
import { describe, expect, it } from 'vitest';
import { parseStrictJson } from '../../authz-server/input/strict-json.ts';
import { unsoundRuntime } from '../../lib/runtime-check.ts';
import { jsonParseIsSound } from '../../scripts/runtime-check.mjs';

describe('the runtime', () => {
  it('parses escaped JSON keys correctly, by both probes', () => {
    expect(jsonParseIsSound()).toBe(true);
    expect(unsoundRuntime()).toBeNull();
  });

  it('reads the key the upstream reads, after the parse that poisons an affected V8', () => {
    JSON.parse('{"h":[],"\\\\":0}');
    const out = parseStrictJson('{"h":1,"\\n":2}');
    expect(out.ok && Object.keys(out.value as object)).toEqual(['h', '\n']);
  });
});
