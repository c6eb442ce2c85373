// Differential tests for the host builtins: every case is evaluated by the real OPA CLI (`opa eval`,
// the oracle) and by a policy compiled to WebAssembly with policies/capabilities.json and run with
// opa-wasm + createHostBuiltins. Results must be deep-equal; "undefined" (OPA's outcome for a
// builtin error) must be undefined on both sides. One module holds a rule per builtin and is built
// once; the oracle evaluates every case of every builtin in one `opa eval`.
import { createHmac } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { loadPolicy } from '@open-policy-agent/opa-wasm';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { beforeAll, describe, expect, test } from 'vitest';
import { createHostBuiltins, HostBuiltinError } from '../../authz-server/policy/host-builtins.ts';
import { generateCapabilities } from '../../scripts/gen-capabilities.ts';
import {
  buildWasm,
  CAPABILITIES_FILE,
  loadWasmPolicy,
  OpaCommandError,
  opaEval,
  type WasmPolicy,
} from '../support/opa-eval.ts';

/** Builtin name → argument lists. */
type Table = Record<string, unknown[][]>;

const T0 = 1_700_000_000; // seconds: the `time` constraint of most decode_verify cases
const T0_NS = T0 * 1e9;

const b64url = (s: string) => Buffer.from(s, 'utf8').toString('base64url');
const rawToken = (header: unknown, payload: unknown, sig = '') =>
  `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}.${sig}`;

const staticTable: Table = {
  'hex.encode': [[''], ['abc'], ['é😀\u0000'], [5], [null]],
  'hex.decode': [[''], ['616263'], ['C3A9'], ['zz'], ['abc'], ['ff'], ['e282'], ['e282ac41'], ['ed a0'], [5]],
  'urlquery.encode': [["a b&c=d/é~*'()!-_."], [''], ['%+'], [5]],
  'urlquery.decode': [['a+b%20c'], ['%zz'], ['%4'], ['%'], ['%E2%82'], ['é%C3%A9'], [''], [1]],
  'urlquery.encode_object': [
    [{ b: '2', a: ['x', 'y z'] }],
    [{ a: [] }],
    [{ a: 1 }],
    [{ a: [1] }],
    [{ é: 'ü', 'a b': 'c&d', '': '' }],
    [{ B: 'x', a: 'y', Z: 'z' }],
    [{}],
    ['x'],
  ],
  'urlquery.decode_object': [
    ['a=1&b=2&a=3'],
    ['a;b=1'],
    ['%zz=1&b=2'],
    ['=x&y='],
    ['a'],
    [''],
    ['a=1&&b'],
    ['é=ü+x&%C3%A9=2'],
    ['a=%4'],
    [7],
  ],
  'base64url.encode_no_pad': [[''], ['a'], ['ab'], ['abc'], ['é😀?>'], [5]],
  'crypto.md5': [[''], ['abc'], ['é😀'], [5]],
  'crypto.sha1': [[''], ['abc'], ['é😀'], [5]],
  'crypto.sha256': [[''], ['abc'], ['é😀'], [5]],
  'crypto.hmac.md5': [
    ['msg', 'key'],
    ['', ''],
    [1, 'k'],
  ],
  'crypto.hmac.sha1': [
    ['msg', 'key'],
    ['é', '😀'],
  ],
  'crypto.hmac.sha256': [
    ['msg', 'key'],
    ['', ''],
    ['é', '😀'],
    ['m', 2],
  ],
  'crypto.hmac.sha512': [
    ['msg', 'key'],
    ['é', '😀'],
  ],
  'crypto.hmac.equal': [
    ['a', 'a'],
    ['a', 'b'],
    ['a', 'ab'],
    ['', ''],
    [1, 'a'],
  ],
  'strings.any_prefix_match': [
    ['foobar', 'foo'],
    ['foobar', ['x', 'fo']],
    [['a', 'b'], 'b'],
    [
      ['xa', 'yb'],
      ['y', 'z'],
    ],
    [[], 'a'],
    ['a', []],
    ['a', [1]],
    [1, 'a'],
    ['éa', 'é'],
    ['', ''],
    [['x', 1], 'x'],
    ['a', { a: 1 }],
  ],
  'strings.any_suffix_match': [
    ['foobar', 'bar'],
    ['foobar', ['x', 'ar']],
    [['a', 'b'], 'c'],
    [['a😀', 'b'], '😀'],
    [[], []],
    ['a', [null]],
    [true, 'a'],
  ],
  'regex.replace': [
    ['abc', 'b', 'X'],
    ['baaac', 'a*', 'X'],
    ['abc', '(a)(b)', '$2$1'],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a Go regexp template, not JavaScript
    ['abc', '(?P<x>b)', '[${x}]'],
    ['abc', '(?<n>b)', '<$n>'],
    ['abc', '(b)', '$1x'],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a Go regexp template, not JavaScript
    ['abc', '(b)', '${1}x'],
    ['abc', 'b', '$$'],
    ['abc', 'b', '$'],
    ['abc', 'b', '${'],
    ['abc', 'b', '$9'],
    ['abc', '(', 'x'],
    ['abc', '(?=b)', 'x'],
    ['abab', '(a)\\1', 'x'],
    ['a\rb\nc', '.', 'x'],
    ['é😀a', '', '-'],
    ['abc', '\\u0062', 'x'],
    ['aBc', '(?i)b', 'x'],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a Go regexp template, not JavaScript
    ['aaa', 'a', '${0}${0}'],
    ['x y\u00a0z', '\\s', '_'],
    ['line1\nline2', '(?m)^l', 'L'],
    ['abc', '\\pL', '.'],
    ['foo', '^[a-z]', 'F'],
    ['ab', '\\b', '|'],
    [1, 'a', 'b'],
  ],
  'time.parse_rfc3339_ns': [
    ['2024-01-01T00:00:00Z'],
    ['2024-01-01T00:00:00.123456789Z'],
    ['2024-01-01T00:00:00.1234567891Z'],
    ['2024-01-01T00:00:00,5Z'],
    ['2024-02-29T12:00:00Z'],
    ['2023-02-29T12:00:00Z'],
    ['2024-01-01T1:00:00Z'],
    ['2024-01-01t00:00:00Z'],
    ['2024-01-01T00:00:00z'],
    ['2024-01-01 00:00:00Z'],
    ['2024-01-01T00:00:00+05:30'],
    ['2024-01-01T00:00:00-24:00'],
    ['2024-01-01T00:00:00+25:00'],
    ['2024-01-01T24:00:00Z'],
    ['2000-02-28T23:59:60Z'],
    ['1677-09-21T00:12:43.145224192Z'],
    ['1677-09-21T00:12:43.145224191Z'],
    ['2262-04-11T23:47:16.854775807Z'],
    ['2262-04-11T23:47:16.854775808Z'],
    ['1970-01-01T00:00:00Z'],
    ['2024-01-01T00:00:00'],
    [''],
    [5],
  ],
  'time.parse_duration_ns': [
    ['1h'],
    ['1.5h'],
    ['-1m30s'],
    ['+3s'],
    ['.5s'],
    ['1.s'],
    ['0'],
    ['-0'],
    [''],
    ['1'],
    ['1x'],
    ['1µs'],
    ['1μs'],
    ['1us2ns'],
    ['9223372036854775807ns'],
    ['9223372036854775808ns'],
    ['-9223372036854775808ns'],
    ['1.0000000001h'],
    ['1e3s'],
    ['1d'],
    ['1.5d'],
    ['2w'],
    ['1y'],
    ['1d2h30m'],
    ['-1d'],
    ['1..2d'],
    ['106752d'],
    ['1dd'],
    ['d'],
    [3],
  ],
};

/** Extra rules that check values beyond 2^53 exactly (computed inside the policy). */
const exactRules = `
exact_rfc3339 := time.parse_rfc3339_ns(input.args[0]) - 1704067200000000000
exact_duration := time.parse_duration_ns(input.args[0]) - 31536000000000000
`;
const exactTable: Table = {
  exact_rfc3339: [['2024-01-01T00:00:00.123456789Z'], ['2024-01-01T00:00:00.000000001Z']],
  exact_duration: [['8760h'], ['8760h1ns'], ['365d1ns']],
};

function ruleName(builtin: string): string {
  return builtin.replace(/\./g, '_');
}

function argsOf(n: number, from: string): string {
  return Array.from({ length: n }, (_, i) => `${from}[${i}]`).join(', ');
}

function arity(cases: unknown[][]): number {
  return Math.max(...cases.map((c) => c.length));
}

/** The module compiled to wasm: one rule per builtin, fed from input.args. */
function wasmModule(table: Table): string {
  const rules = Object.entries(table).map(
    ([name, cases]) => `${ruleName(name)} := ${name}(${argsOf(arity(cases), 'input.args')})`,
  );
  return `package t\n\n${rules.join('\n')}\n${exactRules}`;
}

/** The oracle module: every case of every builtin in one document. */
function oracleModule(table: Table): string {
  const rules = Object.entries(table).map(
    ([name, cases]) =>
      `out["${name}"] := {i: v | some i, a in input.cases["${name}"]; v := ${name}(${argsOf(arity(cases), 'a')})}`,
  );
  const exact = Object.keys(exactTable).map(
    (name) =>
      `out["${name}"] := {i: v | some i, a in input.cases["${name}"]; v := data.t.${name} with input.args as a}`,
  );
  return `package batch\n\n${[...rules, ...exact].join('\n')}\n`;
}

let table: Table;
let policy: WasmPolicy;
let oracle: Record<string, Record<string, unknown>>;

async function makeJwtCases(): Promise<Table> {
  const rsa = await generateKeyPair('RS256', { extractable: true });
  const rsaOther = await generateKeyPair('RS256', { extractable: true });
  const ec = await generateKeyPair('ES256', { extractable: true });
  const ed = await generateKeyPair('EdDSA', { extractable: true });
  const secret = new TextEncoder().encode('s3cr3t-key-for-hs256-tests-only!');
  const rsaPem = await exportSPKI(rsa.publicKey);
  const rsaOtherPem = await exportSPKI(rsaOther.publicKey);
  const ecPem = await exportSPKI(ec.publicKey);
  const edPem = await exportSPKI(ed.publicKey);
  const rsaJwk = { ...(await exportJWK(rsa.publicKey)), kid: 'k1', alg: 'RS256' };
  const edJwk = await exportJWK(ed.publicKey);
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(rsaOther.publicKey)), kid: 'k0' }, rsaJwk] });
  const jwksWrongAlg = JSON.stringify({ keys: [{ ...rsaJwk, kid: undefined, alg: 'RS512' }] });

  const claims = { iss: 'https://issuer.test', aud: 'api', sub: 'agent-é', exp: T0 + 3600, nbf: T0 - 60 };
  const sign = (
    alg: string,
    key: Parameters<SignJWT['sign']>[0],
    payload: Record<string, unknown> = claims,
    header = {},
  ) => new SignJWT(payload).setProtectedHeader({ alg, typ: 'JWT', ...header }).sign(key);

  const rs256 = await sign('RS256', rsa.privateKey);
  const rs256Kid = await sign('RS256', rsa.privateKey, claims, { kid: 'k1' });
  const ps = await generateKeyPair('PS256', { extractable: true });
  const psPem = await exportSPKI(ps.publicKey);
  const ps256 = await sign('PS256', ps.privateKey);
  const es256 = await sign('ES256', ec.privateKey);
  const eddsa = await sign('EdDSA', ed.privateKey);
  const hs256 = await sign('HS256', secret);
  const expired = await sign('RS256', rsa.privateKey, { ...claims, exp: T0 - 1 });
  const expNow = await sign('RS256', rsa.privateKey, { ...claims, exp: T0 });
  const notYet = await sign('RS256', rsa.privateKey, { ...claims, nbf: T0 + 10 });
  const audList = await sign('RS256', rsa.privateKey, { ...claims, aud: ['other', 'api'] });
  const noAud = await sign('RS256', rsa.privateKey, { iss: claims.iss, exp: T0 + 10 });
  const expString = await sign('RS256', rsa.privateKey, { ...claims, exp: 'tomorrow' });
  const farFuture = await sign('RS256', rsa.privateKey, { ...claims, exp: 4_000_000_000, nbf: 0 });
  // jose refuses to sign an unknown critical header, so this token is signed by hand.
  const critInput = rawToken({ alg: 'HS256', crit: ['x-unknown'], 'x-unknown': 1 }, claims).slice(0, -1);
  const critUnknown = `${critInput}.${createHmac('sha256', secret).update(critInput).digest('base64url')}`;
  const none = rawToken({ alg: 'none', typ: 'JWT' }, claims);
  const jwe = rawToken({ alg: 'RSA-OAEP', enc: 'A256GCM' }, claims, 'AA');
  const arrayPayload = `${b64url('{"alg":"HS256"}')}.${b64url('[1,2]')}.AA`;
  const nested = rawToken({ alg: 'HS256', cty: 'JWT' }, 'x').replace(
    /\.[^.]*\.$/,
    `.${b64url(`"${hs256}"`)}.`,
  );
  const unicodeClaims = rawToken(
    { alg: 'HS256', kid: 'ключ' },
    { name: '名前 😀', n: 1.5, nested: { a: [true, null] } },
    'qg',
  );

  const cert = (pem: string, extra: Record<string, unknown> = {}) => ({
    cert: pem,
    aud: 'api',
    time: T0_NS,
    ...extra,
  });
  const sec = { secret: new TextDecoder().decode(secret), aud: 'api', time: T0_NS };

  return {
    'io.jwt.decode': [
      [rs256],
      [es256],
      [unicodeClaims],
      [nested],
      [none],
      [jwe],
      [arrayPayload],
      ['abc'],
      ['a.b'],
      ['a.b.c.d'],
      ['!!.e30.AA'],
      [`${b64url('{"alg":"HS256"}')}.${b64url('{}')}.!!`],
      [42],
    ],
    'io.jwt.decode_verify': [
      [rs256, cert(rsaPem)],
      [rs256Kid, cert(jwks)],
      [rs256, cert(jwks)],
      [rs256, cert(JSON.stringify(rsaJwk))],
      [rs256, cert(jwksWrongAlg)],
      [ps256, cert(psPem)],
      [ps256, cert(rsaPem)],
      [es256, cert(ecPem)],
      [eddsa, cert(edPem)],
      [eddsa, cert(JSON.stringify(edJwk))],
      [hs256, sec],
      [expired, cert(rsaPem)],
      [expNow, cert(rsaPem)],
      [notYet, cert(rsaPem)],
      [rs256, cert(rsaPem, { aud: 'wrong' })],
      [rs256, { cert: rsaPem, time: T0_NS }],
      [audList, cert(rsaPem)],
      [noAud, cert(rsaPem)],
      [noAud, { cert: rsaPem, time: T0_NS }],
      [rs256, cert(rsaPem, { iss: 'https://issuer.test' })],
      [rs256, cert(rsaPem, { iss: 'https://evil.test' })],
      [noAud, { cert: rsaPem, time: T0_NS, iss: 'https://issuer.test' }],
      [rs256, cert(rsaOtherPem)],
      [rs256, cert(rsaPem, { alg: 'RS512' })],
      [rs256, cert(rsaPem, { alg: 'RS256' })],
      [hs256, cert(rsaPem)],
      [rs256, { ...sec }],
      [none, { ...sec }],
      [none, cert(rsaPem)],
      [critUnknown, sec],
      [expString, cert(rsaPem)],
      [farFuture, { cert: rsaPem, aud: 'api' }],
      ['abc', cert(rsaPem)],
      ['a.b', sec],
      [rs256, { ...cert(rsaPem), extra: 1 }],
      [rs256, { aud: 'api', time: T0_NS }],
      [rs256, { ...cert(rsaPem), secret: 'x' }],
      [rs256, cert('not a key')],
      [rs256, cert(`${rsaPem}\ntrailing`)],
      [rs256, cert(rsaPem, { time: -1 })],
      [rs256, cert(rsaPem, { time: 'now' })],
      [rs256, 'not an object'],
      [jwe, sec],
    ],
    'io.jwt.verify_rs256': [
      [rs256, rsaPem],
      [rs256, rsaOtherPem],
      [rs256Kid, jwks],
      [rs256, jwksWrongAlg],
      [es256, rsaPem],
      [rs256, ecPem],
      [rs256, 'garbage'],
      ['a.b', rsaPem],
      [rs256, 5],
    ],
    'io.jwt.verify_ps256': [
      [ps256, psPem],
      [ps256, rsaPem],
      [rs256, rsaPem],
    ],
    'io.jwt.verify_es256': [
      [es256, ecPem],
      [es256, rsaPem],
      [rs256, ecPem],
    ],
    'io.jwt.verify_eddsa': [
      [eddsa, edPem],
      [eddsa, JSON.stringify(edJwk)],
      [rs256, edPem],
    ],
    'io.jwt.verify_hs256': [
      [hs256, new TextDecoder().decode(secret)],
      [hs256, 'wrong'],
      ['x.y.!!', 'k'],
      ['xy', 'k'],
      [hs256, 1],
    ],
  };
}

beforeAll(async () => {
  table = { ...staticTable, ...(await makeJwtCases()) };
  const module = wasmModule(table);
  const entrypoints = [...Object.keys(table).map(ruleName), ...Object.keys(exactTable)].map((r) => `t/${r}`);
  const [loaded, oracleOut] = await Promise.all([
    loadWasmPolicy(module, { entrypoints, evalTimeNs: () => BigInt(Date.now()) * 1_000_000n }),
    opaEval(
      'data.batch.out',
      { cases: { ...table, ...exactTable } },
      { modules: { 't.rego': module, 'batch.rego': oracleModule(table) } },
    ),
  ]);
  policy = loaded;
  oracle = oracleOut as Record<string, Record<string, unknown>>;
});

describe('host builtins agree with opa eval', () => {
  const names = [...Object.keys(staticTable), 'io.jwt', ...Object.keys(exactTable)];
  test.each(names)('%s', (group) => {
    const entries = Object.entries({ ...table, ...exactTable }).filter(([name]) =>
      group === 'io.jwt' ? name.startsWith('io.jwt.') : name === group,
    );
    expect(entries.length).toBeGreaterThan(0);
    for (const [name, cases] of entries) {
      cases.forEach((args, i) => {
        const wasm = policy.evaluate(`t/${ruleName(name)}`, { args });
        const expected = oracle[name]?.[String(i)];
        expect({ name, i, args, result: wasm }).toEqual({ name, i, args, result: expected });
      });
    }
  });

  test('the JWT table exercises both verdicts and errors', () => {
    const verdicts = (oracle['io.jwt.decode_verify'] ?? {}) as Record<string, [boolean] | undefined>;
    const values = table['io.jwt.decode_verify']!.map((_, i) => verdicts[String(i)]);
    expect(values.filter((v) => v?.[0] === true).length).toBeGreaterThanOrEqual(8);
    expect(values.filter((v) => v?.[0] === false).length).toBeGreaterThanOrEqual(10);
    expect(values.filter((v) => v === undefined).length).toBeGreaterThanOrEqual(8);
  });
});

describe('time.now_ns', () => {
  const module = `package now
diff := time.now_ns() - 1704067200123456789
same if time.now_ns() == time.now_ns()
value := time.now_ns()
`;
  test('is the engine clock, exact beyond 2^53 inside the policy and one value per evaluation', async () => {
    let clock = 1704067200123456789n;
    const p = await loadWasmPolicy(module, {
      entrypoints: ['now/diff', 'now/same', 'now/value'],
      evalTimeNs: () => clock,
    });
    expect(p.evaluate('now/diff')).toBe(0);
    expect(p.evaluate('now/same')).toBe(true);
    clock += 1000n;
    expect(p.evaluate('now/diff')).toBe(1000);
    // Leaving the policy through JSON rounds it to the nearest double, as documented.
    expect(p.evaluate('now/value')).toBe(Number(clock));
  });

  test('accepts a number clock too', async () => {
    const p = await loadWasmPolicy(module, { entrypoints: ['now/value'], evalTimeNs: () => 1_000_000 });
    expect(p.evaluate('now/value')).toBe(1_000_000);
  });
});

describe('errors', () => {
  test('a builtin returning undefined makes the expression undefined; a throw aborts the evaluation', async () => {
    const wasm = await buildWasm({ 'e.rego': 'package e\n\nx := hex.encode(input.s)\n' }, ['e/x']);
    const builtins = createHostBuiltins({ evalTimeNs: () => 0 });
    const throwing = {
      ...builtins,
      'hex.encode': () => {
        throw new HostBuiltinError('hex.encode', 'boom');
      },
    };
    const [normal, aborting] = await Promise.all([
      loadPolicy(wasm, undefined, builtins),
      loadPolicy(wasm, undefined, throwing),
    ]);
    expect(normal.evaluate({ s: 'a' }, 'e/x')).toEqual([{ result: '61' }]);
    expect(normal.evaluate({ s: 1 }, 'e/x')).toEqual([]);
    // opa-wasm lets the exception through: the engine maps it to an ERR_POLICY_EVAL deny.
    expect(() => aborting.evaluate({ s: 'a' }, 'e/x')).toThrow(HostBuiltinError);
  });
});

describe('capabilities file', () => {
  test.each([
    ['http.send', 'x := http.send({"method": "GET", "url": "http://127.0.0.1:1"})'],
    ['net.lookup_ip_addr', 'x := net.lookup_ip_addr("localhost")'],
    ['crypto.x509.parse_certificates', 'x := crypto.x509.parse_certificates(input.c)'],
  ])('rejects %s at build time', async (builtin, rule) => {
    const build = buildWasm({ 'p.rego': `package p\n\n${rule}\n` }, ['p/x']);
    await expect(build).rejects.toBeInstanceOf(OpaCommandError);
    await expect(build).rejects.toThrow(new RegExp(`undefined function ${builtin.replace(/\./g, '\\.')}`));
  });

  test('is what scripts/gen-capabilities.ts generates', async () => {
    expect(await generateCapabilities()).toBe(await readFile(CAPABILITIES_FILE, 'utf8'));
  });
});
