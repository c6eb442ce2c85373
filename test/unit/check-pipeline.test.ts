// CheckPipeline on its own: constructed directly with small fakes passed through CheckDeps (no module
// mocking), on CheckRequests encoded with Envoy's real ext_authz proto and decoded as the server decodes
// them. Each case names the step it exercises and asserts the answer, the recorded decision and the
// counters.
import type * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { type CheckDeps, CheckPipeline } from '../../authz-server/check-pipeline.ts';
import type { PolicyPort } from '../../authz-server/pipeline/deps.ts';
import type { EvalOutcome } from '../../authz-server/policy/policy-engine.ts';
import type { CheckResponseMessage } from '../../authz-server/result-mapper.ts';
import type { DecisionEvent } from '../../contracts/decision.ts';
import { MASK_HEADER } from '../../contracts/ext-authz.ts';
import type { ApprovalRequest } from '../../fleet/approval-store.ts';
import type { UsageKey, UsageSnapshot } from '../../fleet/usage-counters.ts';
import type { Identity, IdentityResult } from '../../identity/verifier.ts';
import { EXT_AUTHZ_PROTO, loadEnvoyProtos, lookup } from '../../lib/envoy-proto.ts';
import { fromStruct } from '../../lib/proto-struct.ts';
import { checkRequest, type RequestSpec } from '../support/authz-client.ts';

const checkMethod = lookup<grpc.ServiceClientConstructor>(
  loadEnvoyProtos([EXT_AUTHZ_PROTO]),
  'envoy.service.auth.v3.Authorization',
).service['Check']!;

/** A CheckRequest as the server receives it (real proto encoding, data-path loader options). */
function request(spec: RequestSpec = {}, httpExtra: Record<string, unknown> = {}): unknown {
  const msg = checkRequest({ id: 'stream-1', ...spec }) as { attributes: { request: { http: object } } };
  Object.assign(msg.attributes.request.http, httpExtra);
  return checkMethod.requestDeserialize(checkMethod.requestSerialize(msg));
}

const ALICE: Identity = {
  issuer: 'https://idp.example.test',
  subject: 'alice',
  subject_issuer: 'https://idp.example.test',
  audience: ['chaperone'],
  email: null,
  name: null,
  groups: ['eng'],
  actor: { sub: 'agent-7', agent: 'coder' },
  token_id: 'jti-1',
  expires_at: 1_900_000_000,
  claims: { sub: 'alice' },
};

type Policy = (input: any) => unknown;

/** A policy engine answering with `decide(input)`; every input it saw is kept. */
function policyOf(decide: Policy, revision = 'rev-1'): PolicyPort & { inputs: any[] } {
  const inputs: any[] = [];
  const engine = {
    evaluate(input: unknown): EvalOutcome {
      inputs.push(structuredClone(input));
      return { ok: true, result: decide(input) };
    },
  };
  return { inputs, current: () => ({ engine, revision }) };
}

function failingPolicy(outcome: EvalOutcome): PolicyPort {
  return { current: () => ({ engine: { evaluate: () => outcome }, revision: 'rev-1' }) };
}

/** An identity verifier answering `result`; the header maps it was given are kept. */
function identityOf(result: IdentityResult) {
  const seen: Readonly<Record<string, string>>[] = [];
  return {
    seen,
    verify: async (headers: Readonly<Record<string, string>>) => {
      seen.push({ ...headers });
      return result;
    },
  };
}

const VERIFIED = (): ReturnType<typeof identityOf> => identityOf({ ok: true, identity: ALICE });

/** Pipeline with a recorder that keeps every event, and fresh metrics. */
function pipelineWith(deps: Partial<CheckDeps> & Pick<CheckDeps, 'policy'>) {
  const events: DecisionEvent[] = [];
  const full: CheckDeps = {
    identity: null,
    logger: pino({ level: 'silent' }),
    metrics: { total: 0, allowed: 0, denied: 0, errors: {} },
    recorder: { record: async (e) => void events.push(e) },
    ...deps,
  };
  return { pipeline: new CheckPipeline(full), events, metrics: full.metrics };
}

function denied(res: CheckResponseMessage): { status: number; body: any } {
  expect(res.okResponse).toBeUndefined();
  const body = res.deniedResponse?.body ?? '';
  let parsed: unknown = body;
  try {
    parsed = JSON.parse(body);
  } catch {
    // a plain-text policy body
  }
  return { status: res.deniedResponse!.status.code, body: parsed };
}

const headerOf = (res: CheckResponseMessage, name: string) =>
  res.okResponse?.headers.find((h) => h.header.key === name)?.header.value;

describe('allow and policy deny', () => {
  it('allows with the policy headers, strips the caller token, records and counts', async () => {
    const policy = policyOf((i) => ({
      allowed: i.identity?.subject === 'alice',
      headers: { 'x-user': 'alice' },
    }));
    const { pipeline, events, metrics } = pipelineWith({ policy, identity: VERIFIED() });
    const res = await pipeline.check(
      request({ headers: { authorization: 'Bearer t', 'x-request-id': 'rid-1' } }),
    );
    expect(res.status.code).toBe(0);
    expect(headerOf(res, 'x-user')).toBe('alice');
    expect(res.okResponse?.headersToRemove).toContain('authorization');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      requestId: 'rid-1',
      subject: 'alice',
      verdict: { decision: 'allow', reasonCode: 'ALLOWED', httpStatus: 200 },
      policyRevision: 'rev-1',
      result: { allowed: true },
    });
    expect(metrics).toMatchObject({ total: 1, allowed: 1, denied: 0, errors: {} });
  });

  it('returns the policy deny as the policy wrote it (not counted as an error)', async () => {
    const policy = policyOf(() => ({ allowed: false, http_status: 451, body: 'nope', reason: 'blocked' }));
    const { pipeline, events, metrics } = pipelineWith({ policy });
    const res = await pipeline.check(request());
    expect(denied(res)).toEqual({ status: 451, body: 'nope' });
    expect(events[0]?.verdict).toEqual({
      decision: 'deny',
      httpStatus: 451,
      reason: 'blocked',
      reasonCode: 'DENIED_BY_POLICY',
    });
    expect(metrics).toMatchObject({ total: 1, allowed: 0, denied: 1, errors: {} });
  });
});

describe('server denies', () => {
  it('no policy loaded → 503 ERR_POLICY_MISSING, recorded with the input', async () => {
    const { pipeline, events, metrics } = pipelineWith({ policy: { current: () => null } });
    const res = await pipeline.check(request());
    expect(denied(res)).toMatchObject({
      status: 503,
      body: { error: 'ERR_POLICY_MISSING', reason: 'no policy is loaded' },
    });
    expect(events[0]?.policyRevision).toBe('none');
    expect(events[0]?.input).not.toBeNull();
    expect(metrics.errors).toEqual({ ERR_POLICY_MISSING: 1 });
  });

  const failures: [EvalOutcome & { ok: false }, string][] = [
    [
      { ok: false, code: 'ERR_POLICY_EVAL', detail: 'conflicting outputs SECRET-DETAIL' },
      'policy evaluation failed',
    ],
    [
      { ok: false, code: 'ERR_POLICY_UNDEFINED', detail: 'x is undefined SECRET-DETAIL' },
      'policy decision is undefined',
    ],
  ];
  for (const [outcome, reason] of failures) {
    it(`policy failure ${outcome.code} → 403 with the public reason only, verdict error`, async () => {
      const { pipeline, events, metrics } = pipelineWith({ policy: failingPolicy(outcome) });
      const res = await pipeline.check(request());
      const { status, body } = denied(res);
      expect(status).toBe(403);
      expect(body).toMatchObject({ error: outcome.code, reason });
      expect(res.deniedResponse?.body).not.toContain('SECRET-DETAIL');
      expect(events[0]?.verdict).toMatchObject({ decision: 'error', reasonCode: outcome.code });
      expect(metrics.errors).toEqual({ [outcome.code]: 1 });
    });
  }

  it('an invalid policy result → 403 ERR_POLICY_RESULT_INVALID, the result kept for the audit record', async () => {
    const { pipeline, events } = pipelineWith({ policy: policyOf(() => ({ allowed: 'yes' })) });
    const res = await pipeline.check(request());
    expect(denied(res)).toMatchObject({ status: 403, body: { error: 'ERR_POLICY_RESULT_INVALID' } });
    expect(events[0]?.result).toEqual({ allowed: 'yes' });
  });

  it('a request that cannot be read → its input code, the detail describing the request shown', async () => {
    const { pipeline, events } = pipelineWith({ policy: policyOf(() => true) });
    const res = await pipeline.check(request({ path: '/a/../b' }));
    const { status, body } = denied(res);
    expect(status).toBe(400);
    expect(body.error).toBe('ERR_PATH_NONCANONICAL');
    expect(body.reason).toMatch(/^non-canonical path: /);
    expect(events[0]?.input).toBeNull();
  });
});

describe('authenticate', () => {
  it('an identity failure reaches the policy as identity_error; the policy decides (401)', async () => {
    const identity = identityOf({ ok: false, code: 'ERR_TOKEN_EXPIRED', reason: 'token has expired' });
    const policy = policyOf((i) =>
      i.identity ? true : { allowed: false, http_status: 401, body: { error: i.identity_error.code } },
    );
    const { pipeline, events, metrics } = pipelineWith({ policy, identity });
    const res = await pipeline.check(request({ headers: { authorization: 'Bearer old' } }));
    expect(policy.inputs[0].identity).toBeNull();
    expect(policy.inputs[0].identity_error).toEqual({
      code: 'ERR_TOKEN_EXPIRED',
      reason: 'token has expired',
    });
    expect(denied(res)).toEqual({ status: 401, body: { error: 'ERR_TOKEN_EXPIRED' } });
    expect(res.status.code).toBe(16); // UNAUTHENTICATED
    expect(events[0]?.verdict.reasonCode).toBe('DENIED_UNAUTHENTICATED');
    expect(metrics.errors).toEqual({});
  });

  it('a revoked identity is treated as unauthenticated (ERR_TOKEN_REVOKED with the reason)', async () => {
    const policy = policyOf((i) => i.identity !== null);
    const { pipeline, events } = pipelineWith({
      policy,
      identity: VERIFIED(),
      revocation: { revoked: (id) => (id.actor?.agent === 'coder' ? 'agent coder was revoked' : null) },
    });
    const res = await pipeline.check(request({ headers: { authorization: 'Bearer t' } }));
    expect(policy.inputs[0].identity).toBeNull();
    expect(policy.inputs[0].identity_error).toEqual({
      code: 'ERR_TOKEN_REVOKED',
      reason: 'agent coder was revoked',
    });
    expect(denied(res).status).toBe(403);
    expect(events[0]?.subject).toBeNull();
  });

  it('without an issuer the policy sees ERR_TOKEN_MISSING and the caller token is left alone', async () => {
    const policy = policyOf(() => true);
    const { pipeline } = pipelineWith({ policy });
    const res = await pipeline.check(request({ headers: { authorization: 'Bearer upstream-own' } }));
    expect(policy.inputs[0].identity_error.code).toBe('ERR_TOKEN_MISSING');
    expect(res.okResponse?.headersToRemove).not.toContain('authorization');
  });

  it('a token sent only in headerMap (encode_raw_headers) is seen by the verifier and by the policy', async () => {
    const identity = VERIFIED();
    const policy = policyOf(() => true);
    const { pipeline, events } = pipelineWith({ policy, identity });
    const rawHeaders = {
      headers: undefined,
      headerMap: {
        headers: [
          { key: ':path', rawValue: Buffer.from('/') },
          { key: 'Authorization', rawValue: Buffer.from('Bearer only-in-header-map') },
          { key: 'x-request-id', rawValue: Buffer.from('rid-raw') },
        ],
      },
    };
    const res = await pipeline.check(request({}, rawHeaders));
    expect(identity.seen[0]?.['authorization']).toBe('Bearer only-in-header-map');
    const seenByPolicy = policy.inputs[0].attributes.request.http.headerMap.headers;
    expect(seenByPolicy).toContainEqual({
      key: 'Authorization',
      rawValue: Buffer.from('Bearer only-in-header-map').toString('base64'),
    });
    expect(policy.inputs[0].identity.subject).toBe('alice');
    expect(res.okResponse?.headersToRemove).toContain('authorization');
    expect(events[0]?.requestId).toBe('rid-raw');
  });
});

function approvalRequest(over: Partial<ApprovalRequest> = {}): ApprovalRequest {
  return {
    id: 'appr-1',
    fingerprint: 'fp',
    status: 'approved',
    requester: { subject: 'alice', issuer: 'https://idp.example.test', actor: null },
    target: null,
    method: 'DELETE',
    path: '/items/1',
    body_sha256: null,
    reviewers: ['security'],
    reason: 'deleting needs approval',
    ttl_ms: 60_000,
    mode: 'once',
    created_at: '2026-01-01T00:00:00.000Z',
    decided_at: '2026-01-01T00:00:01.000Z',
    decided_by: 'carol',
    expires_at: null,
    uses: 0,
    ...over,
  };
}

/** An approval store: `memory` is this node's mirror, `store` what another node decided meanwhile. */
function approvalsOf(o: { memory?: ApprovalRequest; store?: ApprovalRequest; claim?: boolean }) {
  const calls = { freshGrantFor: 0, claimed: [] as string[], requested: [] as unknown[] };
  return {
    calls,
    approvals: {
      statusUrl: (id: string) => `http://api.test/approvals/${id}`,
      store: {
        grantFor: () => o.memory ?? null,
        freshGrantFor: async () => {
          calls.freshGrantFor++;
          return o.store ?? null;
        },
        claim: async (id: string) => {
          calls.claimed.push(id);
          return o.claim ?? true;
        },
        request: async (p: unknown) => {
          calls.requested.push(p);
          return approvalRequest({ id: 'appr-new', status: 'pending', decided_by: null });
        },
      },
    },
  };
}

/** Allows with a granted approval; otherwise asks for one. */
function needsApprovalDecide(i: any): unknown {
  return i.approval?.granted
    ? { allowed: true, reason: `approved by ${i.approval.approved_by}` }
    : { allowed: false, approval: { reviewers: ['security'], reason: 'deleting needs approval' } };
}

describe('approval gate', () => {
  const del = () => request({ method: 'DELETE', path: '/items/1', headers: { authorization: 'Bearer t' } });

  it('two passes: a grant decided on another node is found in the store, evaluated and claimed', async () => {
    const policy = policyOf(needsApprovalDecide);
    const { calls, approvals } = approvalsOf({ store: approvalRequest() });
    const { pipeline, events } = pipelineWith({ policy, identity: VERIFIED(), approvals });
    const res = await pipeline.check(del());
    expect(res.status.code).toBe(0);
    expect(policy.inputs).toHaveLength(2);
    expect(policy.inputs[0].approval).toBeUndefined();
    expect(policy.inputs[1].approval).toEqual({ id: 'appr-1', granted: true, approved_by: 'carol' });
    expect(calls).toEqual({ freshGrantFor: 1, claimed: ['appr-1'], requested: [] });
    expect(events[0]?.verdict.reason).toBe('approved by carol');
  });

  it('the claim race: another authz server spent the grant first → 403 ERR_APPROVAL_SPENT', async () => {
    const policy = policyOf(needsApprovalDecide);
    const { calls, approvals } = approvalsOf({ memory: approvalRequest(), claim: false });
    const { pipeline, metrics } = pipelineWith({ policy, identity: VERIFIED(), approvals });
    const res = await pipeline.check(del());
    expect(denied(res)).toMatchObject({
      status: 403,
      body: { error: 'ERR_APPROVAL_SPENT', reason: 'approval appr-1 was already used or has expired' },
    });
    expect(policy.inputs).toHaveLength(1);
    expect(calls.freshGrantFor).toBe(0);
    expect(metrics.errors).toEqual({ ERR_APPROVAL_SPENT: 1 });
  });

  it('no grant anywhere: a pending request and an approval_required deny with its status URL', async () => {
    const policy = policyOf(needsApprovalDecide);
    const { calls, approvals } = approvalsOf({});
    const { pipeline, events } = pipelineWith({ policy, identity: VERIFIED(), approvals });
    const res = await pipeline.check(del());
    expect(denied(res)).toEqual({
      status: 403,
      body: {
        error: 'approval_required',
        approval_id: 'appr-new',
        status_url: 'http://api.test/approvals/appr-new',
        reviewers: ['security'],
        reason: 'deleting needs approval',
      },
    });
    expect(calls.requested).toEqual([
      expect.objectContaining({ subject: 'alice', method: 'DELETE', path: '/items/1', bodySha256: null }),
    ]);
    expect(events[0]?.verdict).toMatchObject({
      decision: 'approval_required',
      reasonCode: 'APPROVAL_REQUIRED',
    });
  });

  it('an MCP tool call waiting for approval is answered with URLElicitationRequiredError (HTTP 200)', async () => {
    const policy = policyOf(needsApprovalDecide);
    const { approvals } = approvalsOf({});
    const { pipeline } = pipelineWith({ policy, identity: VERIFIED(), approvals });
    const call = {
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/call',
      params: { name: 'delete_repo', arguments: {} },
    };
    const res = await pipeline.check(
      request({
        method: 'POST',
        path: '/mcp',
        headers: { authorization: 'Bearer t', 'content-type': 'application/json' },
        body: JSON.stringify(call),
        contextExtensions: { route_id: 'tools/0', target: 'tools', protocol: 'mcp' },
      }),
    );
    const message =
      'approval required: deleting needs approval — a reviewer (security) must approve it; follow it at http://api.test/approvals/appr-new, then retry the call';
    expect(denied(res)).toEqual({
      status: 200,
      body: {
        jsonrpc: '2.0',
        id: 7,
        error: {
          code: -32042,
          message,
          data: {
            elicitations: [
              { mode: 'url', elicitationId: 'appr-new', url: 'http://api.test/approvals/appr-new', message },
            ],
            approval_id: 'appr-new',
            status_url: 'http://api.test/approvals/appr-new',
            reviewers: ['security'],
          },
        },
      },
    });
    expect(res.deniedResponse?.headers).toContainEqual(
      expect.objectContaining({ header: { key: 'content-type', value: 'application/json' } }),
    );
  });
});

describe('record', () => {
  it('an allow the recorder cannot take becomes 503 ERR_AUDIT_UNAVAILABLE; a deny stays the deny', async () => {
    const policy = policyOf((i) => i.parsed_path[0] === 'ok');
    const { pipeline, metrics } = pipelineWith({
      policy,
      recorder: {
        record: async () => {
          throw new Error('disk full');
        },
      },
    });
    const allow = await pipeline.check(request({ path: '/ok' }));
    expect(denied(allow)).toMatchObject({
      status: 503,
      body: { error: 'ERR_AUDIT_UNAVAILABLE', reason: 'decision could not be recorded' },
    });
    expect(allow.dynamicMetadata?.fields['reason_code']).toEqual({ stringValue: 'ERR_AUDIT_UNAVAILABLE' });
    const deny = await pipeline.check(request({ path: '/no' }));
    expect(denied(deny).status).toBe(403);
    expect(metrics).toMatchObject({ total: 2, allowed: 0, denied: 2, errors: { ERR_AUDIT_UNAVAILABLE: 1 } });
  });
});

describe('inject credentials', () => {
  const creds = (
    headers: { ok: true; headers: { key: string; value: string }[] } | { ok: false; reason: string },
  ) => ({
    hasTarget: (t: string | null) => t === 'crm',
    headersFor: () => headers,
  });
  const toCrm = () =>
    request({
      headers: { authorization: 'Bearer t' },
      contextExtensions: { route_id: 'crm/0', target: 'crm' },
    });

  it("sets the target's credential over the policy's value and removes the caller token", async () => {
    const policy = policyOf(() => ({ allowed: true, headers: { 'x-api-key': 'from-policy' } }));
    const { pipeline } = pipelineWith({
      policy,
      identity: VERIFIED(),
      credentials: creds({ ok: true, headers: [{ key: 'x-api-key', value: 'edge-secret' }] }),
    });
    const res = await pipeline.check(toCrm());
    expect(res.okResponse?.headers.filter((h) => h.header.key === 'x-api-key')).toEqual([
      { header: { key: 'x-api-key', value: 'edge-secret' }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' },
    ]);
    expect(res.okResponse?.headersToRemove).toContain('authorization');
  });

  it('an unavailable credential → 503 ERR_CREDENTIAL_UNAVAILABLE, never an allow without it', async () => {
    const { pipeline, events } = pipelineWith({
      policy: policyOf(() => true),
      identity: VERIFIED(),
      credentials: creds({ ok: false, reason: 'credential x-api-key for target crm is unavailable' }),
    });
    const res = await pipeline.check(toCrm());
    expect(denied(res)).toMatchObject({
      status: 503,
      body: { error: 'ERR_CREDENTIAL_UNAVAILABLE', reason: 'upstream credential is unavailable' },
    });
    expect(events[0]?.verdict).toMatchObject({ decision: 'error', reasonCode: 'ERR_CREDENTIAL_UNAVAILABLE' });
  });
});

describe('resource audience (RFC 8707)', () => {
  const RESOURCE = 'https://gw.example.test/mcp';
  const person = (audience: string[]): Identity => ({
    ...ALICE,
    actor: null,
    audience,
  });
  const toMcp = (withResource: boolean) =>
    request({
      headers: { authorization: 'Bearer t' },
      contextExtensions: {
        route_id: 'tools/0',
        target: 'tools',
        ...(withResource
          ? {
              resource: RESOURCE,
              resource_metadata: 'https://gw.example.test/.well-known/oauth-protected-resource/mcp',
            }
          : {}),
      },
    });
  const audiences = new Map([['https://idp.example.test', new Set(['chaperone'])]]);

  it('a token for this resource or for the whole gateway passes; one for another resource does not', async () => {
    const cases: [string[], boolean, boolean][] = [
      [[RESOURCE], true, true],
      [['chaperone'], true, true],
      [['https://other.example.test/mcp'], true, false],
      // A token minted for the MCP target only is refused at every other target.
      [[RESOURCE], false, false],
      [['chaperone'], false, true],
    ];
    for (const [aud, onMcp, passes] of cases) {
      const policy = policyOf((i) => i.identity !== null);
      const { pipeline } = pipelineWith({
        policy,
        identity: identityOf({ ok: true, identity: person(aud) }),
        audiences,
      });
      await pipeline.check(toMcp(onMcp));
      const seen = policy.inputs[0];
      expect(seen.identity !== null, `${aud} on ${onMcp ? 'MCP' : 'another'} route`).toBe(passes);
      if (!passes) expect(seen.identity_error.code).toBe('ERR_TOKEN_AUDIENCE');
      if (onMcp) expect(seen.route).toMatchObject({ resource: RESOURCE });
    }
  });

  it("an agent token (Chaperone's own issuer, acting for a person) is bounded by its targets, not aud", async () => {
    const agent: Identity = { ...ALICE, issuer: 'http://chaperone.test', audience: ['chaperone'] };
    const policy = policyOf((i) => i.identity !== null);
    const { pipeline } = pipelineWith({
      policy,
      identity: identityOf({ ok: true, identity: agent }),
      audiences,
    });
    expect((await pipeline.check(toMcp(true))).status.code).toBe(0);
  });
});

describe('usage: input.usage, request counting, response instructions', () => {
  const snapshot = (requests: number): UsageSnapshot => {
    const c = { minute: { requests, tokens: 0 }, day: { requests, tokens: 0 } };
    return {
      windows: { minute: { start: 0, resets_in: 30 }, day: { start: 0, resets_in: 3600 } },
      user: c,
      agent: c,
      target: c,
    };
  };
  function counters() {
    const counted: UsageKey[] = [];
    return {
      counted,
      snapshot: () => snapshot(counted.length),
      countRequest: (k: UsageKey) => void counted.push(k),
    };
  }
  const limits = [
    {
      name: 'rpm',
      targets: ['llm'],
      per: 'user' as const,
      kind: 'requests' as const,
      window: 'minute' as const,
      limit: 2,
    },
    {
      name: 'other',
      targets: ['crm'],
      per: 'user' as const,
      kind: 'requests' as const,
      window: 'minute' as const,
      limit: 1,
    },
  ];
  const toLlm = (extra: Record<string, unknown> = {}) =>
    request({
      method: 'POST',
      path: '/v1/chat/completions',
      headers: { authorization: 'Bearer t', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages: [], ...extra }),
      contextExtensions: { route_id: 'llm/0', target: 'llm', protocol: 'llm' },
    });

  it('the policy sees the counts and the limits of its target; allowed requests are counted once recorded', async () => {
    const c = counters();
    const policy = policyOf((i) => ({
      allowed: i.usage.user.minute.requests < i.usage.limits[0].limit,
      http_status: 429,
    }));
    const { pipeline } = pipelineWith({ policy, identity: VERIFIED(), usage: { counters: c, limits } });
    expect((await pipeline.check(toLlm())).status.code).toBe(0);
    expect((await pipeline.check(toLlm())).status.code).toBe(0);
    expect(denied(await pipeline.check(toLlm())).status).toBe(429);
    expect(c.counted).toEqual([
      { target: 'llm', issuer: 'https://idp.example.test', subject: 'alice', agent: 'coder' },
      { target: 'llm', issuer: 'https://idp.example.test', subject: 'alice', agent: 'coder' },
    ]);
    expect(policy.inputs[0].usage.limits).toEqual([
      { name: 'rpm', per: 'user', kind: 'requests', window: 'minute', limit: 2 },
    ]);
    expect(policy.inputs[0].usage.windows.minute.resets_in).toBe(30);
  });

  it('an allowed LLM request tells the response path whom to charge, whatever the policy wrote', async () => {
    const c = counters();
    const policy = policyOf(() => ({
      allowed: true,
      dynamic_metadata: { usage: { target: 'llm', issuer: 'x', subject: 'mallory', agent: null } },
    }));
    const { pipeline } = pipelineWith({ policy, identity: VERIFIED(), usage: { counters: c, limits: [] } });
    const res = await pipeline.check(toLlm());
    expect(fromStruct(res.dynamicMetadata as never)['usage']).toEqual({
      target: 'llm',
      issuer: 'https://idp.example.test',
      subject: 'alice',
      agent: 'coder',
      provider: 'openai',
      api: 'chat.completions',
    });
    // The upstream answers unencoded, and Envoy runs the processor (it runs only where asked).
    expect(res.okResponse?.headersToRemove).toContain('accept-encoding');
    expect(res.okResponse?.headers.map((h) => h.header.key)).toContain(MASK_HEADER);
    // Without usage counting, a policy-written `usage` key is dropped.
    const plain = pipelineWith({ policy, identity: VERIFIED() });
    const res2 = await plain.pipeline.check(toLlm());
    expect(fromStruct(res2.dynamicMetadata as never)['usage']).toBeUndefined();
  });

  const mcpList = (method: string) =>
    request({
      method: 'POST',
      path: '/mcp',
      headers: { authorization: 'Bearer t', 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 5, method }),
      contextExtensions: { route_id: 'tools/0', target: 'tools', protocol: 'mcp' },
    });

  it('mcp_visible becomes the mcp_filter instruction with the JSON-RPC method and id', async () => {
    const policy = policyOf(() => ({ allowed: true, mcp_visible: { tools: ['read_file'] } }));
    const { pipeline } = pipelineWith({ policy, identity: VERIFIED() });
    const res = await pipeline.check(mcpList('tools/list'));
    expect(fromStruct(res.dynamicMetadata as never)['mcp_filter']).toEqual({
      method: 'tools/list',
      id: 5,
      visible: { tools: ['read_file'] },
    });
    expect(res.okResponse?.headersToRemove).toContain('accept-encoding');
    // Without the processing header Envoy would pass the listing on unfiltered.
    expect(res.okResponse?.headers.map((h) => h.header.key)).toContain(MASK_HEADER);
    expect(res.okResponse?.headersToRemove).not.toContain(MASK_HEADER);
  });

  it('an ill-formed mcp_visible is a policy error, never an unfiltered listing', async () => {
    for (const bad of ['read_file', { tools: 'read_file' }, { tools: [1] }, { widgets: ['x'] }]) {
      const policy = policyOf(() => ({ allowed: true, mcp_visible: bad }));
      const { pipeline } = pipelineWith({ policy, identity: VERIFIED() });
      const res = await pipeline.check(mcpList('tools/list'));
      expect(denied(res)).toMatchObject({ status: 403, body: { error: 'ERR_POLICY_RESULT_INVALID' } });
    }
  });
});

describe('shadow', () => {
  it('records and counts what the candidate would decide, never enforcing it', async () => {
    const shadow = policyOf((i) => i.parsed_path[0] !== 'reports', 'cand-1');
    const { pipeline, events, metrics } = pipelineWith({
      policy: policyOf((i) => i.parsed_path[0] === 'public'),
      shadow,
    });
    expect((await pipeline.check(request({ path: '/public/a' }))).status.code).toBe(0);
    expect(denied(await pipeline.check(request({ path: '/admin' }))).status).toBe(403);
    expect(denied(await pipeline.check(request({ path: '/a/../b' }))).status).toBe(400); // server deny: not shadowed
    expect(events.map((e) => e.shadow)).toEqual([
      { revision: 'cand-1', decision: 'allow', differs: false },
      { revision: 'cand-1', decision: 'allow', differs: true },
      undefined,
    ]);
    expect(metrics.shadow).toEqual({ evaluated: 2, differences: 1, errors: 0 });
  });
});

describe('never throws', () => {
  it('a step that throws → 500 ERR_INTERNAL, counted', async () => {
    const identity = {
      verify: async (): Promise<IdentityResult> => {
        throw new Error('verifier bug');
      },
    };
    const { pipeline, metrics } = pipelineWith({ policy: policyOf(() => true), identity });
    const res = await pipeline.check(request());
    expect(denied(res)).toMatchObject({
      status: 500,
      body: { error: 'ERR_INTERNAL', reason: 'internal error in the authorization server' },
    });
    expect(metrics.errors).toEqual({ ERR_INTERNAL: 1 });
  });

  it('an engine that throws instead of answering a value → 500 ERR_INTERNAL', async () => {
    const policy: PolicyPort = {
      current: () => ({
        revision: 'rev-1',
        engine: {
          evaluate: () => {
            throw new Error('engine bug');
          },
        },
      }),
    };
    const { pipeline } = pipelineWith({ policy });
    const res = await pipeline.check(request());
    expect(denied(res).body.error).toBe('ERR_INTERNAL');
    expect(res.dynamicMetadata?.fields['policy_revision']).toEqual({ stringValue: 'rev-1' });
  });

  it('hostile values in place of a CheckRequest are denied, never allowed', async () => {
    const { pipeline } = pipelineWith({ policy: policyOf(() => true) });
    for (const req of [
      null,
      undefined,
      7,
      'x',
      [],
      { attributes: null },
      { attributes: { request: { http: 5 } } },
    ]) {
      const res = await pipeline.check(req);
      expect(res.okResponse, JSON.stringify(req)).toBeUndefined();
      expect(res.deniedResponse).toBeDefined();
    }
  });
});
