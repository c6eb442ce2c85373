// The policy input builder on CheckRequests exactly as the server receives them: each request is
// encoded with Envoy's real ext_authz proto and decoded with the data-path loader options, so
// Buffers, {seconds, nanos} and Struct encodings are the real ones.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type * as grpc from '@grpc/grpc-js';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH } from '../../authz-server/input/body.ts';
import {
  type BuildInputOptions,
  type BuildInputResult,
  buildInput,
  type InputAuth,
  type PolicyInput,
  type ProtocolContext,
} from '../../authz-server/input/build-input.ts';
import { structToJson, timestampToRfc3339 } from '../../authz-server/input/protojson.ts';
import { AUTHZ_DEFAULTS } from '../../config/authz-defaults.ts';
import { EXT_AUTHZ_PROTO, loadEnvoyProtos, lookup } from '../../lib/envoy-proto.ts';
import { locateTool, PROJECT_ROOT } from '../../lib/tools.ts';
import { checkRequest, type RequestSpec } from '../support/authz-client.ts';
import { opaEval, wasmEval } from '../support/opa-eval.ts';

// --- CheckRequests as the server sees them ---
const root = loadEnvoyProtos([EXT_AUTHZ_PROTO]);
const checkMethod = lookup<grpc.ServiceClientConstructor>(root, 'envoy.service.auth.v3.Authorization')
  .service['Check']!;

function asServerSees(message: unknown): Record<string, any> {
  return checkMethod.requestDeserialize(checkMethod.requestSerialize(message));
}

interface Spec extends RequestSpec {
  /** Send the body as http.body (text) instead of http.rawBody (pack_as_bytes). */
  bodyAsText?: boolean;
  time?: { seconds: number; nanos: number };
  extraAttributes?: Record<string, unknown>;
}

const FIXED_TIME = { seconds: 1_780_000_000, nanos: 0 };

function decoded(spec: Spec): Record<string, any> {
  const msg = checkRequest({ id: 'req-test', ...spec }) as { attributes: Record<string, any> };
  const http = msg.attributes['request'].http;
  if (spec.bodyAsText && spec.body !== undefined) {
    delete http.rawBody;
    http.body = spec.body;
  }
  msg.attributes['request'].time = spec.time ?? FIXED_TIME;
  Object.assign(msg.attributes, spec.extraAttributes ?? {});
  return asServerSees(msg);
}

const ALICE: NonNullable<InputAuth['identity']> = {
  issuer: 'https://idp.example.test',
  subject: 'alice',
  subject_issuer: 'https://idp.example.test',
  audience: ['chaperone'],
  email: 'alice@example.test',
  name: 'Alice',
  groups: ['eng', 'admins'],
  actor: { sub: 'agent-7', agent: 'coder', run_id: 'run-42' },
  token_id: 'jti-1',
  expires_at: 1_900_000_000,
  claims: { iss: 'https://idp.example.test', sub: 'alice', aud: 'chaperone', nested: { level: 1 } },
};
const NO_IDENTITY: InputAuth = {
  identity: null,
  identityError: { code: 'ERR_TOKEN_MISSING', reason: 'no bearer token' },
};
const WITH_ALICE: InputAuth = { identity: ALICE, identityError: null };
const STRICT: BuildInputOptions = { requireCompleteBody: true };
const LENIENT: BuildInputOptions = { requireCompleteBody: false };

function build(
  spec: Spec,
  options: BuildInputOptions = STRICT,
  auth: InputAuth = NO_IDENTITY,
): BuildInputResult {
  return buildInput(decoded(spec), auth, options);
}

function input(spec: Spec, options: BuildInputOptions = STRICT, auth: InputAuth = NO_IDENTITY): PolicyInput {
  const res = build(spec, options, auth);
  if (!res.ok) throw new Error(`expected an input, got ${res.code}: ${res.reason}`);
  return res.input;
}

const JSON_CT = { 'content-type': 'application/json' };
const FORM_CT = { 'content-type': 'application/x-www-form-urlencoded' };

// --- schemas ---
const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
const validateInput = ajv.compile(
  JSON.parse(readFileSync(join(PROJECT_ROOT, 'schemas/input.schema.json'), 'utf8')),
);
const validateResult = ajv.compile(
  JSON.parse(readFileSync(join(PROJECT_ROOT, 'schemas/result.schema.json'), 'utf8')),
);

function expectValidInput(value: PolicyInput): void {
  // What the policy receives is the JSON text of the input (opa-wasm stringifies it).
  const asJson = JSON.parse(JSON.stringify(value));
  const valid = validateInput(asJson);
  expect(validateInput.errors ?? [], JSON.stringify(asJson).slice(0, 300)).toEqual([]);
  expect(valid).toBe(true);
}

describe('buildInput: the document', () => {
  it('builds the OPA-Envoy document plus identity and route for a realistic GET', () => {
    const req = decoded({
      method: 'GET',
      path: '/demo/items?limit=10&tag=a&tag=b',
      host: 'api.example.test',
      headers: { authorization: 'Bearer x.y.z', 'user-agent': 'agent/1.0' },
      contextExtensions: { route_id: 'demo/0', target: 'demo', checksum: 'c0ffee' },
      id: 'req-1',
      time: { seconds: 1_780_000_000, nanos: 250_000_000 },
    });
    const res = buildInput(req, WITH_ALICE, STRICT);
    expect(res.ok).toBe(true);
    if (!res.ok) return;
    const { input } = res;
    expect(input).toEqual({
      attributes: {
        source: { address: { socketAddress: { address: '127.0.0.1', portValue: 50000 } } },
        destination: { address: { socketAddress: { address: '127.0.0.1', portValue: 10000 } } },
        request: {
          time: '2026-05-28T20:26:40.250Z',
          http: {
            id: 'req-1',
            method: 'GET',
            headers: {
              ':authority': 'api.example.test',
              ':method': 'GET',
              ':path': '/demo/items?limit=10&tag=a&tag=b',
              authorization: 'Bearer x.y.z',
              'user-agent': 'agent/1.0',
            },
            path: '/demo/items?limit=10&tag=a&tag=b',
            host: 'api.example.test',
            scheme: 'http',
            protocol: 'HTTP/1.1',
          },
        },
        contextExtensions: { route_id: 'demo/0', target: 'demo', checksum: 'c0ffee' },
      },
      parsed_path: ['demo', 'items'],
      parsed_query: { limit: ['10'], tag: ['a', 'b'] },
      truncated_body: false,
      version: { ext_authz: 'v3', encoding: 'protojson' },
      identity: ALICE,
      identity_error: null,
      route: { id: 'demo/0', target: 'demo', checksum: 'c0ffee' },
    });
    expect('parsed_body' in input).toBe(false);
    expectValidInput(input);
  });

  it('shares every unchanged subtree with the request and leaves the request untouched', () => {
    const req = decoded({ method: 'POST', path: '/x', headers: JSON_CT, body: '{"a":1}' });
    const raw = req['attributes'].request.http.rawBody;
    const input = (buildInput(req, NO_IDENTITY, STRICT) as { input: PolicyInput }).input;
    const attrs = input.attributes as Record<string, any>;
    expect(attrs['source']).toBe(req['attributes'].source);
    expect(attrs['contextExtensions']).toBe(req['attributes'].contextExtensions);
    expect(attrs['request'].http.headers).toBe(req['attributes'].request.http.headers);
    expect(attrs['request'].http.rawBody).toBe(Buffer.from('{"a":1}').toString('base64'));
    expect(req['attributes'].request.http.rawBody).toBe(raw);
    expect(Buffer.isBuffer(raw)).toBe(true);
    expect(typeof req['attributes'].request.time).toBe('object');
  });

  it('returns the attributes object itself when nothing needs re-encoding', () => {
    const req = { attributes: { request: { http: { method: 'GET', path: '/a', headers: {} } } } };
    const res = buildInput(req, NO_IDENTITY, STRICT);
    expect(res.ok && res.input.attributes).toBe(req.attributes);
  });

  it('keeps a text body (no pack_as_bytes) as it is', () => {
    const i = input({ method: 'POST', path: '/x', headers: JSON_CT, body: '{"a":1}', bodyAsText: true });
    expect((i.attributes as any).request.http.body).toBe('{"a":1}');
    expect(i.parsed_body).toEqual({ a: 1 });
  });

  it('passes identity_error through when there is no identity', () => {
    const i = input({ path: '/a' });
    expect(i.identity).toBeNull();
    expect(i.identity_error).toEqual({ code: 'ERR_TOKEN_MISSING', reason: 'no bearer token' });
    expectValidInput(i);
  });

  it.each([
    [
      { route_id: 'demo/0', target: 'demo', checksum: 'abc' },
      { id: 'demo/0', target: 'demo', checksum: 'abc' },
    ],
    [{ route_id: 'demo/0' }, { id: 'demo/0', target: null, checksum: null }],
    [{ target: 'demo' }, { id: null, target: 'demo', checksum: null }],
    [{ other: 'x' }, null],
    [{}, null],
  ])('route from context_extensions %j → %j', (contextExtensions, route) => {
    const i = input({ path: '/a', contextExtensions });
    expect(i.route).toEqual(route);
    expectValidInput(i);
  });

  it('renders request.time as protojson does (RFC 3339, 0/3/6/9 fractional digits)', () => {
    const cases: [number, number, string][] = [
      [0, 0, '1970-01-01T00:00:00Z'],
      [1_700_000_000, 0, '2023-11-14T22:13:20Z'],
      [1_700_000_000, 123_000_000, '2023-11-14T22:13:20.123Z'],
      [1_700_000_000, 123_456_000, '2023-11-14T22:13:20.123456Z'],
      [1_700_000_000, 123_456_789, '2023-11-14T22:13:20.123456789Z'],
      [1_700_000_000, 1, '2023-11-14T22:13:20.000000001Z'],
      [1_700_000_000, 5_000_000, '2023-11-14T22:13:20.005Z'],
      [-62_135_596_800, 0, '0001-01-01T00:00:00Z'],
      [253_402_300_799, 999_999_999, '9999-12-31T23:59:59.999999999Z'],
    ];
    for (const [seconds, nanos, text] of cases) {
      expect(timestampToRfc3339({ seconds, nanos })).toBe(text);
      expect((input({ path: '/', time: { seconds, nanos } }).attributes as any).request.time).toBe(text);
    }
    expect(timestampToRfc3339({})).toBe('1970-01-01T00:00:00Z');
    expect(timestampToRfc3339({ seconds: 253_402_300_800, nanos: 0 })).toBeNull();
    expect(timestampToRfc3339({ seconds: 0, nanos: 1_000_000_000 })).toBeNull();
    expect(timestampToRfc3339({ seconds: 1.5, nanos: 0 })).toBeNull();
  });

  it('denies a request time outside the Timestamp range as malformed', () => {
    expect(build({ path: '/', time: { seconds: 300_000_000_000, nanos: 0 } })).toEqual({
      ok: false,
      code: 'ERR_REQUEST_MALFORMED',
      reason: 'request time is out of range',
    });
  });

  it('turns metadata Structs into plain JSON, as protojson prints them', () => {
    const i = input({
      path: '/a',
      extraAttributes: {
        metadataContext: {
          filterMetadata: {
            'envoy.filters.http.jwt_authn': {
              fields: {
                payload: {
                  structValue: {
                    fields: {
                      sub: { stringValue: 'alice' },
                      n: { numberValue: 3 },
                      ok: { boolValue: true },
                      none: { nullValue: 'NULL_VALUE' },
                      groups: { listValue: { values: [{ stringValue: 'a' }, { stringValue: 'b' }] } },
                    },
                  },
                },
              },
            },
          },
        },
        tlsSession: { sni: 'api.example.test' },
      },
    });
    const attrs = i.attributes as any;
    expect(attrs.metadataContext).toEqual({
      filterMetadata: {
        'envoy.filters.http.jwt_authn': {
          payload: { sub: 'alice', n: 3, ok: true, none: null, groups: ['a', 'b'] },
        },
      },
    });
    expect(attrs.tlsSession).toEqual({ sni: 'api.example.test' });
    expectValidInput(i);
  });

  it('reads headers from headerMap when Envoy sends raw headers (encode_raw_headers)', () => {
    const body = '{"model":"m"}';
    const req = asServerSees({
      attributes: {
        request: {
          http: {
            method: 'POST',
            path: '/v1/x',
            headerMap: {
              headers: [
                { key: 'content-type', rawValue: Buffer.from('application/json') },
                { key: 'content-length', rawValue: Buffer.from(String(body.length)) },
              ],
            },
            rawBody: Buffer.from(body),
          },
        },
      },
    });
    const res = buildInput(req, NO_IDENTITY, STRICT);
    expect(res.ok).toBe(true);
    if (!res.ok) return;
    expect(res.input.parsed_body).toEqual({ model: 'm' });
    expect((res.input.attributes as any).request.http.headerMap.headers[0]).toEqual({
      key: 'content-type',
      rawValue: Buffer.from('application/json').toString('base64'),
    });
    expectValidInput(res.input);
    const partial = asServerSees({
      attributes: {
        request: {
          http: {
            method: 'POST',
            path: '/v1/x',
            headerMap: { headers: [{ key: 'x-envoy-auth-partial-body', rawValue: Buffer.from('true') }] },
            rawBody: Buffer.from(body),
          },
        },
      },
    });
    expect(buildInput(partial, NO_IDENTITY, STRICT)).toMatchObject({ ok: false, code: 'ERR_BODY_TRUNCATED' });
  });
});

describe('buildInput: malformed CheckRequests', () => {
  const cases: [string, unknown, string][] = [
    ['null', null, 'CheckRequest has no attributes'],
    ['a number', 42, 'CheckRequest has no attributes'],
    ['no attributes', {}, 'CheckRequest has no attributes'],
    ['attributes is an array', { attributes: [] }, 'CheckRequest has no attributes'],
    ['no request', { attributes: {} }, 'CheckRequest has no HTTP request attributes'],
    ['no http', { attributes: { request: {} } }, 'CheckRequest has no HTTP request attributes'],
    [
      'http is a string',
      { attributes: { request: { http: 'GET /' } } },
      'CheckRequest has no HTTP request attributes',
    ],
    ['no method', { attributes: { request: { http: { path: '/' } } } }, 'request method is missing'],
    [
      'empty method',
      { attributes: { request: { http: { method: '', path: '/' } } } },
      'request method is missing',
    ],
    ['no path', { attributes: { request: { http: { method: 'GET' } } } }, 'request path is missing'],
    [
      'empty path',
      { attributes: { request: { http: { method: 'GET', path: '' } } } },
      'request path is missing',
    ],
    [
      'path not a string',
      { attributes: { request: { http: { method: 'GET', path: 7 } } } },
      'request path is missing',
    ],
    ['asterisk form', decoded({ method: 'OPTIONS', path: '*' }), 'request target is not an absolute path'],
    [
      'authority form',
      decoded({ method: 'CONNECT', path: 'api.example.test:443' }),
      'request target is not an absolute path',
    ],
    ['absolute form', decoded({ path: 'http://admin/x' }), 'request target is not an absolute path'],
    ['relative path', decoded({ path: 'no-slash' }), 'request target is not an absolute path'],
    ['query only', decoded({ path: '?a=1' }), 'request target is not an absolute path'],
    ['fragment after the query', decoded({ path: '/a?x=1#frag' }), 'request target has a fragment'],
  ];
  it.each(cases)('%s → ERR_REQUEST_MALFORMED', (_name, req, reason) => {
    expect(buildInput(req, NO_IDENTITY, STRICT)).toEqual({
      ok: false,
      code: 'ERR_REQUEST_MALFORMED',
      reason,
    });
  });
});

describe('buildInput: parsed_path', () => {
  it.each([
    ['/', ['']],
    ['/demo/', ['demo', '']],
    ['/demo/items?x=/../admin', ['demo', 'items']],
    ['/a%20b/caf%C3%A9', ['a b', 'café']],
    ['/v1/chat/completions', ['v1', 'chat', 'completions']],
  ])('%s → %j', (path, segments) => {
    expect(input({ path }).parsed_path).toEqual(segments);
  });

  it.each([
    ['//admin/x', 'empty path segment ("//")'],
    ['/a/%2e%2e/admin', 'dot segment in path'],
    ['/demo/../admin', 'dot segment in path'],
    ['/a%2Fb', 'encoded slash (%2F) in path'],
    ['/a%5cb', 'encoded backslash (%5C) in path'],
    ['/a\\b', 'backslash in path'],
    ['/a;b', 'semicolon (path parameter) in path'],
    ['/a%00b', 'encoded control character in path'],
    ['/a\tb', 'control character in path'],
    ['/%zz', 'invalid percent-encoding in path'],
    ['/%zz?ok=1', 'invalid percent-encoding in path'],
  ])('%j → ERR_PATH_NONCANONICAL (%s)', (path, reason) => {
    expect(build({ path })).toEqual({
      ok: false,
      code: 'ERR_PATH_NONCANONICAL',
      reason: `non-canonical path: ${reason}`,
    });
  });
});

describe('buildInput: parsed_query', () => {
  it.each([
    ['/a', {}],
    ['/a?', {}],
    ['/a?q=x', { q: ['x'] }],
    ['/a?q=x&q=y&r=z', { q: ['x', 'y'], r: ['z'] }],
    ['/a?a+b=c+d', { 'a b': ['c d'] }],
    ['/a?x=%2B1&y=%20', { x: ['+1'], y: [' '] }],
    ['/a?flag', { flag: [''] }],
    ['/a?flag&flag=1', { flag: ['', '1'] }],
    ['/a?=v', { '': ['v'] }],
    ['/a?k=', { k: [''] }],
    ['/a?a=1&&b=2&', { a: ['1'], b: ['2'] }],
    ['/a?x=a=b', { x: ['a=b'] }],
    ['/a?name=caf%C3%A9', { name: ['café'] }],
    ['/a?path=/../admin&s=%2F', { path: ['/../admin'], s: ['/'] }],
    ['/a?x=1?y=2', { x: ['1?y=2'] }],
  ])('%s → %j', (path, query) => {
    const i = input({ path });
    expect({ ...i.parsed_query }).toEqual(query);
    expectValidInput(i);
  });

  it.each(['/a?%zz=1', '/a?x=%', '/a?x=%4', '/a?x=%ff', '/a?x=%C3'])('%s → ERR_REQUEST_MALFORMED', (path) => {
    expect(build({ path })).toEqual({
      ok: false,
      code: 'ERR_REQUEST_MALFORMED',
      reason: 'query string: invalid percent-encoding',
    });
  });
});

describe('buildInput: parsed_body', () => {
  it.each<[string, Spec, unknown]>([
    [
      'JSON (rawBody)',
      { headers: JSON_CT, body: '{"model":"gpt-4o-mini","max_tokens":512}' },
      { model: 'gpt-4o-mini', max_tokens: 512 },
    ],
    ['JSON (text body)', { headers: JSON_CT, body: '{"a":[1,2]}', bodyAsText: true }, { a: [1, 2] }],
    [
      'JSON with charset',
      { headers: { 'content-type': 'application/json; charset=utf-8' }, body: '[1]' },
      [1],
    ],
    [
      'JSON, type in upper case',
      { headers: { 'content-type': 'Application/JSON' }, body: '{"x":true}' },
      { x: true },
    ],
    [
      '+json type',
      { headers: { 'content-type': 'application/vnd.api+json' }, body: '{"data":{}}' },
      { data: {} },
    ],
    [
      'merge-patch+json',
      { headers: { 'content-type': 'application/merge-patch+json' }, body: '{"a":null}' },
      { a: null },
    ],
    ['JSON scalar', { headers: JSON_CT, body: '42' }, 42],
    ['JSON string', { headers: JSON_CT, body: '"hi"' }, 'hi'],
    ['JSON with unicode', { headers: JSON_CT, body: '{"name":"café ✓"}' }, { name: 'café ✓' }],
    ['form', { headers: FORM_CT, body: 'a=1&a=2&b=x+y&c=%2F' }, { a: ['1', '2'], b: ['x y'], c: ['/'] }],
    [
      'form with charset',
      { headers: { 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8' }, body: 'k=v' },
      { k: ['v'] },
    ],
  ])('%s', (_name, spec, parsed) => {
    const i = input({ method: 'POST', path: '/x', ...spec });
    expect(i.truncated_body).toBe(false);
    expect(JSON.parse(JSON.stringify(i.parsed_body))).toEqual(parsed);
    expectValidInput(i);
  });

  it.each<[string, Spec]>([
    ['no body', { method: 'GET' }],
    ['empty JSON body', { headers: JSON_CT, body: '' }],
    ['text/plain', { headers: { 'content-type': 'text/plain' }, body: '{"a":1}' }],
    ['no content type', { body: '{"a":1}' }],
    [
      'multipart (not parsed)',
      { headers: { 'content-type': 'multipart/form-data; boundary=x' }, body: '--x--' },
    ],
    [
      'octet-stream with invalid UTF-8',
      { headers: { 'content-type': 'application/octet-stream' }, rawBody: Buffer.from([0xff, 0xfe]) },
    ],
    ['application/jsonl is not JSON', { headers: { 'content-type': 'application/jsonl' }, body: '{}\n{}' }],
  ])('%s → no parsed_body', (_name, spec) => {
    const i = input({ method: 'POST', path: '/x', ...spec });
    expect('parsed_body' in i).toBe(false);
    expect(i.truncated_body).toBe(false);
    expectValidInput(i);
  });

  it('prefers rawBody over body when Envoy sends both', () => {
    const req = decoded({ method: 'POST', path: '/x', headers: JSON_CT, body: '{"from":"raw"}' });
    req['attributes'].request.http.body = '{"from":"text"}';
    const res = buildInput(req, NO_IDENTITY, STRICT);
    expect(res.ok && res.input.parsed_body).toEqual({ from: 'raw' });
  });

  it.each<[string, Spec, string]>([
    ['truncated JSON', { headers: JSON_CT, body: '{"verdict": tru' }, 'request body is not valid JSON'],
    ['trailing garbage', { headers: JSON_CT, body: '{"a":1} x' }, 'request body is not valid JSON'],
    ['whitespace only', { headers: JSON_CT, body: '   ' }, 'request body is not valid JSON'],
    ['single quotes', { headers: JSON_CT, body: "{'a':1}" }, 'request body is not valid JSON'],
    [
      'invalid UTF-8 (rawBody)',
      { headers: JSON_CT, rawBody: Buffer.from([0xff, 0xfe, 0x00]) },
      'request body is not valid UTF-8',
    ],
    [
      '+json not JSON',
      { headers: { 'content-type': 'application/problem+json' }, body: 'nope' },
      'request body is not valid JSON',
    ],
    [
      'bad form escape',
      { headers: FORM_CT, body: 'a=%zz' },
      'request body is not valid form data: invalid percent-encoding',
    ],
    [
      'form, invalid UTF-8',
      { headers: FORM_CT, rawBody: Buffer.from([0x61, 0x3d, 0xc3]) },
      'request body is not valid UTF-8',
    ],
  ])('%s → ERR_BODY_UNPARSABLE', (_name, spec, reason) => {
    expect(build({ method: 'POST', path: '/x', ...spec })).toEqual({
      ok: false,
      code: 'ERR_BODY_UNPARSABLE',
      reason,
    });
  });

  it(`accepts JSON nested ${MAX_JSON_DEPTH} levels and refuses one more`, () => {
    const nest = (n: number) => '['.repeat(n - 1) + '{"a":1}' + ']'.repeat(n - 1);
    expect(build({ method: 'POST', path: '/x', headers: JSON_CT, body: nest(MAX_JSON_DEPTH) }).ok).toBe(true);
    const reason = `request body nests deeper than ${MAX_JSON_DEPTH} levels`;
    for (const body of [nest(MAX_JSON_DEPTH + 1), '['.repeat(100_000) + ']'.repeat(100_000)]) {
      expect(build({ method: 'POST', path: '/x', headers: JSON_CT, body })).toEqual({
        ok: false,
        code: 'ERR_BODY_UNPARSABLE',
        reason,
      });
    }
  });
});

describe('buildInput: truncated bodies', () => {
  const body = '{"priority":"low"}';
  const cases: [string, Spec, BuildInputOptions, boolean][] = [
    [
      'complete, with content-length',
      { headers: { ...JSON_CT, 'content-length': String(body.length) }, body },
      STRICT,
      false,
    ],
    ['complete, no content-length (chunked)', { headers: JSON_CT, body }, STRICT, false],
    [
      'partial-body header false',
      { headers: { ...JSON_CT, 'x-envoy-auth-partial-body': 'false' }, body },
      STRICT,
      false,
    ],
    [
      'partial-body header true',
      { headers: { ...JSON_CT, 'x-envoy-auth-partial-body': 'true' }, body },
      STRICT,
      true,
    ],
    [
      'partial-body header True',
      { headers: { ...JSON_CT, 'x-envoy-auth-partial-body': 'True' }, body },
      STRICT,
      true,
    ],
    [
      'content-length above what arrived',
      { headers: { ...JSON_CT, 'content-length': '10000' }, body },
      STRICT,
      true,
    ],
    [
      'content-length but no body forwarded',
      { headers: { ...JSON_CT, 'content-length': '18' } },
      STRICT,
      true,
    ],
    [
      'at maxBodyBytes',
      { headers: JSON_CT, body },
      { requireCompleteBody: true, maxBodyBytes: body.length },
      false,
    ],
  ];

  it.each(cases)('%s', (_name, spec, options, truncated) => {
    const strict = build({ method: 'POST', path: '/x', ...spec }, options);
    const lenient = build(
      { method: 'POST', path: '/x', ...spec },
      { ...options, requireCompleteBody: false },
    );
    if (truncated) {
      expect(strict).toEqual({
        ok: false,
        code: 'ERR_BODY_TRUNCATED',
        reason: 'request body did not reach the authorization check in full',
      });
      expect(lenient.ok).toBe(true);
      if (!lenient.ok) return;
      expect(lenient.input.truncated_body).toBe(true);
      expect('parsed_body' in lenient.input).toBe(false);
      expectValidInput(lenient.input);
    } else {
      expect(strict.ok).toBe(true);
      expect(strict.ok && strict.input.truncated_body).toBe(false);
      expect(lenient).toEqual(strict);
    }
  });

  it('does not parse a truncated body, even an unparsable one', () => {
    const res = build(
      {
        method: 'POST',
        path: '/x',
        headers: { ...JSON_CT, 'x-envoy-auth-partial-body': 'true' },
        body: '{"a":',
      },
      LENIENT,
    );
    expect(res.ok && res.input.truncated_body).toBe(true);
  });

  it(`refuses bodies above the server's default ${AUTHZ_DEFAULTS.maxBodyBytes} bytes on a route without a limit`, () => {
    const big = (n: number) => JSON.stringify({ p: 'x'.repeat(n - 8) });
    expect(big(AUTHZ_DEFAULTS.maxBodyBytes)).toHaveLength(AUTHZ_DEFAULTS.maxBodyBytes);
    expect(
      build({ method: 'POST', path: '/x', headers: JSON_CT, body: big(AUTHZ_DEFAULTS.maxBodyBytes) }).ok,
    ).toBe(true);
    expect(
      build({ method: 'POST', path: '/x', headers: JSON_CT, body: big(AUTHZ_DEFAULTS.maxBodyBytes + 1) }),
    ).toEqual({
      ok: false,
      code: 'ERR_BODY_TOO_LARGE',
      reason: `request body is larger than this route's limit of ${AUTHZ_DEFAULTS.maxBodyBytes} bytes (max_request_bytes)`,
    });
  });

  it('refuses a content-length that is not a number', () => {
    expect(
      build({ method: 'POST', path: '/x', headers: { ...JSON_CT, 'content-length': '1e3' }, body }),
    ).toEqual({
      ok: false,
      code: 'ERR_REQUEST_MALFORMED',
      reason: 'content-length is not a number',
    });
  });
});

describe('buildInput: prototype pollution', () => {
  afterAll(() => {
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('keeps "__proto__" in a JSON body as data', () => {
    const body = '{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"a":1}';
    const i = input({ method: 'POST', path: '/x', headers: JSON_CT, body });
    const parsed = i.parsed_body as Record<string, unknown>;
    expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
    expect(Object.keys(parsed)).toEqual(['__proto__', 'constructor', 'a']);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    // The policy sees exactly what the client sent.
    expect(JSON.stringify(i.parsed_body)).toBe(body);
  });

  it('keeps "__proto__" and friends in queries and form bodies as plain keys', () => {
    const text = '__proto__=x&__proto__[polluted]=1&constructor=y&hasOwnProperty=z&toString=t';
    const expected =
      '{"__proto__":["x"],"__proto__[polluted]":["1"],"constructor":["y"],"hasOwnProperty":["z"],"toString":["t"]}';
    const q = input({ path: `/x?${text}` }).parsed_query;
    const f = input({ method: 'POST', path: '/x', headers: FORM_CT, body: text }).parsed_body;
    for (const values of [q, f]) {
      expect(JSON.stringify(values)).toBe(expected);
      expect(Object.getPrototypeOf(values)).toBeNull();
      expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    }
  });

  it('keeps a "__proto__" metadata key as data', () => {
    const struct = JSON.parse(
      '{"fields":{"__proto__":{"structValue":{"fields":{"polluted":{"boolValue":true}}}}}}',
    );
    const json = structToJson(struct);
    expect(JSON.stringify(json)).toBe('{"__proto__":{"polluted":true}}');
    expect(Object.getPrototypeOf(json)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });
});

describe('buildInput: protocol extension point', () => {
  it('does not call the hook for routes that declare no protocol', () => {
    let calls = 0;
    const res = build({ path: '/x' }, { ...STRICT, protocol: () => ({ ok: true, value: ++calls }) });
    expect(res.ok && 'protocol' in res.input).toBe(false);
    expect(calls).toBe(0);
  });

  it('puts the hook value under input.protocol with the parsed request as context', () => {
    let seen: ProtocolContext | null = null;
    const i = input(
      {
        method: 'POST',
        path: '/mcp?session=1',
        headers: { ...JSON_CT, 'mcp-session-id': 's-1' },
        body: '{"jsonrpc":"2.0","method":"tools/call","id":1}',
        contextExtensions: { route_id: 'mcp/0', protocol: 'mcp' },
      },
      {
        ...STRICT,
        protocol: (ctx) => {
          seen = ctx;
          return { ok: true, value: { mcp: { method: (ctx.parsedBody as { method: string }).method } } };
        },
      },
    );
    expect(i.protocol).toEqual({ mcp: { method: 'tools/call' } });
    const ctx = seen as unknown as ProtocolContext;
    expect(ctx.name).toBe('mcp');
    expect(ctx.method).toBe('POST');
    expect(ctx.header('mcp-session-id')).toBe('s-1');
    expect(ctx.header('absent')).toBeUndefined();
    expect(ctx.parsedPath).toEqual(['mcp']);
    expect({ ...ctx.parsedQuery }).toEqual({ session: ['1'] });
    expect(ctx.truncatedBody).toBe(false);
    expect(ctx.route).toEqual({ id: 'mcp/0', target: null, checksum: null });
    expect((i.attributes as any).contextExtensions.protocol).toBe('mcp');
    expectValidInput(i);
  });

  it('denies with the hook error', () => {
    const res = build(
      { path: '/mcp', contextExtensions: { protocol: 'mcp' } },
      { ...STRICT, protocol: () => ({ ok: false, code: 'ERR_PROTOCOL_INVALID', reason: 'not JSON-RPC' }) },
    );
    expect(res).toEqual({ ok: false, code: 'ERR_PROTOCOL_INVALID', reason: 'not JSON-RPC' });
  });

  it('fails closed when a route declares a protocol and no support is loaded', () => {
    expect(build({ path: '/mcp', contextExtensions: { protocol: 'mcp' } })).toEqual({
      ok: false,
      code: 'ERR_PROTOCOL_INVALID',
      reason: 'route declares protocol "mcp" but no protocol support is loaded',
    });
  });
});

describe('schemas', () => {
  it('input schema is not vacuous: it refuses misspelt and mistyped fields', () => {
    const good = JSON.parse(JSON.stringify(input({ path: '/a?q=1' }, STRICT, WITH_ALICE)));
    expect(validateInput(good)).toBe(true);
    const broken: [string, (doc: any) => void][] = [
      ['unknown top-level key', (d) => (d.parsed_bdy = {})],
      ['parsed_path not strings', (d) => (d.parsed_path = [1])],
      ['query value not an array', (d) => (d.parsed_query.q = '1')],
      ['unknown http field', (d) => (d.attributes.request.http.methd = 'GET')],
      ['time as an object', (d) => (d.attributes.request.time = { seconds: 1, nanos: 0 })],
      ['wrong version', (d) => (d.version.ext_authz = 'v2')],
      ['identity without subject', (d) => delete d.identity.subject],
      ['missing route', (d) => delete d.route],
    ];
    for (const [name, breakIt] of broken) {
      const doc = structuredClone(good);
      breakIt(doc);
      expect(validateInput(doc), name).toBe(false);
    }
  });

  it('result schema accepts OPA-Envoy results and refuses ill-formed ones', () => {
    const valid: unknown[] = [
      true,
      false,
      { allowed: true },
      {
        allowed: true,
        headers: { 'x-user': 'alice', 'x-multi': ['a', 'b'] },
        request_headers_to_remove: ['authorization'],
        response_headers_to_add: { 'x-decision': 'ok' },
        query_parameters_to_set: { a: 'b', c: ['d', 'e'] },
        query_parameters_to_remove: ['token'],
        dynamic_metadata: { tier: 'gold' },
        reason: 'allowed by rule 3',
      },
      { allowed: false, http_status: 429, body: { error: 'slow down' }, headers: { 'retry-after': '1' } },
      { allowed: false, body: 'closed' },
      { allowed: false, approval: { reviewers: ['group:admins'], ttl: '15m', reason: 'critical priority' } },
      { allowed: false, approval: { reviewers: ['bob'], ttl: 900 } },
    ];
    for (const v of valid) expect(validateResult(v), JSON.stringify(validateResult.errors)).toBe(true);
    const invalid: unknown[] = [
      'yes',
      1,
      null,
      {},
      { allowed: 'yes' },
      { allowed: false, status_code: 429 },
      { allowed: false, http_status: 99 },
      { allowed: false, http_status: 600 },
      { allowed: true, headers: { 'x-n': 5 } },
      { allowed: true, request_headers_to_remove: 'authorization' },
      { allowed: false, approval: { reviewers: 'bob' } },
    ];
    for (const v of invalid) expect(validateResult(v), JSON.stringify(v)).toBe(false);
  });

  it('input schema works with `opa check --strict --schema`: valid references pass, typos fail', async () => {
    const run = promisify(execFile);
    const opa = locateTool('opa');
    const schema = join(PROJECT_ROOT, 'schemas/input.schema.json');
    const dir = await mkdtemp(join(tmpdir(), 'chaperone-schema-'));
    try {
      const good = join(dir, 'good.rego');
      await writeFile(
        good,
        `package chaperone.authz

default decision := false

decision if {
\tinput.attributes.request.http.method == "POST"
\tinput.parsed_path == ["v1", "chat", "completions"]
\tinput.parsed_body.model in {"m1", "m2"}
\tinput.parsed_query.debug[0] == "1"
\t"admins" in input.identity.groups
\tinput.identity.claims.org.id == "acme"
\tinput.identity.actor.agent == "coder"
\tinput.route.id == "demo/0"
\tinput.attributes.request.http.headers["content-type"] == "application/json"
\tinput.attributes.source.address.socketAddress.portValue > 0
\tinput.attributes.metadataContext.filterMetadata["envoy.filters.http.jwt_authn"].payload.sub == "a"
\tnot input.truncated_body
\tinput.version.ext_authz == "v3"
\tinput.protocol.method == "tools/call"
\tinput.protocol.tool == "read_file"
}
`,
      );
      await run(opa, ['check', '--strict', '--schema', schema, good]);

      const bad = join(dir, 'bad.rego');
      await writeFile(
        bad,
        `package chaperone.authz

r1 if input.parsed_bdy.model == "x"

r2 if input.attributes.request.http.methd == "GET"

r3 if input.identity.sub == "alice"

r4 if input.truncated_body == "yes"
`,
      );
      const err = await run(opa, ['check', '--strict', '--schema', schema, bad]).then(
        () => null,
        (e: { stdout?: string; stderr?: string }) => `${e.stdout ?? ''}${e.stderr ?? ''}`,
      );
      expect(err).toContain('undefined ref: input.parsed_bdy.model');
      expect(err).toContain('undefined ref: input.attributes.request.http.methd');
      expect(err).toContain('undefined ref: input.identity.sub');
      expect(err).toContain('match error');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('buildInput: cost stays linear on hostile sizes', () => {
  it('parses a 1 MiB form body of =-less pairs quickly', () => {
    const body = 'a&'.repeat(512 * 1024 - 1);
    const started = performance.now();
    const i = input({ method: 'POST', path: '/x', headers: FORM_CT, body });
    expect((i.parsed_body as Record<string, string[]>)['a']).toHaveLength(512 * 1024 - 1);
    expect(performance.now() - started).toBeLessThan(2000);
  });
});

describe('built inputs drive real policies', () => {
  const POLICY = `package t

summary := {
	"path": input.parsed_path,
	"tags": input.parsed_query.tag,
	"model": input.parsed_body.model,
	"sub": input.identity.subject,
	"route": input.route.id,
	"time_ns": time.parse_rfc3339_ns(input.attributes.request.time),
	"body": json.unmarshal(base64.decode(input.attributes.request.http.rawBody)),
	"version": input.version,
}

form_keys := {k | some k, _ in input.parsed_body}
`;

  it('evaluates the same under opa-wasm (the server) and the OPA CLI (the oracle)', async () => {
    const doc = input(
      {
        method: 'POST',
        path: '/v1/chat/completions?tag=a&tag=b',
        headers: JSON_CT,
        body: '{"model":"m1","max_tokens":5}',
        contextExtensions: { route_id: 'llm/0' },
        time: { seconds: 1_780_000_000, nanos: 5_000_000 },
      },
      STRICT,
      WITH_ALICE,
    );
    const expected = {
      path: ['v1', 'chat', 'completions'],
      tags: ['a', 'b'],
      model: 'm1',
      sub: 'alice',
      route: 'llm/0',
      time_ns: 1_780_000_000_005_000_000,
      body: { model: 'm1', max_tokens: 5 },
      version: { ext_authz: 'v3', encoding: 'protojson' },
    };
    expect(await wasmEval(POLICY, 't/summary', doc)).toEqual(expected);
    expect(await opaEval('data.t.summary', doc, { modules: { 'policy.rego': POLICY } })).toEqual(expected);
  });

  it('hands null-prototype form values to the policy intact, "__proto__" included', async () => {
    const doc = input({
      method: 'POST',
      path: '/f',
      headers: FORM_CT,
      body: '__proto__=1&constructor=2&a=3',
    });
    const keys = ['__proto__', 'a', 'constructor'];
    expect(await wasmEval(POLICY, 't/form_keys', doc)).toEqual(keys);
    expect(await opaEval('data.t.form_keys', doc, { modules: { 'policy.rego': POLICY } })).toEqual(keys);
  });
});

describe('buildInput: the route’s body limit and mode (context_extensions)', () => {
  const body = JSON.stringify({ priority: 'low', padding: 'x'.repeat(100) });
  const buffered = (limit: number) => ({
    route_id: 'r/0',
    target: 'r',
    body: 'buffer',
    max_request_bytes: String(limit),
  });
  const post = (contextExtensions: Record<string, string>, extra: Partial<Spec> = {}): Spec => ({
    method: 'POST',
    path: '/x',
    headers: JSON_CT,
    body,
    contextExtensions,
    ...extra,
  });

  it('reads a body up to the route’s limit, which overrides the server’s', () => {
    const res = build(post(buffered(body.length)), { requireCompleteBody: true, maxBodyBytes: 10 });
    expect(res.ok && res.input.parsed_body).toMatchObject({ priority: 'low' });
  });

  it('refuses a body over the route’s limit, naming it; lenient mode reads it as truncated', () => {
    expect(
      build(post(buffered(body.length - 1)), { requireCompleteBody: true, maxBodyBytes: 1 << 20 }),
    ).toEqual({
      ok: false,
      code: 'ERR_BODY_TOO_LARGE',
      reason: `request body is larger than this route's limit of ${body.length - 1} bytes (max_request_bytes)`,
    });
    const lenient = input(post(buffered(body.length - 1)), LENIENT);
    expect(lenient.truncated_body).toBe(true);
    expect('parsed_body' in lenient).toBe(false);
  });

  it.each([
    ['no body, garbage limit', { body: 'buffer', max_request_bytes: 'lots' }],
    ['a zero limit', { body: 'buffer', max_request_bytes: '0' }],
    ['an unknown mode', { body: 'stream', max_request_bytes: '5' }],
  ])('falls back to the server’s limit on %s', (_name, ext) => {
    expect(
      build(post({ target: 'r', ...ext }), { requireCompleteBody: true, maxBodyBytes: 10 }),
    ).toMatchObject({
      ok: false,
      code: 'ERR_BODY_TOO_LARGE',
    });
  });

  describe('headers_only: no body reaches the check, and the policy is told when one follows', () => {
    const HEADERS_ONLY = { route_id: 'up/0', target: 'up', body: 'headers_only' };
    const upload = (headers: Record<string, string>, extraAttributes?: Record<string, unknown>): Spec => ({
      method: 'PUT',
      path: '/up/file.bin',
      headers: { 'content-type': 'application/octet-stream', ...headers },
      contextExtensions: HEADERS_ONLY,
      ...(extraAttributes ? { extraAttributes } : {}),
    });

    it.each([
      ['a content-length', { 'content-length': '5000000' }, true],
      ['chunked transfer encoding', { 'transfer-encoding': 'chunked' }, true],
      ['content-length 0', { 'content-length': '0' }, false],
    ])('with %s', (_name, headers, truncated) => {
      const i = input(upload(headers));
      expect(i.truncated_body).toBe(truncated);
      expect('parsed_body' in i).toBe(false);
      expectValidInput(i);
    });

    it('an HTTP/1.1 request with neither length nor chunking has no body; an HTTP/2 one may', () => {
      const http1 = decoded(upload({}));
      expect(http1['attributes'].request.http.protocol).toBe('HTTP/1.1');
      expect(input(upload({})).truncated_body).toBe(false);
      const http2 = decoded(upload({}));
      http2['attributes'].request.http.protocol = 'HTTP/2';
      const res = buildInput(http2, NO_IDENTITY, STRICT);
      expect(res.ok && res.input.truncated_body).toBe(true);
    });

    it('the same request on a buffered route is refused as incomplete', () => {
      expect(
        build({ ...upload({ 'content-length': '5000000' }), contextExtensions: buffered(1024) }),
      ).toMatchObject({
        ok: false,
        code: 'ERR_BODY_TRUNCATED',
      });
    });

    it('a body that arrives anyway is read as usual', () => {
      const i = input({
        ...post(HEADERS_ONLY),
        headers: { ...JSON_CT, 'content-length': String(body.length) },
      });
      expect(i.truncated_body).toBe(false);
      expect(i.parsed_body).toMatchObject({ priority: 'low' });
    });
  });
});
