// The gateway held at a steady rate: `chaperone up --dev` (real Envoy, audit on the embedded store) takes
// an open-loop load — requests leave on schedule whether or not earlier ones were answered — of
// GET /demo/items with alice's token through Envoy for 30 s. Every request must succeed, and every
// decision Envoy's answers name (x-chaperone-decision-id) must be in the audit trail exactly once, as
// an allow of that request, once the spool has drained into the store.
//
// STEADY_RPS and STEADY_SECONDS override the rate (default 200 rps) and the duration (default 30 s).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiFetch, devToken, type GatewayProcess, startGatewayProcess } from '../support/gateway-process.ts';
import { waitFor } from '../support/wait.ts';

const RATE = Number(process.env['STEADY_RPS'] ?? 200);
const SECONDS = Number(process.env['STEADY_SECONDS'] ?? 30);
/** Longer than Envoy's ext_authz timeout (0.5 s) and its route timeout: a request without an answer is an error. */
const REQUEST_TIMEOUT_MS = 20_000;

interface Outcome {
  status: number;
  decisionId: string | null;
  ms: number;
  error?: string;
}

function reasonOf(body: string): string {
  try {
    return String((JSON.parse(body) as { error?: unknown }).error ?? body.slice(0, 60));
  } catch {
    return body.slice(0, 60);
  }
}

/** Sends `rate` requests per second for `seconds`, on schedule (open loop); resolves with every outcome. */
async function openLoop(url: string, token: string, rate: number, seconds: number): Promise<Outcome[]> {
  const total = Math.round(rate * seconds);
  const interval = 1000 / rate;
  const pending: Promise<Outcome>[] = [];
  const start = performance.now();
  for (let i = 0; i < total; i++) {
    const wait = start + i * interval - performance.now();
    // Pacing the generator (not synchronising on anything): a late loop catches up at once.
    if (wait >= 1) await new Promise((r) => setTimeout(r, wait));
    const sent = performance.now();
    pending.push(
      fetch(url, {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      }).then(
        async (res) => {
          const body = await res.text();
          return {
            status: res.status,
            decisionId: res.headers.get('x-chaperone-decision-id'),
            ms: performance.now() - sent,
            // A failure names its cause: Chaperone's reason code, or Envoy's own answer.
            ...(res.status === 200 ? {} : { error: `${res.status} ${reasonOf(body)}` }),
          };
        },
        (err: unknown) => ({ status: 0, decisionId: null, ms: performance.now() - sent, error: String(err) }),
      ),
    );
  }
  return Promise.all(pending);
}

interface Status {
  audit: { spool: { pending: number }; access_logs: { pending: number } };
}

describe(`chaperone up held at ${RATE} rps for ${SECONDS} s`, () => {
  let gw: GatewayProcess;
  let carol: string;

  beforeAll(async () => {
    gw = await startGatewayProcess();
    carol = await devToken(gw, 'carol');
  }, 120_000);

  afterAll(async () => {
    await gw?.cleanup();
  });

  it('answers every request and records each decision exactly once', async () => {
    const alice = await devToken(gw, 'alice');
    const url = `${gw.egress}/demo/items`;
    // Warm-up (JIT, connections, the verified-token cache), not counted.
    await openLoop(url, alice, Math.min(RATE, 50), 2);
    const outcomes = await openLoop(url, alice, RATE, SECONDS);

    const failed = outcomes.filter((o) => o.status !== 200);
    const byStatus = failed.reduce<Record<string, number>>((m, o) => {
      m[o.error ?? o.status] = (m[o.error ?? o.status] ?? 0) + 1;
      return m;
    }, {});
    const sorted = outcomes.map((o) => o.ms).sort((a, b) => a - b);
    const p = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!.toFixed(1);
    process.stderr.write(
      `steady load: ${outcomes.length} requests at ${RATE} rps, p50 ${p(0.5)} ms, p99 ${p(0.99)} ms, ` +
        `max ${p(1)} ms, failures ${JSON.stringify(byStatus)}\n`,
    );
    expect(byStatus).toEqual({});

    const ids = outcomes.map((o) => o.decisionId);
    expect(ids.every((id) => typeof id === 'string' && /^[0-9a-f-]{36}$/.test(id))).toBe(true);
    expect(new Set(ids).size).toBe(outcomes.length);

    // Every decision reaches the store: the spool and the access-log buffer drain.
    await waitFor(
      async () => {
        const s = (await (await apiFetch(gw, carol, '/status')).json()) as Status;
        return s.audit.spool.pending === 0 && s.audit.access_logs.pending === 0;
      },
      { what: 'the audit spool to drain into the store', timeoutMs: 60_000 },
    );
    const res = await apiFetch(gw, carol, '/audit/export?since=1h');
    expect(res.status).toBe(200);
    const stored = (await res.text())
      .split('\n')
      .filter(Boolean)
      .map(
        (line) =>
          JSON.parse(line) as { decision_id: string; decision: string; path: string; subject: string },
      );
    const count = new Map<string, number>();
    for (const r of stored) count.set(r.decision_id, (count.get(r.decision_id) ?? 0) + 1);
    const byId = new Map(stored.map((r) => [r.decision_id, r]));
    const missing = ids.filter((id) => !count.has(id!));
    const duplicated = ids.filter((id) => (count.get(id!) ?? 0) > 1);
    expect({ missing: missing.length, duplicated: duplicated.length }).toEqual({ missing: 0, duplicated: 0 });
    for (const id of ids)
      expect(byId.get(id!)).toMatchObject({ decision: 'allow', path: '/demo/items', subject: 'alice' });

    // The trail is intact after the load.
    const verify = await apiFetch(gw, carol, '/audit/verify');
    expect(verify.status).toBe(200);
    expect(await verify.json()).toMatchObject({ ok: true });
  }, 300_000);
});
