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
      tools: ['search'],
      message_count: 2,
      prompt_chars: 13,
    });
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

describe('GraphQL', () => {
  it.each([
    [
      '{ viewer { login } repository(owner: "a") { name } }',
      undefined,
      { operation_type: 'query', operation_name: null, fields: ['viewer', 'repository'] },
    ],
    [
      'mutation Del($id: ID!) { deleteRepo(id: $id) { ok } }',
      undefined,
      { operation_type: 'mutation', operation_name: 'Del', fields: ['deleteRepo'] },
    ],
    [
      'query A { a } mutation B { wipe }',
      'B',
      { operation_type: 'mutation', operation_name: 'B', fields: ['wipe'] },
    ],
    [
      'query Q { ...F me: viewer { id } } fragment F on Query { secrets # comment {\n }',
      undefined,
      { fields: ['secrets', 'viewer'] },
    ],
    [
      'query Q { search(q: "} mutation {") { id } }',
      undefined,
      { operation_type: 'query', fields: ['search'] },
    ],
    [
      'subscription S { events @include(if: true) { id } }',
      undefined,
      { operation_type: 'subscription', fields: ['events'] },
    ],
  ])('%s', (query, operationName, expected) => {
    expect(
      view('graphql', 'POST', '/graphql', { query, ...(operationName ? { operationName } : {}) }),
    ).toMatchObject({
      name: 'graphql',
      ...expected,
    });
  });

  it('refuses ambiguous, unparsable and hostile documents', () => {
    expect(view('graphql', 'POST', '/graphql', { query: 'query A { a } query B { b }' })).toMatchObject({
      error: 'ERR_PROTOCOL_AMBIGUOUS',
    });
    for (const query of ['{ a ', 'query { ...Missing }', 'fragment F on Q { ...F } { ...F }', '']) {
      expect(view('graphql', 'POST', '/graphql', { query })).toMatchObject({ error: 'ERR_PROTOCOL_INVALID' });
    }
    expect(view('graphql', 'GET', '/graphql?query=mutation%20%7B%20wipe%20%7D')).toMatchObject({
      error: 'ERR_PROTOCOL_INVALID',
    });
    expect(view('graphql', 'GET', '/graphql?query=%7B%20me%20%7D')).toMatchObject({ fields: ['me'] });
  });
});
