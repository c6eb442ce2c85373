// Property-based fuzzing of the MCP and Kubernetes views through the production input builder: no
// input throws, no decision takes longer than a bound, and what is accepted agrees with the reference
// reading — JSON.parse of the same body for MCP (the view reports the method, tool and arguments the
// server will parse), kube-apiserver's path rules for Kubernetes (invariants of RequestInfoFactory).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildInput } from '../../authz-server/input/build-input.ts';
import { protocolHook } from '../../authz-server/protocols/index.ts';
import { checkRequest } from '../support/authz-client.ts';
import { verifiedIdentity } from '../support/identity.ts';
import { withinBound } from '../support/time-bound.ts';

/**
 * Typical decisions take well under a millisecond; the bound catches work that grows with the input
 * (seconds). On a loaded 2-core machine one run can read 150 ms, so a run over the bound is repeated
 * and only the fastest counts (test/support/time-bound.ts).
 */
const BOUND_MS = 100;
const identity = verifiedIdentity();

function build(protocol: string, method: string, path: string, body?: string) {
  const req = checkRequest({
    method,
    path,
    headers: body !== undefined ? { 'content-type': 'application/json' } : {},
    ...(body !== undefined ? { body } : {}),
    contextExtensions: { route_id: 'x/0', target: 'x', protocol },
  });
  return withinBound(
    () =>
      buildInput(
        req,
        { identity, identityError: null },
        { requireCompleteBody: true, protocol: protocolHook },
      ),
    BOUND_MS,
    `${protocol} ${method} ${path.slice(0, 60)}`,
  );
}

describe('fuzz: MCP', () => {
  const key = fc.constantFrom(
    'jsonrpc',
    'id',
    'method',
    'params',
    'Method',
    'name',
    'Name',
    'arguments',
    'path',
    'uri',
    '_meta',
    'm\\u0065thod',
  );
  const scalar = fc.oneof(
    fc.constantFrom(
      '2.0',
      'tools/call',
      'tools/list',
      'resources/read',
      'prompts/get',
      'read_file',
      '/srv/public/a',
      '../x',
    ),
    fc.integer(),
    fc.constant(null),
  );
  const member = fc
    .tuple(
      key,
      fc.oneof(
        scalar,
        scalar.map((v) => ({ name: v })),
      ),
    )
    .map(([k, v]) => `"${k}":${JSON.stringify(v)}`);
  // Hand-assembled text, so duplicate and case-variant keys, escapes and batches all occur.
  const body = fc.oneof(
    fc.array(member, { maxLength: 6 }).map((m) => `{${m.join(',')}}`),
    fc.array(member, { maxLength: 4 }).map((m) => `[{${m.join(',')}}]`),
    fc
      .record({
        id: fc.integer(),
        method: fc.constantFrom('tools/call', 'tools/list'),
        params: fc.record({
          name: fc.string({ maxLength: 8 }),
          arguments: fc.dictionary(fc.string({ maxLength: 4 }), scalar),
        }),
      })
      .map((m) => JSON.stringify({ jsonrpc: '2.0', ...m })),
  );

  it('never throws; an accepted message is read as JSON.parse reads it', () => {
    let accepted = 0;
    fc.assert(
      fc.property(body, (text) => {
        const r = build('mcp', 'POST', '/mcp', text);
        if (!r.ok) return;
        accepted++;
        const msg = JSON.parse(text) as Record<string, any>;
        const view = r.input.protocol as Record<string, unknown>;
        expect(view['method']).toBe(msg['method'] ?? null);
        if (msg['method'] === 'tools/call') {
          expect(view['tool']).toBe(msg['params']['name']);
          expect(view['arguments']).toEqual(msg['params']['arguments'] ?? {});
        }
      }),
      { numRuns: 600, seed: 99 },
    );
    expect(accepted).toBeGreaterThan(20);
  });
});

describe('fuzz: Kubernetes', () => {
  const segment = fc.constantFrom(
    'api',
    'apis',
    'v1',
    'apps',
    'namespaces',
    'dev',
    'pods',
    'web',
    'status',
    'finalize',
    'exec',
    'watch',
    'proxy',
    'log',
    '',
  );
  const query = fc.constantFrom(
    '',
    '?watch=true',
    '?watch=0',
    '?watch=',
    '?fieldSelector=metadata.name%3Dweb',
    '?fieldSelector=metadata.name%3Dweb&limit=x',
    '?labelSelector=a%3Db',
  );
  const method = fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS');

  it('never throws; resource requests follow kube-apiserver path rules', () => {
    fc.assert(
      fc.property(method, fc.array(segment, { maxLength: 8 }), query, (m, segs, q) => {
        const path = `/${segs.filter((s, i) => s !== '' || i === segs.length - 1).join('/')}`;
        const r = build('kubernetes', m, `${path}${q}`);
        if (!r.ok) return;
        const v = r.input.protocol as Record<string, any>;
        const parts = path.split('/').filter((s) => s !== '');
        if (!v['is_resource_request']) {
          expect(
            parts.length < 3 ||
              !['api', 'apis'].includes(parts[0]!) ||
              (parts[0] === 'apis' && parts.length < 4),
          ).toBe(true);
          return;
        }
        expect([
          'get',
          'list',
          'watch',
          'create',
          'update',
          'patch',
          'delete',
          'deletecollection',
          'proxy',
        ]).toContain(v['verb']);
        expect(v['api_prefix']).toBe(parts[0]);
        expect(v['api_group']).toBe(parts[0] === 'apis' ? parts[1] : '');
        if (v['namespace'] !== null) expect(parts).toContain('namespaces');
        if (['exec', 'attach', 'portforward'].includes(v['subresource'])) expect(v['verb']).toBe('create');
        if (v['verb'] === 'list' || v['verb'] === 'deletecollection') expect(v['subresource']).toBeNull();
      }),
      { numRuns: 800, seed: 8 },
    );
  });
});
