// LLM API, Kubernetes API and GraphQL traffic through the gateway with real Envoy, judged on
// input.protocol by the example policies (model allow-list and token budget; Kubernetes read-only except
// the sandbox namespace, never exec; GraphQL queries only, never deployKeys). The GraphQL upstream is a
// real graphql-js server, as lenient as common servers are (URL parameters win over the body, keys
// matched without case, bodies parsed whatever their content type): for every disguise the policy's
// verdict holds — the server executes nothing the policy denied — and a fragment bomb is refused in
// milliseconds while other requests keep flowing.
import { execFile } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { buildSchema, execute, type GraphQLFieldResolver, parse, validate } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../lib/tools.ts';
import {
  devGatewayYaml,
  type GatewayProcess,
  gatewayPorts,
  startGatewayProcess,
} from '../support/gateway-process.ts';
import { freePort } from '../support/ports.ts';

// The gateway's entrypoint dispatches on the route's target to the example policies.
const DISPATCH = `package chaperone.protocols

import data.chaperone.examples.graphql
import data.chaperone.examples.kubernetes
import data.chaperone.examples.llm

decision := llm.decision if input.route.target == "openai"

else := kubernetes.decision if input.route.target == "cluster"

else := graphql.decision if input.route.target == "gql"

else := {"allowed": false, "http_status": 403, "reason": "no policy"}
`;

let gw: GatewayProcess;
let policyDir: string;
const upstreams: Server[] = [];
const reached: string[] = [];

async function fakeUpstream(name: string): Promise<number> {
  const port = await freePort();
  const server = createServer((req, res) => {
    reached.push(`${name} ${req.method} ${req.url}`);
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ upstream: name }));
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  upstreams.push(server);
  return port;
}

const gqlSchema = buildSchema(`
  type Query { viewer: User, public: String }
  type Mutation { deleteRepo(id: ID): Boolean }
  type User { login: String, repository(name: String): Repo }
  type Repo { name: String, deployKeys: [Key] }
  type Key { id: ID }
`);
/** Every field the GraphQL upstream resolved, as `<operation>:<path of field names>`. */
const executed: string[] = [];

/** A value by key, exact first, then without case: what a case-insensitive decoder reads. */
function lenient(o: Record<string, unknown>, key: string): unknown {
  if (key in o) return o[key];
  const k = Object.keys(o).find((x) => x.toLowerCase() === key.toLowerCase());
  return k === undefined ? undefined : o[k];
}

async function graphqlUpstream(): Promise<number> {
  const port = await freePort();
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://x');
    const fromUrl = Object.fromEntries(url.searchParams);
    let body: Record<string, unknown> = {};
    if (/graphql$/.test(req.headers['content-type'] ?? '')) body = { query: text };
    else if (text) {
      try {
        body = JSON.parse(text); // whatever the content type; the last duplicate wins
      } catch {}
    }
    // URL parameters win over the body (as express-graphql does).
    const query = (lenient(fromUrl, 'query') ?? lenient(body, 'query')) as string;
    const operationName = (lenient(fromUrl, 'operationName') ?? lenient(body, 'operationName') ?? null) as
      | string
      | null;
    const send = (status: number, v: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(v));
    };
    try {
      const document = parse(query);
      const errors = validate(gqlSchema, document);
      if (errors.length > 0) return send(400, { errors });
      const fieldResolver: GraphQLFieldResolver<{ path?: string } | undefined, unknown> = (
        src,
        _args,
        _ctx,
        info,
      ) => {
        const path = src?.path ? `${src.path}.${info.fieldName}` : info.fieldName;
        executed.push(`${info.operation.operation}:${path}`);
        if (info.fieldName === 'deployKeys') return [{ path, id: 'ssh-rsa SECRET' }];
        if (info.fieldName === 'id') return 'ssh-rsa SECRET';
        return ['login', 'name', 'public'].includes(info.fieldName)
          ? 'x'
          : info.fieldName === 'deleteRepo' || { path };
      };
      send(200, await execute({ schema: gqlSchema, document, operationName, fieldResolver, rootValue: {} }));
    } catch (err) {
      send(400, { errors: [String(err)] });
    }
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  upstreams.push(server);
  return port;
}

beforeAll(async () => {
  const gqlPort = await graphqlUpstream();
  const llmPort = await fakeUpstream('llm');
  const kubePort = await fakeUpstream('kube');
  const ports = await gatewayPorts();
  policyDir = join(PROJECT_ROOT, '.chaperone', `test-protocol-policies-${ports.api}`);
  await mkdir(join(policyDir, 'examples'), { recursive: true });
  for (const p of ['llm', 'kubernetes', 'graphql']) {
    const { cp } = await import('node:fs/promises');
    await cp(join(PROJECT_ROOT, 'policies', 'examples', p), join(policyDir, 'examples', p), {
      recursive: true,
    });
  }
  await writeFile(join(policyDir, 'dispatch.rego'), DISPATCH);
  const extra = `  - name: openai
    upstream: http://127.0.0.1:${llmPort}
    protocol: llm
    match:
      path_prefix: /openai/
    prefix_rewrite: /
  - name: cluster
    upstream: http://127.0.0.1:${kubePort}
    protocol: kubernetes
    match:
      path_prefix: /k8s/
    prefix_rewrite: /
  - name: gql
    upstream: http://127.0.0.1:${gqlPort}
    protocol: graphql
    match:
      path_prefix: /graphql
`;
  gw = await startGatewayProcess({
    ports,
    yaml: (p) =>
      devGatewayYaml(p, extra)
        .replace(join(PROJECT_ROOT, 'policies'), policyDir)
        .replace('entrypoint: chaperone/authz/decision', 'entrypoint: chaperone/protocols/decision'),
  });
}, 120_000);

afterAll(async () => {
  await gw?.cleanup();
  for (const s of upstreams) s.close();
  if (policyDir) await rm(policyDir, { recursive: true, force: true });
});

const chat = (model: string, maxTokens: number) =>
  fetch(`${gw.egress}/openai/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, max_tokens: maxTokens, messages: [{ role: 'user', content: 'hi' }] }),
  });

function curl(method: string, path: string): Promise<number> {
  return new Promise((resolve, reject) =>
    execFile(
      'curl',
      ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-X', method, `${gw.egress}${path}`],
      (err, stdout) => (err ? reject(err) : resolve(Number(stdout))),
    ),
  );
}

describe('protocol-aware policies through Envoy', () => {
  it('LLM API: allowed model within budget passes; other models and big budgets are refused', async () => {
    expect((await chat('gpt-4o-mini', 256)).status).toBe(200);
    const wrongModel = await chat('gpt-5-max', 256);
    expect(wrongModel.status).toBe(403);
    expect((await chat('gpt-4o-mini', 100_000)).status).toBe(403);
    const unparsable = await fetch(`${gw.egress}/openai/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [] }),
    });
    expect(unparsable.status).toBe(400);
    expect(reached.filter((r) => r.startsWith('llm'))).toEqual(['llm POST /v1/chat/completions']);
  });

  it('Kubernetes API (curl): reads anywhere, writes only in sandbox, exec never', async () => {
    expect(await curl('GET', '/k8s/api/v1/namespaces/prod/pods')).toBe(200);
    expect(await curl('DELETE', '/k8s/api/v1/namespaces/sandbox/pods/web-1')).toBe(200);
    expect(await curl('DELETE', '/k8s/api/v1/namespaces/prod/pods/web-1')).toBe(403);
    expect(await curl('GET', '/k8s/api/v1/namespaces/sandbox/pods/web-1/exec?command=sh')).toBe(403);
    expect(reached.filter((r) => r.startsWith('kube'))).toEqual([
      'kube GET /api/v1/namespaces/prod/pods',
      'kube DELETE /api/v1/namespaces/sandbox/pods/web-1',
    ]);
  });
});

const gql = (init: { path?: string; method?: string; body?: string; contentType?: string }) =>
  fetch(`${gw.egress}${init.path ?? '/graphql'}`, {
    method: init.method ?? 'POST',
    headers: init.body !== undefined ? { 'content-type': init.contentType ?? 'application/json' } : {},
    ...(init.body !== undefined ? { body: init.body } : {}),
  });
const q = (query: string, operationName?: string) =>
  JSON.stringify({ query, ...(operationName ? { operationName } : {}) });
const forbidden = () => executed.filter((e) => e.startsWith('mutation:') || e.includes('deployKeys'));

describe('GraphQL through Envoy to a graphql-js server', () => {
  it('runs an allowed query', async () => {
    const res = await gql({ body: q('{ viewer { login } public }') });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ data: { viewer: { login: 'x' }, public: 'x' } });
  });

  it.each<[string, Parameters<typeof gql>[0], number]>([
    [
      'a mutation behind a comment',
      { body: q('query Q { public } # }\nmutation M { deleteRepo(id: 1) }', 'M') },
      403,
    ],
    ['a mutation under an alias', { body: q('mutation { ok: deleteRepo(id: 1) }') }, 403],
    [
      'deployKeys under an alias',
      { body: q('{ viewer { repository(name: "r") { keys: deployKeys { id } } } }') },
      403,
    ],
    [
      'deployKeys behind a block string',
      { body: q('{ viewer { repository(name: """ \\""" } """) { deployKeys { id } } } }') },
      403,
    ],
    [
      'deployKeys through nested fragments',
      {
        body: q(
          '{ viewer { ...U } } fragment U on User { repository(name: "r") { ...R } } fragment R on Repo { deployKeys { id } }',
        ),
      },
      403,
    ],
    [
      'deployKeys through an inline fragment',
      { body: q('{ viewer { repository(name: "r") { ... on Repo { deployKeys { id } } } } }') },
      403,
    ],
    [
      'a mutation in the URL of a POST',
      { path: '/graphql?query=mutation%7BdeleteRepo(id%3A1)%7D', body: q('{ public }') },
      400,
    ],
    [
      'an operationName in the URL of a POST',
      {
        path: '/graphql?operationName=M',
        body: q('query Q { public } mutation M { deleteRepo(id: 1) }', 'Q'),
      },
      400,
    ],
    [
      'a case-variant body key',
      { body: '{"query":"{ public }","Query":"mutation { deleteRepo(id: 1) }"}' },
      400,
    ],
    ['a lone case-variant body key', { body: '{"QUERY":"mutation { deleteRepo(id: 1) }"}' }, 400],
    [
      'a duplicate body key',
      { body: '{"query":"{ public }","query":"mutation { deleteRepo(id: 1) }"}' },
      400,
    ],
    [
      'a case-variant URL key',
      { method: 'GET', path: '/graphql?query=%7Bpublic%7D&QUERY=mutation%7BdeleteRepo(id%3A1)%7D' },
      400,
    ],
    [
      'a JSON body sent as text/plain',
      { body: q('mutation { deleteRepo(id: 1) }'), contentType: 'text/plain' },
      400,
    ],
    [
      'a query sent as application/graphql',
      { body: 'mutation { deleteRepo(id: 1) }', contentType: 'application/graphql' },
      400,
    ],
  ])('refuses %s, and the server executes nothing denied', async (_name, init, status) => {
    const res = await gql(init);
    expect(res.status).toBe(status);
    expect(await res.text()).not.toContain('SECRET');
    expect(forbidden()).toEqual([]);
  });

  it('refuses a 1 KB fragment bomb in milliseconds while other requests keep flowing', async () => {
    // 25 levels of a fragment spreading the next one twice: 2^25 fields once expanded.
    const names = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
    let bomb = 'query{...A}';
    for (let i = 0; i < 25; i++)
      bomb += `fragment ${names[i]} on Query{...${names[i + 1]} ...${names[i + 1]}}`;
    bomb += 'fragment Z on Query{public}';
    expect(bomb.length).toBeLessThan(1024);
    const body = q(bomb);
    const timed = async (b: string) => {
      const t0 = performance.now();
      const res = await gql({ body: b });
      return { status: res.status, text: await res.text(), ms: performance.now() - t0 };
    };
    await timed(q('{ public }')); // a warm connection: time the decision, not the handshake
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => timed(i % 2 === 0 ? body : q('{ viewer { login } }'))),
    );
    const bombs = results.filter((_, i) => i % 2 === 0);
    const others = results.filter((_, i) => i % 2 === 1);
    for (const r of bombs) {
      expect(r.status).toBe(400);
      expect(r.text).toContain('ERR_PROTOCOL_LIMIT');
    }
    for (const r of others) expect(r.status).toBe(200);
    // 40 requests at once on a shared 2-core machine: each still answers well inside Envoy's 200 ms
    // ext_authz timeout (a bomb that blocked the event loop would time every request out).
    expect(Math.max(...results.map((r) => r.ms))).toBeLessThan(1000);
    const single = await timed(body);
    expect(single.status).toBe(400);
    expect(single.ms).toBeLessThan(200);
    expect(forbidden()).toEqual([]);
  });
});
