// The Check service over real gRPC: result mapping with OPA-Envoy semantics, server-made denies with
// their own codes, header stripping, hostile requests and hot reload of the compiled policy.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthzServer, startAuthzServer } from '../../authz-server/server.ts';
import {
  type AuthzClient,
  authzClient,
  checkRequest,
  deniedStatus,
  headerOf,
} from '../support/authz-client.ts';

const POLICY = `package test.authz

default decision := {"allowed": false, "http_status": 403, "body": "no rule matched", "reason": "default deny"}

decision := true if input.parsed_path == ["bool"]

decision := {
  "allowed": true,
  "headers": {"x-upstream-token": "injected", "x-multi": ["a", "b"]},
  "request_headers_to_remove": ["authorization"],
  "response_headers_to_add": {"x-policy": "yes"},
  "query_parameters_to_set": {"limit": "10"},
  "query_parameters_to_remove": ["debug"],
  "dynamic_metadata": {"team": "core"},
  "reason": "object allow",
} if input.parsed_path == ["object"]

decision := {"allowed": false, "http_status": 401, "headers": {"www-authenticate": "Bearer"}, "body": "login first"} if {
  input.parsed_path == ["login"]
}

decision := {"allowed": false, "http_status": 429, "body": {"error": "slow down"}} if input.parsed_path == ["json-body"]

decision := {"allowed": "yes"} if input.parsed_path == ["invalid"]

decision := {"allowed": true, "http_status": 99} if input.parsed_path == ["odd-status"]

decision := {"allowed": true, "headers": {"x-chaperone-user": "policy-user"}} if input.parsed_path == ["sets-identity"]

decision := {"allowed": true, "headers": {"x-n": 5}} if input.parsed_path == ["bad-header"]

decision := x if {
  input.parsed_path == ["conflict"]
  some x in [{"allowed": true}, {"allowed": false}]
}

decision := input.parsed_body.verdict if input.parsed_path == ["body"]
`;

const UNDEFINED_POLICY = `package test.authz

decision := true if input.parsed_path == ["only"]
`;

let dir: string;
let server: AuthzServer;
let client: AuthzClient;

async function writePolicy(text: string): Promise<void> {
  await writeFile(join(dir, 'policy.rego'), text);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chaperone-check-'));
  await writePolicy(POLICY);
  server = await startAuthzServer({
    address: '127.0.0.1:0',
    policy: { dir, entrypoint: 'test/authz/decision' },
    logger: pino({ level: 'silent' }),
  });
  client = authzClient(server.address);
});

afterAll(async () => {
  client?.close();
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('result mapping (OPA-Envoy semantics)', () => {
  it('maps a boolean true to an OK response carrying a decision id', async () => {
    const res = await client.check({ path: '/bool' });
    expect(res.status.code).toBe(0);
    const decisionId = headerOf(res.okResponse?.headers, 'x-chaperone-decision-id');
    expect(decisionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(headerOf(res.okResponse?.responseHeadersToAdd, 'x-chaperone-decision-id')).toBe(decisionId);
    expect(res.dynamicMetadata?.fields['decision_id']?.stringValue).toBe(decisionId);
    expect(res.dynamicMetadata?.fields['policy_revision']?.stringValue).toBe(
      server.policy.current()?.revision,
    );
  });

  it('maps every field of an allow object', async () => {
    const res = await client.check({ path: '/object', headers: { authorization: 'Bearer abc' } });
    expect(res.status.code).toBe(0);
    const ok = res.okResponse!;
    expect(headerOf(ok.headers, 'x-upstream-token')).toBe('injected');
    const multi = ok.headers!.filter((h) => h.header.key === 'x-multi');
    expect(multi.map((h) => [h.header.value, h.appendAction])).toEqual([
      ['a', 'OVERWRITE_IF_EXISTS_OR_ADD'],
      ['b', 'APPEND_IF_EXISTS_OR_ADD'],
    ]);
    expect(ok.headersToRemove).toContain('authorization');
    expect(headerOf(ok.responseHeadersToAdd, 'x-policy')).toBe('yes');
    expect(ok.queryParametersToSet).toEqual([{ key: 'limit', value: '10' }]);
    expect(ok.queryParametersToRemove).toEqual(['debug']);
    expect(res.dynamicMetadata?.fields['team']?.stringValue).toBe('core');
  });

  it('maps a deny object with status, headers and body', async () => {
    const res = await client.check({ path: '/login' });
    expect(res.status.code).toBe(16);
    expect(deniedStatus(res)).toBe(401);
    expect(headerOf(res.deniedResponse?.headers, 'www-authenticate')).toBe('Bearer');
    expect(res.deniedResponse?.body).toBe('login first');
    expect(headerOf(res.deniedResponse?.headers, 'x-chaperone-decision-id')).toBeTruthy();
  });

  it('sends an object body as JSON with a content type', async () => {
    const res = await client.check({ path: '/json-body' });
    expect(deniedStatus(res)).toBe(429);
    expect(JSON.parse(res.deniedResponse!.body!)).toEqual({ error: 'slow down' });
    expect(headerOf(res.deniedResponse?.headers, 'content-type')).toBe('application/json');
  });

  it('uses the default deny of the policy', async () => {
    const res = await client.check({ path: '/nothing' });
    expect(deniedStatus(res)).toBe(403);
    expect(res.deniedResponse?.body).toBe('no rule matched');
  });

  it('decides on a JSON body field', async () => {
    const allow = await client.check({
      method: 'POST',
      path: '/body',
      headers: { 'content-type': 'application/json' },
      body: '{"verdict": true}',
    });
    expect(allow.status.code).toBe(0);
    const deny = await client.check({
      method: 'POST',
      path: '/body',
      headers: { 'content-type': 'application/json' },
      body: '{"verdict": false}',
    });
    expect(deniedStatus(deny)).toBe(403);
  });
});

describe('client-sent identity headers', () => {
  it('removes x-chaperone-* and x-forwarded-user the client sent', async () => {
    const res = await client.check({
      path: '/bool',
      headers: { 'x-chaperone-user': 'mallory', 'x-forwarded-user': 'mallory', 'x-other': 'kept' },
    });
    expect(res.okResponse?.headersToRemove).toEqual(
      expect.arrayContaining(['x-chaperone-user', 'x-forwarded-user']),
    );
    expect(res.okResponse?.headersToRemove).not.toContain('x-other');
  });

  it('overwrites instead of removing a header the policy sets itself', async () => {
    const res = await client.check({ path: '/sets-identity', headers: { 'x-chaperone-user': 'mallory' } });
    expect(headerOf(res.okResponse?.headers, 'x-chaperone-user')).toBe('policy-user');
    expect(res.okResponse?.headersToRemove ?? []).not.toContain('x-chaperone-user');
  });
});

describe('server-made denies carry their own reason code', () => {
  const cases: [string, Parameters<AuthzClient['check']>[0], number, string][] = [
    ['invalid result', { path: '/invalid' }, 403, 'ERR_POLICY_RESULT_INVALID'],
    ['header value not a string', { path: '/bad-header' }, 403, 'ERR_POLICY_RESULT_INVALID'],
    ['evaluation error (conflicting outputs)', { path: '/conflict' }, 403, 'ERR_POLICY_EVAL'],
    ['dot segment', { path: '/object/../bool' }, 400, 'ERR_PATH_NONCANONICAL'],
    ['encoded slash', { path: '/object%2Fx' }, 400, 'ERR_PATH_NONCANONICAL'],
    ['double slash', { path: '//object' }, 400, 'ERR_PATH_NONCANONICAL'],
    [
      'unparsable JSON body',
      {
        method: 'POST',
        path: '/body',
        headers: { 'content-type': 'application/json' },
        body: '{"verdict": tru',
      },
      400,
      'ERR_BODY_UNPARSABLE',
    ],
    [
      'truncated body',
      {
        method: 'POST',
        path: '/body',
        headers: { 'content-type': 'application/json', 'x-envoy-auth-partial-body': 'true' },
        body: '{"verdict": true}',
      },
      413,
      'ERR_BODY_TRUNCATED',
    ],
  ];
  for (const [name, spec, status, code] of cases) {
    it(`${name} → ${status} ${code}`, async () => {
      const res = await client.check(spec);
      expect(res.okResponse).toBeUndefined();
      expect(deniedStatus(res)).toBe(status);
      const body = JSON.parse(res.deniedResponse!.body!);
      expect(body.error).toBe(code);
      expect(res.dynamicMetadata?.fields['reason_code']?.stringValue).toBe(code);
      expect(server.metrics.errors[code as keyof typeof server.metrics.errors]).toBeGreaterThan(0);
    });
  }

  it('a status outside 200..599 on an allow is ignored (allow keeps no status)', async () => {
    const res = await client.check({ path: '/odd-status' });
    expect(res.status.code).toBe(0);
  });

  it('never crashes on hostile CheckRequests', async () => {
    const hostile: unknown[] = [
      {},
      { attributes: {} },
      { attributes: { request: {} } },
      { attributes: { request: { http: {} } } },
      { attributes: { request: { http: { path: '' } } } },
      {
        attributes: {
          request: { http: { path: 'no-slash', headers: { 'content-type': 'application/json' } } },
        },
      },
      checkRequest({
        path: '/body',
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        rawBody: Buffer.from([0xff, 0xfe, 0x00]),
      }),
      checkRequest({ path: `/${'a/'.repeat(5000)}` }),
      checkRequest({ path: '/object?%zz=1' }),
    ];
    for (const req of hostile) {
      const res = await client.checkRaw(req);
      expect(res.okResponse, JSON.stringify(req).slice(0, 200)).toBeUndefined();
      expect(res.deniedResponse).toBeDefined();
    }
    // And the server still answers normally afterwards.
    expect((await client.check({ path: '/bool' })).status.code).toBe(0);
  });
});

describe('policy lifecycle', () => {
  it('an undefined decision is a deny with ERR_POLICY_UNDEFINED, not a policy deny', async () => {
    await writePolicy(UNDEFINED_POLICY);
    expect(await server.policy.reload()).toBe(true);
    const res = await client.check({ path: '/elsewhere' });
    expect(JSON.parse(res.deniedResponse!.body!).error).toBe('ERR_POLICY_UNDEFINED');
    expect((await client.check({ path: '/only' })).status.code).toBe(0);
  });

  it('a broken policy is rejected with file:line while the last good keeps serving', async () => {
    const before = server.policy.current()?.revision;
    await writePolicy('package test.authz\n\ndecision := true if {\n  input.x ==\n}\n');
    expect(await server.policy.reload()).toBe(false);
    const err = server.policy.lastError();
    expect(err?.message).toMatch(/policy\.rego:\d+/);
    expect(err?.errors[0]?.line).toBeGreaterThan(0);
    expect(server.policy.current()?.revision).toBe(before);
    expect((await client.check({ path: '/only' })).status.code).toBe(0);
  });

  it('swaps policies under load without failing a request', async () => {
    await writePolicy(UNDEFINED_POLICY);
    await server.policy.reload();
    let failures = 0;
    let done = 0;
    const load = (async () => {
      while (done < 400) {
        const res = await client.check({ path: '/only' });
        if (res.status.code !== 0) failures++;
        done++;
      }
    })();
    await writePolicy(`${UNDEFINED_POLICY}\ndecision := true if input.parsed_path == ["also"]\n`);
    expect(await server.policy.reload()).toBe(true);
    await load;
    expect(failures).toBe(0);
    expect((await client.check({ path: '/also' })).status.code).toBe(0);
  });
});

describe('health', () => {
  it('reports SERVING over grpc.health.v1', async () => {
    const { loadSync } = await import('@grpc/proto-loader');
    const { protoPath } = await import('grpc-health-check');
    const def = grpc.loadPackageDefinition(loadSync(protoPath, { enums: String })) as any;
    const health = new def.grpc.health.v1.Health(server.address, grpc.credentials.createInsecure());
    const res = await new Promise<{ status: string }>((resolve, reject) =>
      health.Check(
        { service: 'envoy.service.auth.v3.Authorization' },
        (e: Error | null, r: { status: string }) => (e ? reject(e) : resolve(r)),
      ),
    );
    health.close();
    expect(res.status).toBe('SERVING');
  });
});
