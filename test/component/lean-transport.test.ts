// Conformance of the lean Check transport (authz-server/transport/, node:http2) against real gRPC
// clients: @grpc/grpc-js (the library Envoy's Google-gRPC peers and our tests use) for the status codes
// a gRPC server owes its clients, raw node:http2 for what a well-behaved client never sends, and
// the authz server itself (`transport: 'http2'`) answering exactly what it answers on @grpc/grpc-js.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect as h2connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as HEALTH_PROTO_PATH } from 'grpc-health-check';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthzServer, startAuthzServer } from '../../authz-server/server.ts';
import { authzMethods, HealthStatus } from '../../authz-server/transport/check-service.ts';
import { GrpcStatus } from '../../authz-server/transport/grpc-framing.ts';
import {
  createUnaryGrpcServer,
  type UnaryGrpcServer,
} from '../../authz-server/transport/unary-grpc-server.ts';
import { ENVOY_PROTO_INCLUDE_DIRS, EXT_AUTHZ_PROTO } from '../../lib/envoy-proto.ts';
import { locateTool } from '../../lib/tools.ts';
import { authzClient, checkRequest, deniedStatus, headerOf } from '../support/authz-client.ts';

const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';
const HEALTH_WATCH_PATH = '/grpc.health.v1.Health/Watch';

// Answers with a header and its input echoed, so a test can see what the pipeline received.
const POLICY = `package chaperone.authz

decision := {
	"allowed": true,
	"headers": {"x-chaperone-seen-path": input.attributes.request.http.path},
	"reason": "test allows x-allow: yes",
} if {
	input.attributes.request.http.headers["x-allow"] == "yes"
} else := {
	"allowed": false,
	"http_status": 403,
	"headers": {"x-denied-by": "policy"},
	"body": {"reason": "no x-allow"},
	"reason": "no x-allow header",
}
`;

/** A unary call with raw bytes both ways, so a test controls exactly what goes on the wire. */
function rawUnary(
  client: grpc.Client,
  path: string,
  body: Buffer,
  options: grpc.CallOptions = {},
): Promise<{ err: grpc.ServiceError | null; res: Buffer | undefined }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      body,
      new grpc.Metadata(),
      options,
      (err, res) => resolve({ err: err ?? null, res }),
    );
  });
}

interface Http2Answer {
  status: number;
  headers: Record<string, unknown>;
  trailers: Record<string, unknown>;
  body: Buffer;
}

/** One HTTP/2 request with hand-written headers and body: what no gRPC library would send. */
function http2Call(port: number, headers: Record<string, string>, body: Buffer): Promise<Http2Answer> {
  return new Promise((resolve, reject) => {
    const session = h2connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const req = session.request({ ':method': 'POST', ':path': CHECK_PATH, ...headers });
    const chunks: Buffer[] = [];
    let answer: Omit<Http2Answer, 'body' | 'trailers'> = { status: 0, headers: {} };
    let trailers: Record<string, unknown> = {};
    req.on('response', (h) => {
      answer = { status: Number(h[':status']), headers: { ...h } };
    });
    req.on('trailers', (t) => {
      trailers = { ...t };
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', reject);
    req.on('close', () => {
      session.close();
      resolve({ ...answer, trailers, body: Buffer.concat(chunks) });
    });
    req.end(body);
  });
}

/** The grpc-status of an answer: from trailers, or from the headers of a trailers-only answer. */
const grpcStatusOf = (a: Http2Answer) => Number(a.trailers['grpc-status'] ?? a.headers['grpc-status']);

function frame(message: Buffer, declaredLength = message.length, flag = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flag;
  head.writeUInt32BE(declaredLength, 1);
  return Buffer.concat([head, message]);
}

describe('lean Check transport: unary gRPC on node:http2', () => {
  let server: UnaryGrpcServer;
  let port: number;
  let client: grpc.Client;
  /** Checks whose handler waits until the test releases it. */
  const held: (() => void)[] = [];
  const handlerErrors: unknown[] = [];

  beforeAll(async () => {
    const health = new HealthStatus({ '': 'SERVING', 'envoy.service.auth.v3.Authorization': 'SERVING' });
    const methods = authzMethods(async (request) => {
      const headers = (
        request as { attributes?: { request?: { http?: { headers?: Record<string, string> } } } }
      ).attributes?.request?.http?.headers;
      if (headers?.['x-hold'] === 'yes') await new Promise<void>((release) => held.push(release));
      if (headers?.['x-throw'] === 'yes') throw new Error('secret internal detail');
      return { status: { code: 0 }, okResponse: {} };
    }, health);
    server = createUnaryGrpcServer({
      methods,
      maxReceiveMessageBytes: 4096,
      onHandlerError: (err) => handlerErrors.push(err),
    });
    port = await server.listen('127.0.0.1', 0);
    client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    for (const release of held) release();
    client?.close();
    await server?.close(500);
  });

  const checkDef = (
    protoLoader.loadSync(EXT_AUTHZ_PROTO, { includeDirs: ENVOY_PROTO_INCLUDE_DIRS, keepCase: false })[
      'envoy.service.auth.v3.Authorization'
    ] as protoLoader.ServiceDefinition
  )['Check']!;
  const checkBytes = (headers: Record<string, string> = {}) =>
    checkDef.requestSerialize(checkRequest({ path: '/demo/items', headers }));

  it('answers Check through @grpc/grpc-js with the encoded CheckResponse', async () => {
    const { err, res } = await rawUnary(client, CHECK_PATH, checkBytes());
    expect(err).toBeNull();
    const decoded = checkDef.responseDeserialize(res as Buffer) as {
      status?: { code?: number };
      okResponse?: object;
    };
    expect(decoded.status?.code ?? 0).toBe(0);
    expect(decoded.okResponse).toEqual({});
  });

  it('DEADLINE_EXCEEDED when the handler outlives the client deadline, and keeps serving', async () => {
    const { err } = await rawUnary(client, CHECK_PATH, checkBytes({ 'x-hold': 'yes' }), {
      deadline: Date.now() + 150,
    });
    expect(err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    for (const release of held.splice(0)) release();
    // The late answer is dropped without breaking the connection.
    const next = await rawUnary(client, CHECK_PATH, checkBytes());
    expect(next.err).toBeNull();
  });

  it('enforces grpc-timeout itself: DEADLINE_EXCEEDED in the trailers', async () => {
    const answer = await http2Call(
      port,
      { 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '50m' },
      frame(checkBytes({ 'x-hold': 'yes' })),
    );
    expect(answer.status).toBe(200);
    expect(grpcStatusOf(answer)).toBe(GrpcStatus.DEADLINE_EXCEEDED);
    for (const release of held.splice(0)) release();
  });

  it('rejects a malformed grpc-timeout with INTERNAL, as @grpc/grpc-js does', async () => {
    const answer = await http2Call(
      port,
      { 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '5 seconds' },
      frame(checkBytes()),
    );
    expect(grpcStatusOf(answer)).toBe(GrpcStatus.INTERNAL);
  });

  it('UNIMPLEMENTED for a method it does not serve', async () => {
    const { err } = await rawUnary(client, '/envoy.service.auth.v3.Authorization/Nope', checkBytes());
    expect(err?.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(err?.details).toBe(
      'The server does not implement the method /envoy.service.auth.v3.Authorization/Nope',
    );
  });

  it('INTERNAL for a message that is not a CheckRequest', async () => {
    // Field 1, wire type 2, length 100, but only 3 bytes follow: not decodable protobuf.
    const { err } = await rawUnary(client, CHECK_PATH, Buffer.from([0x0a, 0x64, 0x01, 0x02, 0x03]));
    expect(err?.code).toBe(grpc.status.INTERNAL);
    expect(err?.details).toBe('Error deserializing request');
  });

  it('INTERNAL for a truncated frame', async () => {
    const message = checkBytes();
    const answer = await http2Call(
      port,
      { 'content-type': 'application/grpc', te: 'trailers' },
      frame(message.subarray(0, 10), message.length),
    );
    expect(grpcStatusOf(answer)).toBe(GrpcStatus.INTERNAL);
  });

  it('RESOURCE_EXHAUSTED for a message over the limit, before reading it', async () => {
    const { err } = await rawUnary(client, CHECK_PATH, checkBytes({ 'x-pad': 'p'.repeat(5000) }));
    expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(err?.details).toMatch(/larger than max \(\d+ vs\. 4096\)/);
  });

  it('UNIMPLEMENTED for a second message or none on a unary method, as @grpc/grpc-js', async () => {
    const one = frame(checkBytes());
    const two = await http2Call(
      port,
      { 'content-type': 'application/grpc', te: 'trailers' },
      Buffer.concat([one, one]),
    );
    expect(grpcStatusOf(two)).toBe(GrpcStatus.UNIMPLEMENTED);
    const none = await http2Call(
      port,
      { 'content-type': 'application/grpc', te: 'trailers' },
      Buffer.alloc(0),
    );
    expect(grpcStatusOf(none)).toBe(GrpcStatus.UNIMPLEMENTED);
  });

  it('HTTP 415 for a request that is not gRPC', async () => {
    const answer = await http2Call(port, { 'content-type': 'application/json' }, Buffer.from('{}'));
    expect(answer.status).toBe(415);
  });

  it('accepts gzip-compressed requests from @grpc/grpc-js', async () => {
    const gzipClient = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
      'grpc.default_compression_algorithm': grpc.compressionAlgorithms.gzip,
    });
    try {
      const { err } = await rawUnary(gzipClient, CHECK_PATH, checkBytes({ 'x-pad': 'z'.repeat(3000) }));
      expect(err).toBeNull();
    } finally {
      gzipClient.close();
    }
  });

  it('INTERNAL without internals when the handler throws', async () => {
    const { err } = await rawUnary(client, CHECK_PATH, checkBytes({ 'x-throw': 'yes' }));
    expect(err?.code).toBe(grpc.status.INTERNAL);
    expect(err?.details).toBe('Internal server error');
    expect(String(handlerErrors.at(-1))).toContain('secret internal detail');
  });

  it('percent-encodes grpc-message, so the details arrive unaltered', async () => {
    const { err } = await rawUnary(client, '/envoy.service.auth.v3.Authorization/Pr%C3%BCf', checkBytes());
    expect(err?.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(err?.details).toContain('Pr%C3%BCf');
  });

  it('serves grpc.health.v1.Health/Check to the @grpc/grpc-js client', async () => {
    const pkg = protoLoader.loadSync(HEALTH_PROTO_PATH, { keepCase: true, enums: String, defaults: true });
    const Health = grpc.loadPackageDefinition(pkg)['grpc'] as unknown as {
      health: { v1: { Health: grpc.ServiceClientConstructor } };
    };
    const health = new Health.health.v1.Health(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const call = (service: string) =>
      new Promise<{ err: grpc.ServiceError | null; res?: { status: string } }>((resolve) =>
        health['Check']({ service }, (err: grpc.ServiceError | null, res: { status: string }) =>
          resolve({ err, res }),
        ),
      );
    try {
      expect((await call('')).res?.status).toBe('SERVING');
      expect((await call('envoy.service.auth.v3.Authorization')).res?.status).toBe('SERVING');
      const unknown = await call('no.such.Service');
      expect(unknown.err?.code).toBe(grpc.status.NOT_FOUND);
      expect(unknown.err?.details).toBe('Health status unknown for service no.such.Service');
    } finally {
      health.close();
    }
  });

  it('does not serve Health/Watch (server streaming): UNIMPLEMENTED; Envoy health-checks with Check', async () => {
    const { err } = await rawUnary(client, HEALTH_WATCH_PATH, Buffer.alloc(0));
    expect(err?.code).toBe(grpc.status.UNIMPLEMENTED);
  });

  it('survives clients that cancel mid-call', async () => {
    const calls = Array.from({ length: 20 }, () => {
      const c = client.makeUnaryRequest(
        CHECK_PATH,
        (b: Buffer) => b,
        (b: Buffer) => b,
        checkBytes({ 'x-hold': 'yes' }),
        () => undefined,
      );
      return c;
    });
    for (const c of calls) c.cancel();
    for (const release of held.splice(0)) release();
    const { err } = await rawUnary(client, CHECK_PATH, checkBytes());
    expect(err).toBeNull();
  });

  const ghz = (() => {
    try {
      return locateTool('ghz');
    } catch {
      return null;
    }
  })();
  // ghz comes with `node scripts/install-tools.mjs --bench` (npm run bench:authz), not with npm test.
  it.skipIf(!ghz || !existsSync(ghz))(
    'answers every ghz call (Go gRPC client, 20 concurrent, 1 connection)',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'chaperone-ghz-'));
      try {
        const data = join(dir, 'req.json');
        const out = join(dir, 'out.json');
        const request = checkRequest({ path: '/demo/items' }) as {
          attributes: { request: { time?: unknown } };
        };
        // ghz reads protojson, where a Timestamp is an RFC 3339 string, not {seconds, nanos}.
        delete request.attributes.request.time;
        await writeFile(data, JSON.stringify(request));
        const code = await new Promise<number | null>((resolve) => {
          const child = spawn(
            ghz as string,
            [
              '--insecure',
              `--proto=${join(ENVOY_PROTO_INCLUDE_DIRS[0]!, EXT_AUTHZ_PROTO)}`,
              `--import-paths=${ENVOY_PROTO_INCLUDE_DIRS.join(',')}`,
              '--call=envoy.service.auth.v3.Authorization.Check',
              `--data-file=${data}`,
              '--concurrency=20',
              '--connections=1',
              '--total=3000',
              '--timeout=5s',
              '--format=json',
              `--output=${out}`,
              `127.0.0.1:${port}`,
            ],
            { stdio: 'ignore' },
          );
          child.on('exit', resolve);
        });
        expect(code).toBe(0);
        const report = JSON.parse(await readFile(out, 'utf8')) as {
          count: number;
          statusCodeDistribution: Record<string, number>;
        };
        expect(report.count).toBe(3000);
        expect(report.statusCodeDistribution).toEqual({ OK: 3000 });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
});

describe('authz server on the lean transport answers as on @grpc/grpc-js', () => {
  let policyDir: string;
  const servers: AuthzServer[] = [];

  beforeAll(async () => {
    policyDir = await mkdtemp(join(tmpdir(), 'chaperone-lean-policy-'));
    await writeFile(join(policyDir, 'decision.rego'), POLICY);
    for (const transport of ['grpc-js', 'http2'] as const) {
      servers.push(
        await startAuthzServer({
          address: '127.0.0.1:0',
          transport,
          policy: { dir: policyDir, entrypoint: 'chaperone/authz/decision' },
          logger: pino({ level: 'silent' }),
        }),
      );
    }
  });

  afterAll(async () => {
    for (const s of servers) await s.close();
    if (policyDir) await rm(policyDir, { recursive: true, force: true });
  });

  /** The response with the per-decision values (decision id) taken out, for a side-by-side compare. */
  const stable = (res: unknown) =>
    JSON.parse(
      JSON.stringify(res).replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<id>'),
    ) as unknown;

  it.each<{ name: string; headers: Record<string, string>; body?: string }>([
    { name: 'allow', headers: { 'x-allow': 'yes' } },
    { name: 'deny', headers: {} },
    { name: 'deny with a body', headers: {}, body: '{"a":1}' },
  ])('$name: same CheckResponse on both transports', async ({ headers, body }) => {
    const answers = [];
    for (const s of servers) {
      const c = authzClient(s.address);
      try {
        answers.push(await c.check({ path: '/demo/items', headers, ...(body ? { body } : {}) }));
      } finally {
        c.close();
      }
    }
    const [onGrpcJs, onHttp2] = answers;
    expect(stable(onHttp2)).toEqual(stable(onGrpcJs));
    if (headers['x-allow']) {
      expect(onHttp2?.status.code ?? 0).toBe(0);
      expect(headerOf(onHttp2?.okResponse?.headers, 'x-chaperone-seen-path')).toBe('/demo/items');
    } else {
      expect(onHttp2?.status.code).toBe(7);
      expect(deniedStatus(onHttp2!)).toBe(403);
      expect(headerOf(onHttp2?.deniedResponse?.headers, 'x-denied-by')).toBe('policy');
    }
  });

  it('closes: new calls fail with UNAVAILABLE', async () => {
    const lean = servers.pop() as AuthzServer;
    await lean.close();
    const c = authzClient(lean.address);
    try {
      await expect(c.check({ path: '/demo/items' })).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    } finally {
      c.close();
    }
  });
});
