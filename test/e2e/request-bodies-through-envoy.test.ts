// Request bodies of real size through real Envoy, as `chaperone up` configures it: each target's body
// is buffered whole up to its own limit (1 MiB on LLM routes by default, above Envoy's 1 MiB connection
// buffer when a target sets it) and the policy reads all of it;
// a body over the limit is refused by Envoy with 413 and a JSON reason before any check; an upload
// target with `body: headers_only` streams a body far larger than any Envoy buffer to the upstream,
// checked on its headers alone (the policy is told a body follows unread).
import { createHash } from 'node:crypto';
import { cp, mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
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

// The example LLM policy on the `openai` target; uploads allowed on `uploads`, small bodies on `notes`.
// Every allow tells the upstream (x-policy-saw) what the policy saw of the body.
const DISPATCH = `package chaperone.bodies

import data.chaperone.examples.llm

raw_body := object.get(input.attributes.request.http, "rawBody", "")

# (base64.decode("") is undefined in OPA's WebAssembly build, "" in opa eval.)
body_bytes := count(base64.decode(raw_body)) if raw_body != ""

else := 0

seen := sprintf("truncated_body=%v body_bytes=%d", [input.truncated_body, body_bytes])

allow(reason) := {"allowed": true, "reason": reason, "headers": {"x-policy-saw": seen}}

decision := allow(llm.decision.reason) if {
	input.route.target == "openai"
	llm.decision.allowed
} else := llm.decision if {
	input.route.target == "openai"
} else := allow("upload") if {
	input.route.target == "uploads"
	input.attributes.request.http.method == "PUT"
} else := allow("note") if {
	input.route.target in {"notes", "bulk"}
} else := {"allowed": false, "http_status": 403, "reason": "no policy"}
`;

interface Received {
  target: string;
  path: string;
  bytes: number;
  sha256: string;
  headers: IncomingHttpHeaders;
}

let gw: GatewayProcess;
let policyDir: string;
const upstreams: Server[] = [];
const received: Received[] = [];

/** An upstream that reads the whole body and records its size and hash. */
async function recordingUpstream(target: string): Promise<number> {
  const port = await freePort();
  const server = createServer((req, res) => {
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (c: Buffer) => {
      bytes += c.length;
      hash.update(c);
    });
    req.on('end', () => {
      received.push({ target, path: req.url ?? '', bytes, sha256: hash.digest('hex'), headers: req.headers });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: true, bytes }));
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  upstreams.push(server);
  return port;
}

beforeAll(async () => {
  const [llmPort, uploadPort, notesPort, bulkPort] = [
    await recordingUpstream('openai'),
    await recordingUpstream('uploads'),
    await recordingUpstream('notes'),
    await recordingUpstream('bulk'),
  ];
  const ports = await gatewayPorts();
  policyDir = join(PROJECT_ROOT, '.chaperone', `test-body-policies-${ports.api}`);
  await mkdir(join(policyDir, 'examples'), { recursive: true });
  await cp(join(PROJECT_ROOT, 'policies', 'examples', 'llm'), join(policyDir, 'examples', 'llm'), {
    recursive: true,
  });
  await writeFile(join(policyDir, 'dispatch.rego'), DISPATCH);
  const extra = `  - name: openai
    upstream: http://127.0.0.1:${llmPort}
    protocol: llm
    match:
      path_prefix: /openai/
    prefix_rewrite: /
  - name: uploads
    upstream: http://127.0.0.1:${uploadPort}
    body: headers_only
    match:
      path_prefix: /uploads/
  - name: notes
    upstream: http://127.0.0.1:${notesPort}
    max_request_bytes: 4096
    match:
      path_prefix: /notes/
  - name: bulk
    upstream: http://127.0.0.1:${bulkPort}
    max_request_bytes: 4194304
    match:
      path_prefix: /bulk/
`;
  gw = await startGatewayProcess({
    ports,
    yaml: (p) =>
      devGatewayYaml(p, extra)
        .replace(join(PROJECT_ROOT, 'policies'), policyDir)
        .replace('entrypoint: chaperone/authz/decision', 'entrypoint: chaperone/bodies/decision'),
  });
}, 120_000);

afterAll(async () => {
  await gw?.cleanup();
  for (const s of upstreams) s.close();
  if (policyDir) await rm(policyDir, { recursive: true, force: true });
});

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** An OpenAI-style chat completion request of about `bytes` bytes (a long conversation). */
function chatBody(bytes: number): string {
  const turn = 'Here is the next part of the log file I need summarised: '.padEnd(1000, 'x');
  const messages: { role: string; content: string }[] = [{ role: 'system', content: 'You summarise logs.' }];
  while (JSON.stringify(messages).length < bytes) {
    messages.push({ role: messages.length % 2 ? 'user' : 'assistant', content: turn });
  }
  return JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 512, messages });
}

const post = (path: string, body: string | Buffer, init: { method?: string; type?: string } = {}) =>
  fetch(`${gw.egress}${path}`, {
    method: init.method ?? 'POST',
    headers: { 'content-type': init.type ?? 'application/json' },
    body,
  });

describe('request bodies through Envoy', () => {
  it('a 200 KB OpenAI-style chat body on an llm route is read whole by the policy and allowed', async () => {
    const body = chatBody(200_000);
    expect(body.length).toBeGreaterThan(200_000);
    const res = await post('/openai/v1/chat/completions', body);
    expect(res.status, await res.clone().text()).toBe(200);
    expect(res.headers.get('x-chaperone-decision-id')).toMatch(/^[0-9a-f-]{36}$/);
    const got = received.filter((r) => r.target === 'openai');
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ path: '/v1/chat/completions', bytes: body.length, sha256: sha256(body) });
    expect(got[0]!.headers['x-policy-saw']).toBe(`truncated_body=false body_bytes=${body.length}`);
  });

  it('the same route still judges what it reads: a model off the allow-list is refused', async () => {
    const res = await post(
      '/openai/v1/chat/completions',
      chatBody(200_000).replace('gpt-4o-mini', 'gpt-5-max'),
    );
    expect(res.status).toBe(403);
    expect(received.filter((r) => r.target === 'openai')).toHaveLength(1);
  });

  it.each([
    ['an llm route (default 1 MiB)', '/openai/v1/chat/completions', chatBody(1_200_000), 1048576],
    ['a route with its own 4 KiB limit', '/notes/add', JSON.stringify({ note: 'n'.repeat(5000) }), 4096],
  ])(
    'a body over the limit on %s is refused by Envoy with 413 before any check',
    async (_name, path, body, limit) => {
      const before = received.length;
      const res = await post(path, body);
      expect(res.status).toBe(413);
      expect(res.headers.get('content-type')).toBe('application/json');
      // No decision: Envoy answered before calling the authz server.
      expect(res.headers.get('x-chaperone-decision-id')).toBeNull();
      const reply = (await res.json()) as { error: string; reason: string; request_id: string };
      expect(reply).toEqual({
        error: 'ERR_BODY_TOO_LARGE',
        reason: `the request body is larger than this route accepts (max_request_bytes ${limit})`,
        request_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      });
      expect(received.length).toBe(before);
    },
  );

  it('a body at the limit passes whole', async () => {
    const note = JSON.stringify({ note: '' });
    const body = JSON.stringify({ note: 'n'.repeat(4096 - note.length) });
    expect(body.length).toBe(4096);
    const res = await post('/notes/add', body);
    expect(res.status).toBe(200);
    expect(received.at(-1)).toMatchObject({ target: 'notes', bytes: 4096 });
    expect(received.at(-1)!.headers['x-policy-saw']).toBe('truncated_body=false body_bytes=4096');
  });

  it('a route’s limit above the listener’s 1 MiB connection buffer holds: 3 MiB read whole', async () => {
    const body = JSON.stringify({ rows: 'r'.repeat(3 * 1024 * 1024) });
    const res = await post('/bulk/import', body);
    expect(res.status, await res.clone().text()).toBe(200);
    expect(received.at(-1)).toMatchObject({ target: 'bulk', bytes: body.length, sha256: sha256(body) });
    expect(received.at(-1)!.headers['x-policy-saw']).toBe(`truncated_body=false body_bytes=${body.length}`);
  });

  it('a headers_only upload route streams a 16 MiB body, never buffered, checked on its headers', async () => {
    // Far above the 1 MiB connection buffer and the 8 MiB ceiling of any buffered route: Envoy would
    // answer 413 had it tried to buffer it.
    const body = Buffer.alloc(16 * 1024 * 1024, 7);
    body.write('the start of a large upload', 0);
    const res = await post('/uploads/big.bin', body, { method: 'PUT', type: 'application/octet-stream' });
    expect(res.status, await res.clone().text()).toBe(200);
    const got = received.filter((r) => r.target === 'uploads');
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ path: '/uploads/big.bin', bytes: body.length, sha256: sha256(body) });
    // The policy saw no byte of it and was told a body follows.
    expect(got[0]!.headers['x-policy-saw']).toBe('truncated_body=true body_bytes=0');
  });

  it('the upload route is still judged: a POST is refused and nothing reaches the upstream', async () => {
    const res = await post('/uploads/big.bin', Buffer.alloc(2 * 1024 * 1024), {
      type: 'application/octet-stream',
    });
    expect(res.status).toBe(403);
    expect(received.filter((r) => r.target === 'uploads')).toHaveLength(1);
  });
});
