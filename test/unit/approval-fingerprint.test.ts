// The approval fingerprint: requests built as Envoy sends them, read by the production input builder
// and protocol decoders, fingerprinted by the approval gate's own functions. A retry that differs only
// in its envelope (JSON-RPC id, `_meta`, key order, whitespace, query order) matches its grant; any
// change to what is done does not.
import { describe, expect, it } from 'vitest';
import { buildInput, type PolicyInput } from '../../authz-server/input/build-input.ts';
import { approvalAction, approvalActionDigest } from '../../authz-server/pipeline/approval-action.ts';
import { resolveRoute } from '../../authz-server/pipeline/resolve-route.ts';
import { protocolHook } from '../../authz-server/protocols/index.ts';
import { fingerprintOf } from '../../fleet/approval-store.ts';
import { checkRequest, type RequestSpec } from '../support/authz-client.ts';
import { verifiedIdentity } from '../support/identity.ts';

const identity = verifiedIdentity();

/** The input the policy sees and the fingerprint the gate computes for it. */
function read(
  spec: RequestSpec,
  who = { subject: 'alice', issuer: 'https://idp.example', actor: { agent: 'coder' } },
) {
  const req = checkRequest(spec);
  const built = buildInput(
    req,
    { identity, identityError: null },
    { requireCompleteBody: true, protocol: protocolHook },
  );
  if (!built.ok) throw new Error(`${built.code}: ${built.reason}`);
  const state = resolveRoute(req);
  const fingerprint = fingerprintOf({
    ...who,
    target: state.target,
    action: approvalActionDigest(built.input, state.http),
  });
  return { input: built.input, http: state.http, fingerprint };
}

const fp = (spec: RequestSpec, who?: Parameters<typeof read>[1]) => read(spec, who).fingerprint;

const MCP_ROUTE = { route_id: 'tools/0', target: 'tools', protocol: 'mcp' };

function mcpCall(
  message: unknown,
  opts: { text?: string; headers?: Record<string, string>; path?: string } = {},
) {
  return {
    method: 'POST',
    path: opts.path ?? '/mcp',
    headers: { 'content-type': 'application/json', ...opts.headers },
    body: opts.text ?? JSON.stringify(message),
    contextExtensions: MCP_ROUTE,
  } satisfies RequestSpec;
}

const deleteRepo = (id: unknown, args: unknown = { name: 'prod', force: true }, extra: object = {}) =>
  mcpCall({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name: 'delete_repo', arguments: args, ...extra },
  });

describe('MCP: bound to the tool and its arguments, not the JSON-RPC envelope', () => {
  const approved = fp(deleteRepo(1));

  it.each([
    ['a new numeric id (the SDK client’s retry)', deleteRepo(2)],
    ['a string id', deleteRepo('req-9f')],
    ['params._meta (progress token)', deleteRepo(3, undefined, { _meta: { progressToken: 'p-1' } })],
    ['arguments in another key order', deleteRepo(4, { force: true, name: 'prod' })],
    [
      'other whitespace and member order in the message',
      mcpCall(null, {
        text: '{ "params": {"arguments": {"force": true, "name": "prod"}, "name": "delete_repo"},\n "method": "tools/call", "id": 5, "jsonrpc": "2.0" }',
      }),
    ],
    [
      'another session and protocol version',
      {
        ...deleteRepo(6),
        headers: {
          'content-type': 'application/json',
          'mcp-session-id': 's-2',
          'mcp-protocol-version': '2025-06-18',
        },
      },
    ],
  ])('matches the same call with %s', (_, retry) => {
    expect(fp(retry)).toBe(approved);
  });

  it.each([
    ['another argument value', deleteRepo(1, { name: 'staging', force: true })],
    ['an extra argument', deleteRepo(1, { name: 'prod', force: true, archive: false })],
    ['a missing argument', deleteRepo(1, { name: 'prod' })],
    ['an argument of another type', deleteRepo(1, { name: 'prod', force: 'true' })],
    [
      'another tool',
      mcpCall({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'archive_repo', arguments: { name: 'prod', force: true } },
      }),
    ],
    ['another MCP endpoint of the target', { ...deleteRepo(1), path: '/mcp/other' }],
  ])('does not match %s', (_, other) => {
    expect(fp(other)).not.toBe(approved);
  });

  it('does not match another requester (subject or issuer), agent or target', () => {
    const idp = 'https://idp.example';
    expect(fp(deleteRepo(1), { subject: 'bob', issuer: idp, actor: { agent: 'coder' } })).not.toBe(approved);
    expect(
      fp(deleteRepo(1), { subject: 'alice', issuer: 'https://other.example', actor: { agent: 'coder' } }),
    ).not.toBe(approved);
    expect(fp(deleteRepo(1), { subject: 'alice', issuer: idp, actor: { agent: 'other-agent' } })).not.toBe(
      approved,
    );
    expect(fp({ ...deleteRepo(1), contextExtensions: { ...MCP_ROUTE, target: 'tools-2' } })).not.toBe(
      approved,
    );
  });

  it('binds other methods to their params without _meta', () => {
    const read1 = mcpCall({ jsonrpc: '2.0', id: 1, method: 'resources/read', params: { uri: 'file:///a' } });
    const read2 = mcpCall({
      jsonrpc: '2.0',
      id: 2,
      method: 'resources/read',
      params: { uri: 'file:///a', _meta: { progressToken: 1 } },
    });
    const readB = mcpCall({ jsonrpc: '2.0', id: 1, method: 'resources/read', params: { uri: 'file:///b' } });
    expect(fp(read2)).toBe(fp(read1));
    expect(fp(readB)).not.toBe(fp(read1));
    const prompt = (args: object) =>
      mcpCall({ jsonrpc: '2.0', id: 1, method: 'prompts/get', params: { name: 'p', arguments: args } });
    // The view names only the prompt; its arguments are part of what is done all the same.
    expect(fp(prompt({ a: '1' }))).not.toBe(fp(prompt({ a: '2' })));
  });

  it('describes the call by what it does: no id, no _meta, no session', () => {
    const { input, http } = read({
      ...deleteRepo(42, undefined, { _meta: { x: 1 } }),
      headers: { 'content-type': 'application/json', 'mcp-session-id': 's' },
    });
    expect(approvalAction(input, http)).toEqual({
      protocol: 'mcp',
      path: '/mcp',
      method: 'tools/call',
      tool: 'delete_repo',
      arguments: { name: 'prod', force: true },
    });
  });
});

describe('plain HTTP: method, path, canonical query and canonical body', () => {
  const del = (path: string, extra: Partial<RequestSpec> = {}) =>
    ({
      method: 'DELETE',
      path,
      contextExtensions: { route_id: 'demo/0', target: 'demo', protocol: 'http' },
      ...extra,
    }) satisfies RequestSpec;
  const post = (body: string, type = 'application/json', path = '/demo/items') =>
    ({
      method: 'POST',
      path,
      headers: { 'content-type': type },
      body,
      contextExtensions: { route_id: 'demo/0', target: 'demo' },
    }) satisfies RequestSpec;

  it('matches reordered query parameters, not reordered values of one parameter', () => {
    expect(fp(del('/demo/items/1?b=2&a=1'))).toBe(fp(del('/demo/items/1?a=1&b=2')));
    expect(fp(del('/demo/items/1?a=%31'))).toBe(fp(del('/demo/items/1?a=1')));
    expect(fp(del('/demo/items/1?a=1&a=2'))).not.toBe(fp(del('/demo/items/1?a=2&a=1')));
    expect(fp(del('/demo/items/1?a=1'))).not.toBe(fp(del('/demo/items/1')));
  });

  it('does not match another method or path', () => {
    expect(fp(del('/demo/items/2'))).not.toBe(fp(del('/demo/items/1')));
    expect(fp({ ...del('/demo/items/1'), method: 'GET' })).not.toBe(fp(del('/demo/items/1')));
  });

  it('matches a JSON body with other key order and whitespace; not another value', () => {
    const base = fp(post('{"name":"outage","priority":"low","tags":["a","b"]}'));
    expect(fp(post('{ "tags": ["a", "b"],\n  "priority": "low", "name": "outage" }'))).toBe(base);
    expect(fp(post('{"name":"outage","priority":"low","tags":["b","a"]}'))).not.toBe(base);
    expect(fp(post('{"name":"outage","priority":"high","tags":["a","b"]}'))).not.toBe(base);
  });

  it('matches a form body with other field order', () => {
    const form = 'application/x-www-form-urlencoded';
    expect(fp(post('b=2&a=1', form))).toBe(fp(post('a=1&b=2', form)));
    expect(fp(post('a=1&b=3', form))).not.toBe(fp(post('a=1&b=2', form)));
  });

  it('binds an unparsed body by the hash of its bytes', () => {
    const bin = (bytes: number[]) => ({
      method: 'PUT',
      path: '/demo/blob',
      headers: { 'content-type': 'application/octet-stream' },
      rawBody: Buffer.from(bytes),
      contextExtensions: { route_id: 'demo/0', target: 'demo' },
    });
    expect(fp(bin([1, 2, 3]))).toBe(fp(bin([1, 2, 3])));
    expect(fp(bin([1, 2, 4]))).not.toBe(fp(bin([1, 2, 3])));
  });
});

describe('other protocol views: the view and the request content', () => {
  const llm = (body: object, text?: string) =>
    ({
      method: 'POST',
      path: '/openai/v1/chat/completions',
      headers: { 'content-type': 'application/json' },
      body: text ?? JSON.stringify(body),
      contextExtensions: { route_id: 'openai/0', target: 'openai', protocol: 'llm' },
    }) satisfies RequestSpec;
  const chat = (content: string) => ({ model: 'gpt-4o', messages: [{ role: 'user', content }] });

  it('matches the same LLM request re-serialised; not another prompt with the same summary', () => {
    const base = read(llm(chat('delete the prod database')));
    expect(
      fp(
        llm(
          {},
          JSON.stringify({
            messages: [{ content: 'delete the prod database', role: 'user' }],
            model: 'gpt-4o',
          }),
        ),
      ),
    ).toBe(base.fingerprint);
    // Same model, message count and prompt length: the view alone cannot tell them apart.
    const other = read(llm(chat('delete the dev database!')));
    expect(other.input.protocol).toEqual(base.input.protocol);
    expect(other.fingerprint).not.toBe(base.fingerprint);
  });

  it('binds GraphQL variables, which the view does not show', () => {
    const gql = (variables: object) =>
      ({
        method: 'POST',
        path: '/graphql',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: 'mutation D($n: String!) { deleteRepo(name: $n) { ok } }', variables }),
        contextExtensions: { route_id: 'gh/0', target: 'gh', protocol: 'graphql' },
      }) satisfies RequestSpec;
    expect(read(gql({ n: 'a' })).input.protocol).toEqual(read(gql({ n: 'b' })).input.protocol);
    expect(fp(gql({ n: 'a' }))).not.toBe(fp(gql({ n: 'b' })));
    expect(fp(gql({ n: 'a' }))).toBe(fp(gql({ n: 'a' })));
  });
});

it('leaves the policy input exactly as it was', () => {
  for (const spec of [
    deleteRepoSpec(),
    { method: 'DELETE', path: '/demo/x?b=1&a=2', contextExtensions: { target: 'demo' } },
  ]) {
    const { input, http } = read(spec);
    const before: PolicyInput = structuredClone(input);
    approvalActionDigest(input, http);
    expect(input).toEqual(before);
  }
});

function deleteRepoSpec(): RequestSpec {
  return deleteRepo(1, { name: 'prod' }, { _meta: { progressToken: 1 } });
}
