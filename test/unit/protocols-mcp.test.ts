// MCP requests through the production input builder: the protocol view a policy sees, and every
// ambiguous or hostile message refused before the policy runs.
import { describe, expect, it } from 'vitest';
import { buildInput } from '../../authz-server/input/build-input.ts';
import { protocolHook } from '../../authz-server/protocols/index.ts';
import { checkRequest } from '../support/authz-client.ts';
import { verifiedIdentity } from '../support/identity.ts';

const identity = verifiedIdentity();

function mcp(body: string | undefined, opts: { method?: string; headers?: Record<string, string> } = {}) {
  const req = checkRequest({
    method: opts.method ?? 'POST',
    path: '/mcp',
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...opts.headers },
    ...(body !== undefined ? { body } : {}),
    contextExtensions: { route_id: 'tools/0', target: 'tools', protocol: 'mcp' },
  });
  return buildInput(
    req,
    { identity, identityError: null },
    { requireCompleteBody: true, protocol: protocolHook },
  );
}

function view(body: string | undefined, opts?: Parameters<typeof mcp>[1]) {
  const r = mcp(body, opts);
  if (!r.ok) throw new Error(`${r.code}: ${r.reason}`);
  return r.input.protocol as Record<string, unknown>;
}

describe('MCP protocol view', () => {
  it('exposes tools/call name and arguments', () => {
    const v = view(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 7,
        method: 'tools/call',
        params: { name: 'read_file', arguments: { path: '/srv/a' } },
      }),
      { headers: { 'mcp-session-id': 's-1', 'mcp-method': 'tools/call', 'mcp-name': 'read_file' } },
    );
    expect(v).toMatchObject({
      name: 'mcp',
      method: 'tools/call',
      id: 7,
      tool: 'read_file',
      arguments: { path: '/srv/a' },
      session_id: 's-1',
      notification: false,
    });
  });

  it.each([
    [
      { jsonrpc: '2.0', id: 'a', method: 'resources/read', params: { uri: 'file:///etc/hosts' } },
      { uri: 'file:///etc/hosts' },
    ],
    [{ jsonrpc: '2.0', id: 1, method: 'prompts/get', params: { name: 'summary' } }, { prompt: 'summary' }],
    [
      { jsonrpc: '2.0', method: 'notifications/initialized' },
      { notification: true, id: null },
    ],
    [
      { jsonrpc: '2.0', id: 3, result: {} },
      { method: null, id: 3 },
    ],
  ])('reads %j', (msg, expected) => {
    expect(view(JSON.stringify(msg))).toMatchObject(expected);
  });

  it('accepts the GET (SSE) and DELETE (session end) requests without a body', () => {
    expect(view(undefined, { method: 'GET' })).toMatchObject({ method: null, http_method: 'GET' });
    expect(view(undefined, { method: 'DELETE', headers: { 'mcp-session-id': 'x' } })).toMatchObject({
      method: null,
      session_id: 'x',
    });
  });

  it.each([
    ['a batch', '[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]'],
    ['a batch after a BOM and whitespace', '\ufeff \n [{"jsonrpc":"2.0","id":1,"method":"tools/list"}]'],
    ['a duplicate key', '{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}'],
    [
      'a nested duplicate key',
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}',
    ],
    ['a case-variant key', '{"jsonrpc":"2.0","id":1,"Method":"tools/call","method":"tools/list"}'],
    ['an escaped key', '{"jsonrpc":"2.0","id":1,"m\\u0065thod":"tools/call","params":{"name":"x"}}'],
    ['an escaped method', '{"jsonrpc":"2.0","id":1,"method":"tools\\/call","params":{"name":"x"}}'],
    [
      'concatenated values',
      '{"jsonrpc":"2.0","id":1,"method":"tools/list"}{"jsonrpc":"2.0","id":2,"method":"tools/call"}',
    ],
    ['JSON-RPC 1.0', '{"jsonrpc":"1.0","id":1,"method":"tools/list"}'],
    ['a tools/call without a name', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}'],
    [
      'non-object arguments',
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":[1]}}',
    ],
  ])('refuses %s', (_name, body) => {
    const r = mcp(body);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(['ERR_PROTOCOL_INVALID', 'ERR_BODY_UNPARSABLE']).toContain(r.code);
  });

  it('refuses Mcp-Method / Mcp-Name headers that disagree with the body', () => {
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'delete_repo', arguments: {} },
    });
    const wrongMethod = mcp(body, { headers: { 'mcp-method': 'tools/list' } });
    const wrongName = mcp(body, { headers: { 'mcp-method': 'tools/call', 'mcp-name': 'read_file' } });
    expect(wrongMethod.ok || wrongMethod.reason).toMatch(/Mcp-Method/);
    expect(wrongName.ok || wrongName.reason).toMatch(/Mcp-Name/);
  });

  it('refuses a declared protocol it has no decoder for', () => {
    const req = checkRequest({
      path: '/x',
      contextExtensions: { route_id: 'k/0', target: 'k', protocol: 'soap' },
    });
    const r = buildInput(
      req,
      { identity, identityError: null },
      { requireCompleteBody: true, protocol: protocolHook },
    );
    expect(r.ok).toBe(false);
  });
});
