// LLM API and Kubernetes API requests through the production input builder: the protocol view a
// policy sees (model, token budget, tools; kube-apiserver's request info).
import { describe, expect, it } from 'vitest';
import { buildInput } from '../../authz-server/input/build-input.ts';
import { protocolHook } from '../../authz-server/protocols/index.ts';
import { checkRequest } from '../support/authz-client.ts';
import { verifiedIdentity } from '../support/identity.ts';

const identity = verifiedIdentity();

function view(protocol: string, method: string, path: string, body?: unknown) {
  const req = checkRequest({
    method,
    path,
    headers: body ? { 'content-type': 'application/json' } : {},
    ...(body ? { body: JSON.stringify(body) } : {}),
    contextExtensions: { route_id: 'x/0', target: 'x', protocol },
  });
  const r = buildInput(
    req,
    { identity, identityError: null },
    { requireCompleteBody: true, protocol: protocolHook },
  );
  if (!r.ok) return { error: r.code, reason: r.reason };
  return r.input.protocol as Record<string, unknown>;
}

describe('LLM APIs', () => {
  it('reads an OpenAI chat completion', () => {
    expect(
      view('llm', 'POST', '/openai/v1/chat/completions', {
        model: 'gpt-4o-mini',
        max_completion_tokens: 512,
        stream: true,
        tools: [{ type: 'function', function: { name: 'search' } }],
        messages: [
          { role: 'system', content: 'be brief' },
          { role: 'user', content: [{ type: 'text', text: 'hello' }] },
        ],
      }),
    ).toEqual({
      name: 'llm',
      provider: 'openai',
      api: 'chat.completions',
      model: 'gpt-4o-mini',
      max_tokens: 512,
      stream: true,
      // A streamed chat completion reports usage only when asked (stream_options.include_usage).
      stream_usage: false,
      tools: ['search'],
      hosted_tools: [],
      mcp_servers: [],
      message_count: 2,
      prompt_chars: 13,
    });
  });

  it('knows which answers report their usage (token budgets count it)', () => {
    const chat = (extra: object) =>
      view('llm', 'POST', '/v1/chat/completions', { model: 'm', messages: [], ...extra }) as {
        stream_usage?: boolean;
      };
    expect(chat({}).stream_usage).toBe(true);
    expect(chat({ stream: true }).stream_usage).toBe(false);
    expect(chat({ stream: true, stream_options: { include_usage: true } }).stream_usage).toBe(true);
    expect(chat({ stream: true, stream_options: { include_usage: 'yes' } })).toMatchObject({
      error: 'ERR_PROTOCOL_INVALID',
    });
    const anthropic = view('llm', 'POST', '/v1/messages', { model: 'm', messages: [], stream: true });
    expect(anthropic).toMatchObject({ stream: true, stream_usage: true });
  });

  it('reads an OpenAI responses request and an Anthropic message', () => {
    expect(
      view('llm', 'POST', '/v1/responses', {
        model: 'o4',
        input: 'abc',
        instructions: 'xy',
        max_output_tokens: 9,
      }),
    ).toMatchObject({
      api: 'responses',
      max_tokens: 9,
      message_count: 1,
      prompt_chars: 5,
    });
    expect(
      view('llm', 'POST', '/anthropic/v1/messages', {
        model: 'claude-x',
        max_tokens: 100,
        system: 'sys',
        tools: [{ name: 'calc' }],
        messages: [{ role: 'user', content: 'four' }],
      }),
    ).toMatchObject({
      provider: 'anthropic',
      api: 'messages',
      model: 'claude-x',
      tools: ['calc'],
      prompt_chars: 7,
    });
  });

  it('refuses a request without a model or with malformed messages', () => {
    expect(view('llm', 'POST', '/v1/chat/completions', { messages: [] })).toMatchObject({
      error: 'ERR_PROTOCOL_INVALID',
    });
    expect(view('llm', 'POST', '/v1/messages', { model: 'm', messages: 'hi' })).toMatchObject({
      error: 'ERR_PROTOCOL_INVALID',
    });
  });
});

describe('LLM APIs: fields servers read differently are refused', () => {
  it.each<[string, string, Record<string, unknown>, string]>([
    [
      'two token limits that disagree',
      '/v1/chat/completions',
      { model: 'm', max_tokens: 10, max_completion_tokens: 100_000, messages: [] },
      'ERR_PROTOCOL_AMBIGUOUS',
    ],
    [
      'three token limits, one different',
      '/v1/responses',
      { model: 'm', max_tokens: 10, max_completion_tokens: 10, max_output_tokens: 11, input: 'x' },
      'ERR_PROTOCOL_AMBIGUOUS',
    ],
    [
      'a token limit as a string',
      '/v1/messages',
      { model: 'm', max_tokens: '100000', messages: [] },
      'ERR_PROTOCOL_INVALID',
    ],
    [
      'stream as a string',
      '/v1/messages',
      { model: 'm', stream: 'true', messages: [] },
      'ERR_PROTOCOL_INVALID',
    ],
    [
      'a tool without a type (OpenAI)',
      '/v1/responses',
      { model: 'm', tools: [{ name: 'x' }] },
      'ERR_PROTOCOL_INVALID',
    ],
    [
      'tools not an array',
      '/v1/chat/completions',
      { model: 'm', tools: {}, messages: [] },
      'ERR_PROTOCOL_INVALID',
    ],
  ])('%s → %s', (_name, path, body, code) => {
    expect(view('llm', 'POST', path, body)).toMatchObject({ error: code });
  });

  it('accepts the same token limit written twice', () => {
    expect(
      view('llm', 'POST', '/v1/chat/completions', {
        model: 'm',
        max_tokens: 64,
        max_completion_tokens: 64,
        messages: [],
      }),
    ).toMatchObject({ max_tokens: 64 });
  });

  it('refuses duplicate and case-variant model keys before the view is built', () => {
    for (const text of [
      '{"model":"gpt-4o-mini","model":"gpt-5-max","messages":[]}',
      '{"model":"gpt-4o-mini","Model":"gpt-5-max","messages":[]}',
    ]) {
      const req = checkRequest({
        method: 'POST',
        path: '/v1/chat/completions',
        headers: { 'content-type': 'application/json' },
        body: text,
        contextExtensions: { route_id: 'x/0', target: 'x', protocol: 'llm' },
      });
      const r = buildInput(
        req,
        { identity, identityError: null },
        { requireCompleteBody: true, protocol: protocolHook },
      );
      expect(r).toMatchObject({ ok: false, code: 'ERR_BODY_UNPARSABLE' });
    }
  });
});

describe('LLM APIs: hosted tools are visible to a tool allow-list', () => {
  it('lists OpenAI Responses hosted tools by type and remote MCP servers', () => {
    expect(
      view('llm', 'POST', '/v1/responses', {
        model: 'o4',
        input: 'hi',
        tools: [
          { type: 'function', name: 'lookup' },
          { type: 'web_search_preview' },
          { type: 'file_search', vector_store_ids: ['vs_1'] },
          { type: 'code_interpreter', container: { type: 'auto' } },
          { type: 'computer_use_preview', display_width: 1024 },
          { type: 'mcp', server_label: 'deepwiki', server_url: 'https://mcp.deepwiki.com/mcp' },
        ],
      }),
    ).toMatchObject({
      tools: ['lookup'],
      hosted_tools: ['web_search_preview', 'file_search', 'code_interpreter', 'computer_use_preview', 'mcp'],
      mcp_servers: [{ label: 'deepwiki', url: 'https://mcp.deepwiki.com/mcp' }],
    });
  });

  it('lists chat completions web search and custom tools', () => {
    expect(
      view('llm', 'POST', '/v1/chat/completions', {
        model: 'gpt-4o-search-preview',
        web_search_options: {},
        tools: [{ type: 'custom', custom: { name: 'grammar' } }],
        messages: [{ role: 'user', content: 'x' }],
      }),
    ).toMatchObject({ tools: ['grammar'], hosted_tools: ['web_search'] });
  });

  it('lists Anthropic server tools and the MCP connector', () => {
    expect(
      view('llm', 'POST', '/v1/messages', {
        model: 'claude-x',
        max_tokens: 100,
        tools: [
          { name: 'calc', input_schema: { type: 'object' } },
          { type: 'web_search_20250305', name: 'web_search', max_uses: 5 },
          { type: 'code_execution_20250522', name: 'code_execution' },
        ],
        mcp_servers: [{ type: 'url', url: 'https://example.com/sse', name: 'example' }],
        messages: [{ role: 'user', content: 'x' }],
      }),
    ).toMatchObject({
      tools: ['calc'],
      hosted_tools: ['web_search_20250305', 'code_execution_20250522', 'mcp'],
      mcp_servers: [{ label: 'example', url: 'https://example.com/sse' }],
    });
  });
});

describe('Kubernetes API (kube-apiserver request info)', () => {
  it.each([
    [
      'GET',
      '/api/v1/namespaces/dev/pods',
      {
        verb: 'list',
        api_group: '',
        api_version: 'v1',
        namespace: 'dev',
        resource: 'pods',
        object_name: null,
      },
    ],
    ['GET', '/api/v1/namespaces/dev/pods/web-1', { verb: 'get', resource: 'pods', object_name: 'web-1' }],
    ['GET', '/api/v1/namespaces/dev/pods?watch=true', { verb: 'watch', resource: 'pods' }],
    ['GET', '/api/v1/watch/namespaces/dev/pods', { verb: 'watch', namespace: 'dev', resource: 'pods' }],
    [
      'GET',
      '/api/v1/namespaces/dev/pods?fieldSelector=metadata.name%3Dweb-1',
      { verb: 'list', object_name: 'web-1' },
    ],
    ['GET', '/api/v1/namespaces/dev/pods/web-1/log', { verb: 'get', subresource: 'log' }],
    ['GET', '/api/v1/namespaces/dev/pods/web-1/exec?command=sh', { verb: 'create', subresource: 'exec' }],
    ['POST', '/api/v1/namespaces/dev/pods/web-1/attach', { verb: 'create', subresource: 'attach' }],
    ['GET', '/api/v1/namespaces/dev/pods/web-1/portforward', { verb: 'create', subresource: 'portforward' }],
    ['DELETE', '/api/v1/namespaces/dev/pods', { verb: 'deletecollection' }],
    ['DELETE', '/api/v1/namespaces/dev/pods/web-1', { verb: 'delete', object_name: 'web-1' }],
    [
      'PATCH',
      '/apis/apps/v1/namespaces/prod/deployments/api/scale',
      { verb: 'patch', api_group: 'apps', subresource: 'scale' },
    ],
    [
      'PUT',
      '/apis/apps/v1/namespaces/prod/deployments/api/status',
      { verb: 'update', subresource: 'status' },
    ],
    [
      'POST',
      '/apis/rbac.authorization.k8s.io/v1/clusterroles',
      { verb: 'create', namespace: null, resource: 'clusterroles' },
    ],
    ['GET', '/api/v1/nodes', { verb: 'list', namespace: null, resource: 'nodes' }],
    [
      'GET',
      '/api/v1/namespaces/dev',
      { verb: 'get', resource: 'namespaces', object_name: 'dev', namespace: 'dev' },
    ],
    ['GET', '/api/v1/namespaces', { verb: 'list', resource: 'namespaces' }],
    ['GET', '/healthz', { is_resource_request: false, verb: 'get' }],
    ['GET', '/apis/apps/v1', { is_resource_request: false }],
  ])('%s %s', (method, path, expected) => {
    expect(view('kubernetes', method, path)).toMatchObject({ name: 'kubernetes', ...expected });
  });
});

describe('LLM APIs behind a prefix rewrite', () => {
  it('judges the path the upstream will see (/openai/ → /v1/)', () => {
    const req = checkRequest({
      method: 'POST',
      path: '/openai/chat/completions',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [], stream: true }),
      contextExtensions: {
        route_id: 'llm/0',
        target: 'llm',
        protocol: 'llm',
        path_prefix: '/openai/',
        prefix_rewrite: '/v1/',
      },
    });
    const r = buildInput(
      req,
      { identity, identityError: null },
      { requireCompleteBody: true, protocol: protocolHook },
    );
    expect(r.ok && r.input.protocol).toMatchObject({
      api: 'chat.completions',
      provider: 'openai',
      model: 'gpt-4o-mini',
      stream: true,
      stream_usage: false,
    });
  });
});
