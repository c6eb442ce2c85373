// Decision logs pushed the OPA way, to a real HTTP receiver: gzip-compressed JSON arrays of OPA
// decision-log events (the shape `audit export --format opa` writes), with the bearer token, secrets
// masked as in the audit trail, retried after a failed upload, bounded when the endpoint is gone
// (oldest dropped, drops counted) — and the Check never waits for any of it.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecisionLogPush, decisionLogPush } from '../../audit/decision-log-push.ts';
import { type AuthzServer, startAuthzServer } from '../../authz-server/server.ts';
import type { DecisionEvent } from '../../contracts/decision.ts';
import { type AuthzClient, authzClient } from '../support/authz-client.ts';
import { waitFor } from '../support/wait.ts';

const silent = pino({ level: 'silent' });
const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';

interface Upload {
  headers: Record<string, string | string[] | undefined>;
  events: Record<string, any>[];
}

class Receiver {
  readonly uploads: Upload[] = [];
  failNext = 0;
  private server!: Server;
  url = '';

  async start() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (this.failNext > 0) {
          this.failNext--;
          res.writeHead(500).end();
          return;
        }
        const body = Buffer.concat(chunks);
        const text =
          req.headers['content-encoding'] === 'gzip' ? gunzipSync(body).toString() : body.toString();
        this.uploads.push({ headers: req.headers, events: JSON.parse(text) });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/logs`;
  }

  get events() {
    return this.uploads.flatMap((u) => u.events);
  }

  close() {
    return new Promise<void>((r) => this.server.close(() => r()));
  }
}

const receiver = new Receiver();
let server: AuthzServer;
let client: AuthzClient;
let push: DecisionLogPush;

beforeAll(async () => {
  await receiver.start();
  process.env['CHAPERONE_TEST_LOG_TOKEN'] = 'log-token-456';
  push = decisionLogPush(
    {
      url: receiver.url,
      token: 'env:CHAPERONE_TEST_LOG_TOKEN',
      minDelaySec: 0.05,
      maxDelaySec: 0.1,
      bufferSizeLimitBytes: 1024 * 1024,
      uploadSizeLimitBytes: 32 * 1024,
    },
    {
      entrypoint: 'demo/decision',
      logger: silent,
      labels: { id: 'node-a' },
      extraSecretHeaders: ['x-agent-token'],
    },
  );
  push.start();
  const { mkdtemp, mkdir, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-logs-'));
  await mkdir(join(dir, 'demo'));
  await writeFile(
    join(dir, 'demo', 'p.rego'),
    'package demo\n\ndefault decision := false\n\ndecision := {"allowed": true, "reason": "public"} if input.parsed_path[0] == "public"\n',
  );
  server = await startAuthzServer({
    address: '127.0.0.1:0',
    policy: { dir, entrypoint: 'demo/decision' },
    logger: silent,
    onDecision: (e) => push.add(e),
  });
  client = authzClient(server.address);
});

afterAll(async () => {
  client?.close();
  await server?.close();
  await push?.stop(1000);
  await receiver.close();
});

describe('decision logs pushed to an HTTP endpoint', () => {
  it('arrive as gzip JSON arrays of OPA decision-log events, with the token, secrets masked', async () => {
    const allowed = await client.check({
      path: '/public/a?api_key=k-123&x=1',
      headers: { authorization: `Bearer ${JWT}`, 'x-agent-token': 'agent-secret-789', 'x-trace': 't1' },
    });
    const denied = await client.check({ path: '/private' });
    const ids = [allowed, denied].map((r) => r.dynamicMetadata?.fields['decision_id']?.stringValue);
    await waitFor(() => ids.every((id) => receiver.events.some((e) => e['decision_id'] === id)), {
      what: 'both decisions at the receiver',
    });
    const upload = receiver.uploads[0]!;
    expect(upload.headers).toMatchObject({
      'content-encoding': 'gzip',
      'content-type': 'application/json',
      authorization: 'Bearer log-token-456',
    });
    const [a, d] = ids.map((id) => receiver.events.find((e) => e['decision_id'] === id)!);
    const revision = server.policy.current()!.revision;
    expect(a).toMatchObject({
      path: 'demo/decision',
      result: { allowed: true, reason: 'public' },
      labels: { app: 'chaperone', id: 'node-a', policy_revision: revision },
      bundles: { chaperone: { revision } },
      chaperone: { decision: 'allow', http_status: 200 },
      input: { parsed_path: ['public', 'a'], parsed_query: { api_key: ['[redacted]'], x: ['1'] } },
    });
    expect(typeof a!['timestamp']).toBe('string');
    expect(a!['input'].attributes.request.http.headers).toMatchObject({
      authorization: '[redacted]',
      'x-agent-token': '[redacted]',
      'x-trace': 't1',
      // Envoy's :path pseudo-header carries the query string: its secret-named parameters are masked too.
      ':path': '/public/a?api_key=[redacted]&x=1',
    });
    expect(d).toMatchObject({ result: false, chaperone: { decision: 'deny', http_status: 403 } });
    const all = JSON.stringify(receiver.events);
    for (const secret of [JWT, 'agent-secret-789', 'k-123']) expect(all).not.toContain(secret);
  });

  it('a failed upload is retried; nothing is lost', async () => {
    receiver.failNext = 2;
    const res = await client.check({ path: '/public/retry' });
    const id = res.dynamicMetadata?.fields['decision_id']?.stringValue;
    await waitFor(() => receiver.events.some((e) => e['decision_id'] === id), {
      what: 'the decision after two failed uploads',
    });
    expect(push.status()).toMatchObject({ failed_uploads: 2, dropped: 0, last_error: null });
  });
});

describe('a bounded buffer', () => {
  it('drops the oldest events when the endpoint is gone, counts them, and add() never waits', async () => {
    const gone = new DecisionLogPush({
      url: 'http://127.0.0.1:9/logs',
      token: () => null,
      minDelayMs: 10,
      maxDelayMs: 20,
      bufferSizeLimitBytes: 8 * 1024,
      uploadSizeLimitBytes: 4 * 1024,
      entrypoint: 'demo/decision',
      logger: silent,
      maxPending: 500,
    });
    gone.start();
    const event = (i: number): DecisionEvent => ({
      decisionId: `d-${i}`,
      requestId: `r-${i}`,
      time: new Date(),
      routeId: null,
      target: null,
      method: 'GET',
      host: 'h',
      path: `/p/${i}`,
      subject: 'alice',
      issuer: null,
      actor: null,
      verdict: { decision: 'allow', httpStatus: 200, reason: 'ok', reasonCode: 'allow' },
      policyRevision: 'r1',
      latencyUs: 10,
      input: { parsed_path: ['p', String(i)], padding: 'x'.repeat(200) },
      result: true,
    });
    // Synchronous and O(1): 2,000 events handed over without awaiting anything.
    for (let i = 0; i < 2000; i++) expect(gone.add(event(i))).toBeUndefined();
    await waitFor(() => (gone.status()['failed_uploads'] as number) >= 2, { what: 'failed uploads' });
    const s = gone.status() as { dropped: number; drops: Record<string, number>; buffered_bytes: number };
    expect(s.buffered_bytes).toBeLessThanOrEqual(8 * 1024);
    expect(s.drops['pending_full']).toBe(1500);
    expect(s.drops['buffer_full']).toBeGreaterThan(0);
    expect(s.dropped).toBe(s.drops['pending_full']! + s.drops['buffer_full']!);
    await gone.stop(100);
  });
});
