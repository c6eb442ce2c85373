// The result mapper on its own: policy results (OPA-Envoy semantics plus Chaperone's extensions) →
// ext_authz CheckResponse, and the denies the server makes itself from the deny catalog. Tables of
// inputs and exact outputs.
import { describe, expect, it } from 'vitest';
import {
  type CheckResponseMessage,
  type MapContext,
  mapPolicyResult,
  serverDeny,
} from '../../authz-server/result-mapper.ts';
import { DENY_CATALOG, type ServerDenyCode } from '../../contracts/errors.ts';
import { fromStruct } from '../../lib/proto-struct.ts';

const ctx: MapContext = { decisionId: 'd-1', policyRevision: 'rev-1', requestHeaderNames: [] };
const DECISION_HEADER = {
  header: { key: 'x-chaperone-decision-id', value: 'd-1' },
  appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' as const,
};
const overwrite = (key: string, value: string) => ({
  header: { key, value },
  appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' as const,
});
const append = (key: string, value: string) => ({
  header: { key, value },
  appendAction: 'APPEND_IF_EXISTS_OR_ADD' as const,
});

function mapped(result: unknown, over: Partial<MapContext> = {}) {
  const out = mapPolicyResult(result, { ...ctx, ...over });
  if (!out.ok) throw new Error(`expected a mapping, got ${out.code}: ${out.detail}`);
  return out;
}

const metadataOf = (res: CheckResponseMessage) => fromStruct(res.dynamicMetadata as never);

describe('mapPolicyResult: allows', () => {
  const cases: [string, unknown, Partial<NonNullable<CheckResponseMessage['okResponse']>>][] = [
    ['true', true, { headers: [DECISION_HEADER], headersToRemove: [], queryParametersToSet: [] }],
    ['{allowed: true}', { allowed: true }, { headers: [DECISION_HEADER] }],
    [
      'headers: a string, and an array (first overwrites, the rest append), names lower-cased',
      { allowed: true, headers: { 'X-User': 'alice', 'x-group': ['eng', 'ops'] } },
      {
        headers: [
          overwrite('x-user', 'alice'),
          overwrite('x-group', 'eng'),
          append('x-group', 'ops'),
          DECISION_HEADER,
        ],
      },
    ],
    [
      'response_headers_to_add always append',
      { allowed: true, response_headers_to_add: { 'x-trace': ['a', 'b'] } },
      { responseHeadersToAdd: [append('x-trace', 'a'), append('x-trace', 'b'), DECISION_HEADER] },
    ],
    [
      'request_headers_to_remove lower-cased',
      { allowed: true, request_headers_to_remove: ['X-Secret'] },
      { headersToRemove: ['x-secret'] },
    ],
    [
      'query parameters set (string or array) and removed',
      {
        allowed: true,
        query_parameters_to_set: { a: '1', b: ['2', '3'] },
        query_parameters_to_remove: ['Debug'],
      },
      {
        queryParametersToSet: [
          { key: 'a', value: '1' },
          { key: 'b', value: '2' },
          { key: 'b', value: '3' },
        ],
        queryParametersToRemove: ['debug'],
      },
    ],
    [
      'http_status and body belong to denies: ignored on an allow',
      { allowed: true, http_status: 999, body: 'ignored' },
      { headers: [DECISION_HEADER] },
    ],
  ];
  for (const [name, result, expected] of cases) {
    it(name, () => {
      const out = mapped(result);
      expect(out.response.status).toEqual({ code: 0 });
      expect(out.response.deniedResponse).toBeUndefined();
      expect(out.response.okResponse).toMatchObject(expected);
      expect(out.verdict).toMatchObject({ decision: 'allow', httpStatus: 200, reasonCode: 'ALLOWED' });
    });
  }

  it('reason: the policy\'s, or "allowed by policy"', () => {
    expect(mapped(true).verdict.reason).toBe('allowed by policy');
    expect(mapped({ allowed: true, reason: 'rule 3' }).verdict.reason).toBe('rule 3');
  });
});

describe('mapPolicyResult: client-sent identity headers', () => {
  const sent = [
    'x-forwarded-user',
    'x-auth-request-email',
    'x-chaperone-user',
    'x-chaperone-anything',
    'x-other',
  ];

  it('removes identity headers and every x-chaperone-* header the client sent, keeps the rest', () => {
    const out = mapped(true, { requestHeaderNames: sent });
    expect(out.response.okResponse?.headersToRemove.sort()).toEqual(
      ['x-auth-request-email', 'x-chaperone-anything', 'x-chaperone-user', 'x-forwarded-user'].sort(),
    );
  });

  it('a header the policy sets itself is overwritten, not removed', () => {
    const out = mapped(
      { allowed: true, headers: { 'x-chaperone-user': 'alice' } },
      { requestHeaderNames: sent },
    );
    expect(out.response.okResponse?.headersToRemove).not.toContain('x-chaperone-user');
    expect(out.response.okResponse?.headers).toContainEqual(overwrite('x-chaperone-user', 'alice'));
  });
});

describe('mapPolicyResult: denies', () => {
  const cases: [
    string,
    unknown,
    { status: number; rpc: number; body: string; headers: unknown[]; code: string },
  ][] = [
    ['false', false, { status: 403, rpc: 7, body: '', headers: [DECISION_HEADER], code: 'DENIED_BY_POLICY' }],
    [
      'http_status and a string body',
      { allowed: false, http_status: 429, body: 'slow down', headers: { 'retry-after': '5' } },
      {
        status: 429,
        rpc: 7,
        body: 'slow down',
        headers: [overwrite('retry-after', '5'), DECISION_HEADER],
        code: 'DENIED_BY_POLICY',
      },
    ],
    [
      '401 is unauthenticated; an object body is JSON with its content type',
      { allowed: false, http_status: 401, body: { error: 'unauthenticated' } },
      {
        status: 401,
        rpc: 16,
        body: '{"error":"unauthenticated"}',
        headers: [overwrite('content-type', 'application/json'), DECISION_HEADER],
        code: 'DENIED_UNAUTHENTICATED',
      },
    ],
    [
      "an object body keeps the policy's own content type",
      { allowed: false, body: { a: 1 }, headers: { 'Content-Type': 'application/problem+json' } },
      {
        status: 403,
        rpc: 7,
        body: '{"a":1}',
        headers: [overwrite('content-type', 'application/problem+json'), DECISION_HEADER],
        code: 'DENIED_BY_POLICY',
      },
    ],
  ];
  for (const [name, result, e] of cases) {
    it(name, () => {
      const out = mapped(result);
      expect(out.response.okResponse).toBeUndefined();
      expect(out.response.status).toEqual({ code: e.rpc });
      expect(out.response.deniedResponse).toEqual({
        status: { code: e.status },
        headers: e.headers,
        body: e.body,
      });
      expect(out.verdict).toEqual({
        decision: 'deny',
        httpStatus: e.status,
        reason: (result as { reason?: string }).reason ?? 'denied by policy',
        reasonCode: e.code,
      });
    });
  }
});

describe('mapPolicyResult: dynamic metadata', () => {
  it("carries the decision, the policy's dynamic_metadata and (on an allow) its masks", () => {
    const allow = mapped({ allowed: true, dynamic_metadata: { tier: 'gold' }, masks: { paths: ['$.ssn'] } });
    expect(metadataOf(allow.response)).toEqual({
      tier: 'gold',
      masks: { paths: ['$.ssn'] },
      decision_id: 'd-1',
      policy_revision: 'rev-1',
      decision: 'allow',
      reason_code: 'ALLOWED',
    });
    const deny = mapped({ allowed: false, dynamic_metadata: { tier: 'gold' }, masks: { paths: ['$.ssn'] } });
    expect(metadataOf(deny.response)).toEqual({
      tier: 'gold',
      decision_id: 'd-1',
      policy_revision: 'rev-1',
      decision: 'deny',
      reason_code: 'DENIED_BY_POLICY',
    });
  });

  it('sets the mask header on the upstream request exactly when an allow carries masks', () => {
    const maskHeader = (r: ReturnType<typeof mapped>) =>
      (r.response.okResponse?.headers ?? []).filter((h) => h.header.key === 'x-chaperone-mask');
    expect(maskHeader(mapped({ allowed: true, masks: { paths: ['$.ssn'] } }))).toEqual([
      { header: { key: 'x-chaperone-mask', value: 'on' }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' },
    ]);
    for (const masks of [undefined, null, 'all', ['$.ssn']])
      expect(maskHeader(mapped({ allowed: true, masks }))).toEqual([]);
    // A result that masks cannot also remove the header that switches its masking on.
    const both = mapped({
      allowed: true,
      masks: { paths: ['$.ssn'] },
      request_headers_to_remove: ['X-Chaperone-Mask', 'x-other'],
    });
    expect(both.response.okResponse?.headersToRemove).toEqual(['x-other']);
  });

  it('the policy cannot overwrite the decision fields', () => {
    const out = mapped({ allowed: true, dynamic_metadata: { decision_id: 'forged', reason_code: 'forged' } });
    expect(metadataOf(out.response)).toMatchObject({ decision_id: 'd-1', reason_code: 'ALLOWED' });
  });
});

describe('mapPolicyResult: invalid results → ERR_POLICY_RESULT_INVALID with the detail', () => {
  const shape = 'policy result must be a boolean or an object with a boolean "allowed"';
  const cases: [unknown, string][] = [
    [undefined, shape],
    [null, shape],
    ['true', shape],
    [1, shape],
    [[true], shape],
    [{}, shape],
    [{ allowed: 'true' }, shape],
    [{ allowed: true, headers: ['x'] }, '"headers" must be an object of header name → value(s)'],
    [{ allowed: true, headers: { 'x-n': 1 } }, '"headers.x-n" must be a string or an array of strings'],
    [
      { allowed: true, headers: { 'x-n': ['a', 2] } },
      '"headers.x-n" must be a string or an array of strings',
    ],
    [
      { allowed: true, response_headers_to_add: 'x' },
      '"response_headers_to_add" must be an object of header name → value(s)',
    ],
    [
      { allowed: true, request_headers_to_remove: 'x' },
      '"request_headers_to_remove" must be an array of strings',
    ],
    [
      { allowed: true, query_parameters_to_remove: [1] },
      '"query_parameters_to_remove" must be an array of strings',
    ],
    [{ allowed: true, query_parameters_to_set: [] }, '"query_parameters_to_set" must be an object'],
    [{ allowed: true, query_parameters_to_set: { a: 1 } }, '"query_parameters_to_set.a" must be a string'],
    [{ allowed: false, http_status: 700 }, '"http_status" must be an integer from 200 to 599'],
    [{ allowed: false, http_status: 403.5 }, '"http_status" must be an integer from 200 to 599'],
    [{ allowed: false, http_status: '403' }, '"http_status" must be an integer from 200 to 599'],
    [{ allowed: false, headers: { a: null } }, '"headers.a" must be a string or an array of strings'],
  ];
  for (const [result, detail] of cases) {
    it(JSON.stringify(result) ?? 'undefined', () => {
      expect(mapPolicyResult(result, ctx)).toEqual({ ok: false, code: 'ERR_POLICY_RESULT_INVALID', detail });
    });
  }
});

describe('serverDeny: every server code from the deny catalog', () => {
  const serverCodes = Object.entries(DENY_CATALOG).flatMap(([code, rule]) =>
    rule.decidedBy === 'server' ? [[code as ServerDenyCode, rule] as const] : [],
  );

  it('covers the codes the Check path denies with', () => {
    expect(serverCodes.map(([c]) => c)).toEqual(
      expect.arrayContaining([
        'ERR_POLICY_MISSING',
        'ERR_AUDIT_UNAVAILABLE',
        'ERR_APPROVAL_SPENT',
        'ERR_INTERNAL',
      ]),
    );
  });

  for (const [code, rule] of serverCodes) {
    it(`${code} → ${rule.status} "${rule.publicReason}"`, () => {
      const { response, verdict } = serverDeny(code, { decisionId: 'd-1', policyRevision: 'rev-1' });
      expect(verdict).toEqual({
        decision: rule.verdict,
        httpStatus: rule.status,
        reason: rule.publicReason,
        reasonCode: code,
      });
      expect(response.okResponse).toBeUndefined();
      expect(response.status).toEqual({ code: rule.status === 401 ? 16 : 7 });
      expect(response.deniedResponse).toEqual({
        status: { code: rule.status },
        headers: [overwrite('content-type', 'application/json'), DECISION_HEADER],
        body: JSON.stringify({ error: code, reason: rule.publicReason, decision_id: 'd-1' }),
      });
      expect(metadataOf(response)).toEqual({
        decision_id: 'd-1',
        policy_revision: 'rev-1',
        decision: rule.verdict,
        reason_code: code,
      });
    });
  }

  const details: [ServerDenyCode, string, string][] = [
    ['ERR_PATH_NONCANONICAL', 'non-canonical path: dot segment', 'non-canonical path: dot segment'],
    [
      'ERR_BODY_TRUNCATED',
      'request body did not reach the check in full',
      'request body did not reach the check in full',
    ],
    ['ERR_PROTOCOL_INVALID', 'MCP: jsonrpc must be "2.0"', 'MCP: jsonrpc must be "2.0"'],
    ['ERR_APPROVAL_SPENT', 'appr-1', 'approval appr-1 was already used or has expired'],
    // A detail of any other code is for the log only.
    ['ERR_POLICY_EVAL', 'builtin error: SECRET', 'policy evaluation failed'],
    ['ERR_CREDENTIAL_UNAVAILABLE', 'env:SECRET_NAME unset', 'upstream credential is unavailable'],
    ['ERR_INTERNAL', 'stack trace', 'internal error in the authorization server'],
  ];
  for (const [code, detail, reason] of details) {
    it(`${code} with detail "${detail}" → the client reads "${reason}"`, () => {
      const { response, verdict } = serverDeny(code, { decisionId: 'd-1', policyRevision: 'rev-1' }, detail);
      expect(verdict.reason).toBe(reason);
      expect(JSON.parse(response.deniedResponse!.body).reason).toBe(reason);
    });
  }
});
