// The one redaction pass (audit/redaction.ts, lib/secret-text.ts), table-driven: which text, names and
// shapes are credentials, what stays readable, and that every field of a record a secret can reach —
// path, reason, actor, input (headers, query, body, protocol views), result — goes through it.
import { describe, expect, it } from 'vitest';
import type { DecisionRecord } from '../../audit/records.ts';
import { REDACTED, Redactor, redactPath, redactText } from '../../audit/redaction.ts';

const JWT = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlX2hlcmU';

describe('redactText', () => {
  const cases: [string, string, string][] = [
    ['a JWT alone', JWT, REDACTED],
    ['a JWT inside text', `token was ${JWT}.`, `token was ${REDACTED}.`],
    ['Bearer credentials', 'Authorization: Bearer abcdefgh12345', `Authorization: Bearer ${REDACTED}`],
    ['a bearer header value', 'Bearer abc.def', REDACTED],
    ['Basic user:password', `Basic ${Buffer.from('user:pw').toString('base64')}`, `Basic ${REDACTED}`],
    ['the English word basic', 'basic information about users', 'basic information about users'],
    ['a GitHub token', 'ghp_0123456789abcdefghijklmnopqrstuvwxyz here', `${REDACTED} here`],
    ['an AWS access key id', 'id AKIAABCDEFGHIJKLMNOP', `id ${REDACTED}`],
    ['an OpenAI-style key', 'sk-proj-abcdefghijklmnopqrstuvwxyz', REDACTED],
    [
      'a PEM private key',
      'k=-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY----- end',
      `k=${REDACTED} end`,
    ],
    ['a secret query parameter', '/x?access_token=abc&q=1', `/x?access_token=${REDACTED}&q=1`],
    [
      'secret names in any case and form',
      '/x?X-Amz-Signature=1&API_KEY=2',
      `/x?X-Amz-Signature=${REDACTED}&API_KEY=${REDACTED}`,
    ],
    ['percent-encoded names', '/x?access%5Ftoken=abc', `/x?access%5Ftoken=${REDACTED}`],
    ['key=value text', 'retry with password=hunter2 now', `retry with password=${REDACTED} now`],
    ['nothing secret', '/x?page=2&sort=name', '/x?page=2&sort=name'],
    ['a token limit', 'token limit reached', 'token limit reached'],
  ];
  it.each(cases)('%s', (_, input, expected) => expect(redactText(input)).toBe(expected));

  it('redactPath drops the query and masks tokens inside the path', () => {
    expect(redactPath('/a/b?token=x')).toBe('/a/b');
    expect(redactPath(`/hooks/${JWT}`)).toBe(`/hooks/${REDACTED}`);
  });
});

function record(over: Partial<DecisionRecord>): DecisionRecord {
  return {
    decision_id: 'd',
    request_id: 'r',
    time: '2026-01-01T00:00:00.000Z',
    route_id: null,
    target: 't',
    method: 'GET',
    host: 'h',
    path: '/p',
    subject: 'alice',
    issuer: 'i',
    actor: null,
    decision: 'allow',
    http_status: 200,
    reason: 'ok',
    reason_code: 'ALLOWED',
    policy_revision: 'r1',
    latency_us: 1,
    input: null,
    result: null,
    ...over,
  };
}

describe('Redactor.decision', () => {
  const r = new Redactor(['x-internal-secret', 'X-Custom-Token-Header']);
  const S = 'not-shaped-like-anything-7f3a';

  it('reaches every field a secret can be in', () => {
    const out = r.decision(
      record({
        path: `/p?api_key=${S}`,
        reason: `approved DELETE /p?token=${S} for alice`,
        actor: { agent: 'a', upstream_token: S },
        input: {
          attributes: {
            request: {
              http: {
                path: `/p?api_key=${S}`,
                query: `api_key=${S}&q=1`,
                headers: {
                  'x-internal-secret': S,
                  'x-custom-token-header': S,
                  cookie: S,
                  'x-other': `Token ${S}`,
                  accept: 'json',
                },
                body: S,
                rawBody: S,
              },
            },
          },
          parsed_query: { api_key: [S], q: ['1'] },
          parsed_body: { password: S, list: [{ secret: { deep: S, n: 42 } }], ok: 'visible' },
          protocol: { name: 'mcp', arguments: { api_key: S, X_Internal_Secret: S, path: '/ok' } },
          identity: { subject: 'alice', claims: { refresh_token: S, groups: ['g'] } },
        },
        result: {
          allowed: true,
          headers: { authorization: S, 'x-upstream': `Basic ${Buffer.from(`u:${S}`).toString('base64')}` },
          response_headers_to_add: { 'set-cookie': S },
          dynamic_metadata: { note: `password=${S}` },
        },
      }),
    );
    expect(JSON.stringify(out)).not.toContain(S);
    expect(out.path).toBe('/p');
    expect(out.reason).toBe(`approved DELETE /p?token=${REDACTED} for alice`);
    const input = out.input as Record<string, any>;
    expect(input['attributes'].request.http.headers.accept).toBe('json');
    expect(input['attributes'].request.http.query).toBe('api_key=%5Bredacted%5D&q=1');
    expect(input['parsed_query']).toEqual({ api_key: [REDACTED], q: ['1'] });
    expect(input['parsed_body']).toEqual({
      password: REDACTED,
      list: [{ secret: { deep: REDACTED, n: REDACTED } }],
      ok: 'visible',
    });
    expect(input['protocol'].arguments).toEqual({
      api_key: REDACTED,
      X_Internal_Secret: REDACTED,
      path: '/ok',
    });
    expect(input['identity'].claims.groups).toEqual(['g']);
  });

  it('copies: the live input is never changed, and a __proto__ key stays data', () => {
    const body = JSON.parse(`{"__proto__": {"password": "${S}"}, "password": "${S}"}`);
    const input = { parsed_body: body };
    const out = r.input(input) as { parsed_body: Record<string, unknown> };
    expect(body.password).toBe(S);
    expect(Object.getPrototypeOf(out.parsed_body)).toBe(Object.prototype);
    expect(JSON.stringify(out)).not.toContain(S);
  });

  it('access-log entries: path without query, metadata swept', () => {
    const e = r.accessLog({
      requestId: 'r',
      decisionId: null,
      policyRevision: null,
      time: new Date(0),
      nodeId: 'n',
      route: 'x',
      method: 'GET',
      authority: 'h',
      path: `/p?token=${S}`,
      responseCode: 200,
      responseCodeDetails: 'via_upstream',
      bytesSent: 1,
      bytesReceived: 1,
      durationMs: 1,
      upstreamHost: '',
      upstreamCluster: '',
      metadata: { 'envoy.filters.http.ext_authz': { client_secret: S } },
    });
    expect(JSON.stringify(e)).not.toContain(S);
    expect(e.path).toBe('/p');
  });
});
