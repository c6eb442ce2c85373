// GraphQL requests through the production input builder: graphql-js reads the document, the view lists
// every selected field as a full path, request parameters follow GraphQL over HTTP, ambiguity is
// refused, and hostile documents are bounded before any other work.
import { describe, expect, it } from 'vitest';
import { buildInput } from '../../authz-server/input/build-input.ts';
import { graphqlView } from '../../authz-server/protocols/graphql.ts';
import { protocolHook } from '../../authz-server/protocols/index.ts';
import { GRAPHQL_LIMITS } from '../../authz-server/protocols/limits.ts';
import { checkRequest } from '../support/authz-client.ts';
import { verifiedIdentity } from '../support/identity.ts';
import { withinBound } from '../support/time-bound.ts';

const identity = verifiedIdentity();

function request(method: string, path: string, body?: string, contentType = 'application/json') {
  const req = checkRequest({
    method,
    path,
    headers: body !== undefined ? { 'content-type': contentType } : {},
    ...(body !== undefined ? { body } : {}),
    contextExtensions: { route_id: 'gql/0', target: 'gql', protocol: 'graphql' },
  });
  const r = buildInput(
    req,
    { identity, identityError: null },
    { requireCompleteBody: true, protocol: protocolHook },
  );
  if (!r.ok) return { error: r.code, reason: r.reason };
  return r.input.protocol as Record<string, unknown>;
}

const post = (body: Record<string, unknown>) => request('POST', '/graphql', JSON.stringify(body));
const get = (params: Record<string, string>) => request('GET', `/graphql?${new URLSearchParams(params)}`);

describe('GraphQL: the view', () => {
  it('lists every selected field as a full path, aliases resolved, fragments expanded', () => {
    expect(
      post({
        query: `query Keys {
          viewer { login r: repository(name: "x") { ...K } }
          other: node(id: 1) { ... on Repo { name } }
        }
        fragment K on Repository { deployKeys { id } name }`,
      }),
    ).toEqual({
      name: 'graphql',
      operation_type: 'query',
      operation_name: 'Keys',
      fields: [
        'node',
        'node.name',
        'viewer',
        'viewer.login',
        'viewer.repository',
        'viewer.repository.deployKeys',
        'viewer.repository.deployKeys.id',
        'viewer.repository.name',
      ],
      root_fields: ['node', 'viewer'],
      field_names: ['deployKeys', 'id', 'login', 'name', 'node', 'repository', 'viewer'],
      operations: [{ operation_type: 'query', operation_name: 'Keys' }],
      depth: 4,
      aliases: 2,
    });
  });

  it.each<[string, string | undefined, Record<string, unknown>]>([
    [
      'mutation Del($id: ID!) { deleteRepo(id: $id) { ok } }',
      undefined,
      { operation_type: 'mutation', operation_name: 'Del' },
    ],
    ['query A { a } mutation B { wipe }', 'B', { operation_type: 'mutation', root_fields: ['wipe'] }],
    // The comment swallows the brace: a hand-written lexer that missed it saw another document.
    [
      'query Q { ...F me: viewer { id } } fragment F on Query { secrets # comment {\n }',
      undefined,
      { root_fields: ['secrets', 'viewer'] },
    ],
    [
      'query Q { search(q: "} mutation {") { id } }',
      undefined,
      { operation_type: 'query', root_fields: ['search'] },
    ],
    // A block string may hold `"` and `"""` escaped; the mutation inside is text.
    [
      '{ search(q: """ \\""" } mutation { wipe } """) { id } }',
      undefined,
      { operation_type: 'query', fields: ['search', 'search.id'] },
    ],
    ['subscription S { events @include(if: true) { id } }', undefined, { operation_type: 'subscription' }],
    ['{ a @skip(if: true) b }', undefined, { fields: ['a', 'b'] }],
    ['{ __typename __schema { types { name } } }', undefined, { root_fields: ['__schema', '__typename'] }],
  ])('%s', (query, operationName, expected) => {
    expect(post({ query, ...(operationName ? { operationName } : {}) })).toMatchObject(expected);
  });

  it('reads GET parameters from the URL, variables as strict JSON', () => {
    expect(get({ query: '{ me { id } }' })).toMatchObject({ fields: ['me', 'me.id'] });
    expect(
      get({ query: 'query A { a } query B { b }', operationName: 'B', variables: '{"x":1}' }),
    ).toMatchObject({
      operation_name: 'B',
    });
    expect(get({ query: '{ a }', variables: '{"x":1,"x":2}' })).toMatchObject({
      error: 'ERR_PROTOCOL_INVALID',
    });
  });
});

describe('GraphQL: ambiguity is refused', () => {
  it.each<[string, () => unknown, string]>([
    [
      'several operations, no operationName',
      () => post({ query: 'query A { a } query B { b }' }),
      'ERR_PROTOCOL_AMBIGUOUS',
    ],
    [
      'two operations of one name',
      () => post({ query: 'query A { a } mutation A { b }', operationName: 'A' }),
      'ERR_PROTOCOL_AMBIGUOUS',
    ],
    [
      'query in the URL of a POST',
      () => request('POST', '/graphql?query=mutation%7Bwipe%7D', JSON.stringify({ query: '{ a }' })),
      'ERR_PROTOCOL_AMBIGUOUS',
    ],
    [
      'operationName in the URL of a POST',
      () =>
        request(
          'POST',
          '/graphql?operationName=B',
          JSON.stringify({ query: 'query A { a } mutation B { b }', operationName: 'A' }),
        ),
      'ERR_PROTOCOL_AMBIGUOUS',
    ],
    [
      'a repeated URL query',
      () => request('GET', '/graphql?query=%7Ba%7D&query=%7Bb%7D'),
      'ERR_PROTOCOL_AMBIGUOUS',
    ],
    [
      'a case-variant URL key',
      () => request('GET', '/graphql?query=%7Ba%7D&Query=%7Bb%7D'),
      'ERR_PROTOCOL_AMBIGUOUS',
    ],
    ['a lone case-variant URL key', () => request('GET', '/graphql?QUERY=%7Bb%7D'), 'ERR_PROTOCOL_AMBIGUOUS'],
    ['a lone case-variant body key', () => post({ Query: 'mutation { wipe }' }), 'ERR_PROTOCOL_AMBIGUOUS'],
    [
      'an operationName variant in the body',
      () => post({ query: 'query A { a } mutation B { b }', OperationName: 'B' }),
      'ERR_PROTOCOL_AMBIGUOUS',
    ],
    [
      'a duplicate body key',
      () => request('POST', '/graphql', '{"query":"{ a }","query":"mutation { wipe }"}'),
      'ERR_BODY_UNPARSABLE',
    ],
    [
      'case-variant body keys',
      () => request('POST', '/graphql', '{"query":"{ a }","Query":"mutation { wipe }"}'),
      'ERR_BODY_UNPARSABLE',
    ],
    [
      'a GET with a body',
      () => request('GET', '/graphql?query=%7Ba%7D', '{"query":"mutation { wipe }"}'),
      'ERR_PROTOCOL_AMBIGUOUS',
    ],
  ])('%s → %s', (_name, run, code) => {
    expect(run()).toMatchObject({ error: code });
  });
});

describe('GraphQL: invalid requests are refused', () => {
  it.each<[string, () => unknown, string]>([
    ['a syntax error', () => post({ query: '{ a ' }), 'ERR_PROTOCOL_INVALID'],
    ['an unknown fragment', () => post({ query: 'query { ...Missing }' }), 'ERR_PROTOCOL_INVALID'],
    ['a fragment cycle', () => post({ query: 'fragment F on Q { ...F } { ...F }' }), 'ERR_PROTOCOL_INVALID'],
    [
      'an unused fragment',
      () => post({ query: '{ a } fragment F on Q { secrets }' }),
      'ERR_PROTOCOL_INVALID',
    ],
    ['a type definition', () => post({ query: 'type Q { a: Int } { a }' }), 'ERR_PROTOCOL_INVALID'],
    ['an empty query', () => post({ query: '' }), 'ERR_PROTOCOL_INVALID'],
    [
      'an unknown operationName',
      () => post({ query: 'query A { a }', operationName: 'B' }),
      'ERR_PROTOCOL_INVALID',
    ],
    ['a batch', () => request('POST', '/graphql', '[{"query":"{ a }"}]'), 'ERR_PROTOCOL_INVALID'],
    ['a mutation over GET', () => get({ query: 'mutation { wipe }' }), 'ERR_PROTOCOL_INVALID'],
    ['variables not an object', () => post({ query: '{ a }', variables: [1] }), 'ERR_PROTOCOL_INVALID'],
    [
      'application/graphql',
      () => request('POST', '/graphql', 'mutation { wipe }', 'application/graphql'),
      'ERR_BODY_CONTENT_TYPE',
    ],
    [
      'text/plain JSON',
      () => request('POST', '/graphql', '{"query":"{ a }"}', 'text/plain'),
      'ERR_BODY_CONTENT_TYPE',
    ],
    ['a PUT', () => request('PUT', '/graphql', '{"query":"{ a }"}'), 'ERR_PROTOCOL_INVALID'],
  ])('%s → %s', (_name, run, code) => {
    expect(run()).toMatchObject({ error: code });
  });
});

describe('GraphQL: bounds come first', () => {
  const bomb = (levels: number) => {
    let doc = '{...F0}';
    for (let i = 0; i < levels; i++) doc += `fragment F${i} on Q{...F${i + 1} ...F${i + 1}}`;
    return `${doc}fragment F${levels} on Q{a}`;
  };

  it('refuses a fragment bomb under 1 KB in well under a millisecond per level', () => {
    const query = bomb(30); // 2^30 fields once expanded
    expect(query.length).toBeLessThan(1024);
    // Unbounded, the expansion takes seconds; a loaded machine may stall one run (time-bound.ts).
    expect(withinBound(() => post({ query }), 50, 'the fragment bomb')).toMatchObject({
      error: 'ERR_PROTOCOL_LIMIT',
    });
  });

  it.each<[string, string, RegExp]>([
    [
      'depth',
      `{ ${'a { '.repeat(GRAPHQL_LIMITS.maxDepth)} b ${'} '.repeat(GRAPHQL_LIMITS.maxDepth)}}`,
      /deeper than/,
    ],
    [
      'aliases',
      `{ ${Array.from({ length: GRAPHQL_LIMITS.maxAliases + 1 }, (_, i) => `a${i}: a`).join(' ')} }`,
      /aliases/,
    ],
    ['tokens', `{ ${'a '.repeat(GRAPHQL_LIMITS.maxTokens)}}`, /tokens/],
    ['size', `{ a } ${'#'.repeat(GRAPHQL_LIMITS.maxQueryBytes)}`, /bytes/],
    [
      'operations',
      Array.from({ length: GRAPHQL_LIMITS.maxOperations + 1 }, (_, i) => `query Q${i} { a }`).join(' '),
      /operations/,
    ],
  ])('refuses too many %s', (_name, query, reason) => {
    const r = graphqlView(query, 'Q0');
    expect(r).toMatchObject({ ok: false, code: 'ERR_PROTOCOL_LIMIT' });
    if (!r.ok) expect(r.reason).toMatch(reason);
  });

  it('accepts documents at the bounds', () => {
    const deep = `{ ${'a { '.repeat(GRAPHQL_LIMITS.maxDepth - 1)} b ${'} '.repeat(GRAPHQL_LIMITS.maxDepth - 1)}}`;
    expect(graphqlView(deep, null)).toMatchObject({ ok: true, value: { depth: GRAPHQL_LIMITS.maxDepth } });
    const aliased = `{ ${Array.from({ length: GRAPHQL_LIMITS.maxAliases }, (_, i) => `a${i}: a`).join(' ')} }`;
    expect(graphqlView(aliased, null)).toMatchObject({
      ok: true,
      value: { aliases: GRAPHQL_LIMITS.maxAliases },
    });
  });

  it('counts a bomb hidden in an operation that does not run', () => {
    const query = bomb(20).replace('{...F0}', 'query Bomb { ...F0 } query Ok { a }');
    expect(post({ query, operationName: 'Ok' })).toMatchObject({ error: 'ERR_PROTOCOL_LIMIT' });
  });
});
