// Whether this Node.js parses JSON object keys correctly. V8 in Node.js 24 (seen on 24.14.1 and
// 24.19.0; nodejs/node#63785) can decode an escaped key as `\` once an earlier JSON.parse built a key
// holding a backslash: `{"\n": 1}` then reads as `{"\\": 1}`. A policy would then judge a key the
// upstream never sees, and the audit trail would misread what it stored. Chaperone runs only on a
// runtime that passes this (lib/runtime-check.ts is the product's copy; this one runs before any
// TypeScript can, in the tool installer and the Node launcher).
export function jsonParseIsSound() {
  JSON.parse('{"h":[],"\\\\":0}');
  const keys = Object.keys(JSON.parse('{"h":1,"\\n":2,"\\"":3}'));
  return keys.length === 3 && keys[1] === '\n' && keys[2] === '"';
}
