// OpenTelemetry traces of a running `chaperone up`, turned on by the standard environment
// (OTEL_EXPORTER_OTLP_ENDPOINT) and received by an OTLP/HTTP receiver in the test (protobuf, the
// default): a span per Check through Envoy, a child of the traceparent the client sent, carrying the
// decision's attributes and nothing secret; the decision's audit row carries the same trace id and
// `chaperone audit query --trace` finds it.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.ts';
import { apiFetch, devToken, type GatewayProcess, startGatewayProcess } from '../support/gateway-process.ts';
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from '../support/otlp-receiver.ts';
import { waitFor } from '../support/wait.ts';

let gw: GatewayProcess;
let receiver: OtlpReceiver;
const tokens: Record<string, string> = {};

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  gw = await startGatewayProcess({
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_SERVICE_NAME: 'chaperone-e2e',
      // Export within 100 ms instead of the default 5 s.
      OTEL_BSP_SCHEDULE_DELAY: '100',
    },
  });
  for (const u of ['alice', 'carol']) tokens[u] = await devToken(gw, u);
}, 120_000);

afterAll(async () => {
  await gw?.cleanup();
  await receiver?.close();
});

async function spanOfTrace(traceId: string): Promise<ReceivedSpan> {
  let span: ReceivedSpan | undefined;
  await waitFor(
    () => {
      span = receiver.spans.find((s) => s.traceId === traceId && s.name === 'chaperone.check');
      return span !== undefined;
    },
    { what: `the Check span of trace ${traceId}`, timeoutMs: 15_000 },
  );
  return span!;
}

/** The audit rows of one trace, through the CLI. */
async function auditRowsOf(traceId: string): Promise<Record<string, unknown>[]> {
  let rows: Record<string, unknown>[] = [];
  await waitFor(
    async () => {
      const res = await runCli([
        'audit',
        'query',
        '--trace',
        traceId,
        '--json',
        '--api',
        gw.api,
        '--token',
        tokens['carol']!,
      ]);
      expect(res.code, res.out).toBe(0);
      rows = res.out
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      return rows.length > 0;
    },
    { what: `the decision of trace ${traceId} in the audit trail`, timeoutMs: 20_000, intervalMs: 250 },
  );
  return rows;
}

describe('traces of chaperone up', () => {
  it('says traces are on', () => {
    expect(gw.output()).toMatch(/telemetry\s+metrics off\s+traces OTLP/);
  });

  it("exports a span per Check under the client's traceparent, with the decision's attributes", async () => {
    const traceId = randomBytes(16).toString('hex');
    const parentId = randomBytes(8).toString('hex');
    const res = await fetch(`${gw.egress}/demo/items`, {
      headers: { authorization: `Bearer ${tokens['alice']}`, traceparent: `00-${traceId}-${parentId}-01` },
    });
    expect(res.status).toBe(200);
    await res.body?.cancel();
    const span = await spanOfTrace(traceId);
    expect(span.encoding).toBe('protobuf');
    expect(span.parentSpanId).toBe(parentId);
    expect(span.kind).toBe(2); // SERVER
    expect(span.resource['service.name']).toBe('chaperone-e2e');
    const status = (await (await apiFetch(gw, tokens['carol']!, '/status')).json()) as {
      authz: { policy_revision: string };
    };
    expect(span.attributes).toMatchObject({
      'chaperone.decision': 'allow',
      'chaperone.reason_code': 'ALLOWED',
      'chaperone.target': 'demo',
      'chaperone.policy_revision': status.authz.policy_revision,
      'http.request.method': 'GET',
      'http.response.status_code': 200,
    });
    expect(span.attributes['chaperone.decision_id']).toMatch(/^[0-9a-f-]{36}$/);
    for (const v of Object.values(span.attributes)) expect(String(v)).not.toMatch(/eyJ|Bearer|alice/);

    const [row] = await auditRowsOf(traceId);
    expect(row).toMatchObject({ trace_id: traceId, decision_id: span.attributes['chaperone.decision_id'] });
  });

  it('starts a trace for a request without one, and records its id with the decision', async () => {
    const before = new Set(receiver.spans.map((s) => s.spanId));
    const res = await fetch(`${gw.egress}/demo/items`);
    expect(res.status).toBe(401);
    await res.body?.cancel();
    await waitFor(() => receiver.spans.some((s) => !before.has(s.spanId)), {
      what: 'a span for the request without a traceparent',
      timeoutMs: 15_000,
    });
    const span = receiver.spans.find((s) => !before.has(s.spanId))!;
    expect(span.parentSpanId).toBe('');
    expect(span.attributes['chaperone.decision']).toBe('deny');
    const [row] = await auditRowsOf(span.traceId);
    expect(row).toMatchObject({ decision: 'deny', decision_id: span.attributes['chaperone.decision_id'] });
    // The table shows the trace id too.
    const table = await runCli([
      'audit',
      'query',
      '--trace',
      span.traceId,
      '--api',
      gw.api,
      '--token',
      tokens['carol']!,
    ]);
    expect(table.out).toMatch(/TRACE/);
    expect(table.out).toContain(span.traceId);
  });
});
