// LLM API and Kubernetes API traffic through the gateway with real Envoy: plain fetch and curl against
// local fake upstreams, judged on input.protocol by the example policies (model allow-list and token
// budget; Kubernetes read-only except the sandbox namespace, never exec).
import { execFile } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
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

import data.chaperone.examples.kubernetes
import data.chaperone.examples.llm

decision := llm.decision if input.route.target == "openai"

else := kubernetes.decision if input.route.target == "cluster"

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

beforeAll(async () => {
  const llmPort = await fakeUpstream('llm');
  const kubePort = await fakeUpstream('kube');
  const ports = await gatewayPorts();
  policyDir = join(PROJECT_ROOT, '.chaperone', `test-protocol-policies-${ports.api}`);
  await mkdir(join(policyDir, 'examples'), { recursive: true });
  for (const p of ['llm', 'kubernetes']) {
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
