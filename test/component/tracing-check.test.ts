// A span per Check against the real gRPC server: the parent is Envoy's span from the call's metadata
// when Envoy traces, else the request's own traceparent, else a new trace; the decision event carries
// the span's trace id. Exported as OTLP/JSON (OTEL_EXPORTER_OTLP_PROTOCOL=http/json) to a receiver in
// the test. With traces off, the request's traceparent still reaches the decision.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthzServer, startAuthzServer } from '../../authz-server/server.ts';
import type { DecisionEvent } from '../../contracts/decision.ts';
import { type CheckTracer, startTracing } from '../../telemetry/tracing.ts';
import { type AuthzClient, authzClient, checkRequest } from '../support/authz-client.ts';
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from '../support/otlp-receiver.ts';
import { waitFor } from '../support/wait.ts';

const POLICY = `package test.authz

decision := {"allowed": true, "reason": "ok"}
`;

const T1 = '4bf92f3577b34da6a3ce929d0e0e4736';
const T2 = '0af7651916cd43dd8448eb211c80319c';
const P1 = '00f067aa0ba902b7';
const P2 = 'b7ad6b7169203331';

let dir: string;
let receiver: OtlpReceiver;
let tracer: CheckTracer | null;
let traced: AuthzServer;
let untraced: AuthzServer;
let tracedClient: AuthzClient;
let untracedClient: AuthzClient;
const events: DecisionEvent[] = [];
const recorder = {
  record: async (e: DecisionEvent) => {
    events.push(e);
  },
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chaperone-tracing-'));
  await writeFile(join(dir, 'policy.rego'), POLICY);
  receiver = await startOtlpReceiver();
  tracer = await startTracing({
    serviceName: 'authz-component',
    logger: pino({ level: 'silent' }),
    env: {
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/v1/traces`,
      OTEL_BSP_SCHEDULE_DELAY: '50',
    },
  });
  const common = {
    address: '127.0.0.1:0',
    policy: { dir, entrypoint: 'test/authz/decision' },
    logger: pino({ level: 'silent' }),
    recorder,
  };
  traced = await startAuthzServer({ ...common, telemetry: { tracer } });
  untraced = await startAuthzServer(common);
  tracedClient = authzClient(traced.address);
  untracedClient = authzClient(untraced.address);
}, 60_000);

afterAll(async () => {
  tracedClient?.close();
  untracedClient?.close();
  await traced?.close();
  await untraced?.close();
  await tracer?.shutdown();
  await receiver?.close();
  await rm(dir, { recursive: true, force: true });
});

async function check(
  client: AuthzClient,
  headers: Record<string, string>,
  metadata?: Record<string, string>,
) {
  const res = await client.checkRaw(checkRequest({ path: '/x', headers }), metadata);
  expect(res.status.code).toBe(0);
  return events.at(-1)!;
}

async function spanOf(decisionId: string): Promise<ReceivedSpan> {
  let span: ReceivedSpan | undefined;
  await waitFor(
    () => {
      span = receiver.spans.find((s) => s.attributes['chaperone.decision_id'] === decisionId);
      return span !== undefined;
    },
    { what: `the span of decision ${decisionId}`, timeoutMs: 10_000 },
  );
  return span!;
}

describe('a span per Check', () => {
  it('is a child of the span Envoy sends in the gRPC metadata (before the request header)', async () => {
    const e = await check(
      tracedClient,
      { traceparent: `00-${T2}-${P2}-01` },
      { traceparent: `00-${T1}-${P1}-01` },
    );
    const span = await spanOf(e.decisionId);
    expect(span).toMatchObject({ traceId: T1, parentSpanId: P1, encoding: 'json', name: 'chaperone.check' });
    expect(span.resource['service.name']).toBe('authz-component');
    expect(e.traceId).toBe(T1);
  });

  it("is a child of the request's traceparent when Envoy does not trace", async () => {
    const e = await check(tracedClient, { traceparent: `00-${T2}-${P2}-01` });
    expect(await spanOf(e.decisionId)).toMatchObject({ traceId: T2, parentSpanId: P2 });
    expect(e.traceId).toBe(T2);
  });

  it('starts a new trace for a malformed or absent traceparent, recorded with the decision', async () => {
    const cases: Record<string, string>[] = [
      { traceparent: `00-${'0'.repeat(32)}-${P1}-01` },
      { traceparent: 'garbage' },
      {},
    ];
    for (const headers of cases) {
      const e = await check(tracedClient, headers);
      const span = await spanOf(e.decisionId);
      expect(span.parentSpanId).toBe('');
      expect(span.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(e.traceId).toBe(span.traceId);
    }
  });
});

describe('with traces off', () => {
  it("records the request's trace id with the decision, and none without a valid traceparent", async () => {
    expect((await check(untracedClient, { traceparent: `00-${T2}-${P2}-01` })).traceId).toBe(T2);
    expect((await check(untracedClient, { traceparent: 'garbage' })).traceId).toBeNull();
    expect((await check(untracedClient, {})).traceId).toBeNull();
  });
});
