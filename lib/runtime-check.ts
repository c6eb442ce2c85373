// Refuses a Node.js whose JSON.parse misreads escaped object keys (V8 in Node.js 24, nodejs/node#63785:
// after one JSON.parse built a key holding a backslash, a later `{"\n": 1}` can read as `{"\\": 1}`).
// On such a runtime a policy judges a key the upstream never sees and the audit trail misreads what it
// stored, so Chaperone does not start on it (fail closed). scripts/runtime-check.mjs is the same probe
// for the installer and the launcher, which run before TypeScript can.

/** Null when JSON.parse reads escaped keys correctly; else what is wrong, for the operator. */
export function unsoundRuntime(): string | null {
  JSON.parse('{"h":[],"\\\\":0}');
  const keys = Object.keys(JSON.parse('{"h":1,"\\n":2,"\\"":3}'));
  if (keys.length === 3 && keys[1] === '\n' && keys[2] === '"') return null;
  return (
    `Node.js ${process.versions.node} misreads escaped JSON object keys (V8, nodejs/node#63785); ` +
    'Chaperone refuses to run on it: use Node.js 22 LTS (`npm run tools` installs 22.20.0 into .tools/node)'
  );
}
