// data.chaperone.lib.paths.within (policies/chaperone/lib/paths.rego), the path helper the shipped MCP
// argument confinement uses, checked three ways on the same cases: OPA itself (`opa eval`, the oracle
// for Rego semantics), the policy compiled to WebAssembly with our capabilities (what the authz server
// runs) and an independent reference model on node:path. A hand-written table of escapes plus
// generated paths over an alphabet of separators, dots and escapes.
import { readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { loadPolicy } from '@open-policy-agent/opa-wasm';
import fc from 'fast-check';
import { beforeAll, describe, expect, test } from 'vitest';
import { createHostBuiltins } from '../../authz-server/policy/host-builtins.ts';
import { PROJECT_ROOT } from '../../lib/tools.ts';
import { buildWasm, opaEval } from '../support/opa-eval.ts';

const WRAPPER = `package t

import rego.v1

import data.chaperone.lib.paths

out := [paths.within(c[0], c[1]) | some c in input.cases]
`;

/** Independent model: plain absolute paths, then node's POSIX normalisation and relative path. */
function reference(path: unknown, prefix: unknown): boolean {
  const plain = (s: unknown): s is string =>
    typeof s === 'string' &&
    s.startsWith('/') &&
    ![...s].some((c) => c === '%' || c === '\\' || c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f) &&
    !s.split('/').some((seg) => seg === '.' || seg === '..');
  if (!plain(path) || !plain(prefix)) return false;
  const rel = posix.relative(posix.normalize(prefix), posix.normalize(path));
  return rel === '' || !(rel === '..' || rel.startsWith('../'));
}

const table: [unknown, unknown][] = [
  ['/srv/public/a.txt', '/srv/public/'],
  ['/srv/public', '/srv/public/'],
  ['/srv/public/', '/srv/public'],
  ['/srv//public/a', '/srv/public'],
  ['/srv/public-2/a', '/srv/public'],
  ['/srv/publicity', '/srv/public'],
  ['/srv', '/srv/public'],
  ['/etc/passwd', '/srv/public/'],
  ['/srv/public/../../etc/passwd', '/srv/public/'],
  ['/srv/public/..', '/srv/public/'],
  ['/srv/public/./a', '/srv/public/'],
  ['/srv/public/%2e%2e/etc', '/srv/public/'],
  ['/srv/public/%2F', '/srv/public/'],
  ['/srv/public\\..\\etc', '/srv/public/'],
  ['/srv/public/a\u0000b', '/srv/public/'],
  ['/srv/public/a\u007fb', '/srv/public/'],
  ['srv/public/a', 'srv/public'],
  ['', '/'],
  ['/', '/'],
  ['/x', '/'],
  ['/srv/public/..a/b..', '/srv/public'],
  ['/srv/public/…/etc', '/srv/public'],
  ['/srv/public/ü', '/srv/public'],
  [null, '/srv'],
  [5, '/srv'],
  [['/srv/a'], '/srv'],
  ['/srv/a', null],
  ['/srv/a', '/srv/../srv'],
];

const segment = fc.constantFrom(
  '',
  '.',
  '..',
  'a',
  'b',
  '..a',
  '%2e',
  '%2f',
  'a\\b',
  'a\nb',
  'srv',
  'public',
);
const pathArb = fc
  .tuple(fc.boolean(), fc.array(segment, { maxLength: 5 }))
  .map(([absolute, segs]) => `${absolute ? '/' : ''}${segs.join('/')}`);
// Half the pairs take the prefix from the path itself, so both answers are common.
const pairArb = fc.oneof(
  fc.tuple(pathArb, pathArb),
  fc.tuple(pathArb, fc.nat(5)).map(([p, k]): [string, string] => [
    p,
    p
      .split('/')
      .slice(0, k + 1)
      .join('/') || '/',
  ]),
);
const generated: [string, string][] = fc.sample(pairArb, { numRuns: 400, seed: 12 });

const cases = [...table, ...generated];
let oracle: boolean[];
let wasm: boolean[];

beforeAll(async () => {
  const library = await readFile(join(PROJECT_ROOT, 'policies', 'chaperone', 'lib', 'paths.rego'), 'utf8');
  const modules = { 'paths.rego': library, 't.rego': WRAPPER };
  const [oracleOut, bytes] = await Promise.all([
    opaEval('data.t.out', { cases }, { modules }),
    buildWasm(modules, ['t/out']),
  ]);
  oracle = oracleOut as boolean[];
  const policy = await loadPolicy(bytes, undefined, createHostBuiltins({ evalTimeNs: () => 0 }));
  wasm = (policy.evaluate({ cases }, 't/out') as { result: boolean[] }[])[0]!.result;
});

describe('chaperone.lib.paths.within', () => {
  test('opa eval, the WebAssembly build and the reference model agree on every case', () => {
    expect(oracle).toHaveLength(cases.length);
    cases.forEach(([path, prefix], i) => {
      const expected = reference(path, prefix);
      expect({ path, prefix, opa: oracle[i], wasm: wasm[i] }).toEqual({
        path,
        prefix,
        opa: expected,
        wasm: expected,
      });
    });
  });

  test('the generated cases exercise both answers', () => {
    const answers = generated.map(([p, q]) => reference(p, q));
    expect(answers.filter(Boolean).length).toBeGreaterThan(10);
    expect(answers.filter((a) => !a).length).toBeGreaterThan(10);
  });
});
