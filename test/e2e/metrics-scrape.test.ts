// Prometheus metrics of a running `chaperone up --config` with `telemetry.metrics` (a token file): the
// metrics listener refuses scrapers without the token, and the scrape — read with a real text-format
// parser — moves after real requests through Envoy: decisions by target, verdict and reason code, the
// Check latency histogram, xDS pushes and ACKs of the Envoy node, the policy revision, the audit spool,
// agent tokens. No label carries a user or a path. Envoy's own stats come through /metrics/envoy.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  apiFetch,
  devGatewayYaml,
  devToken,
  type GatewayProcess,
  startGatewayProcess,
} from '../support/gateway-process.ts';
import { freePort } from '../support/ports.ts';
import { parseScrape, type Scrape, scrape } from '../support/prometheus.ts';
import { waitFor } from '../support/wait.ts';

const TOKEN = 'scrape-token-7f3a9c';
let gw: GatewayProcess;
let metricsUrl: string;
const tokens: Record<string, string> = {};

async function egress(path: string, user?: string): Promise<number> {
  const res = await fetch(`${gw.egress}${path}`, {
    headers: user ? { authorization: `Bearer ${tokens[user]}` } : {},
  });
  await res.body?.cancel();
  return res.status;
}

const read = () => scrape(`${metricsUrl}/metrics`, TOKEN);

beforeAll(async () => {
  const metricsPort = await freePort();
  metricsUrl = `http://127.0.0.1:${metricsPort}`;
  gw = await startGatewayProcess({
    yaml: (p) =>
      `${devGatewayYaml(p)}telemetry:\n  metrics:\n    address: 127.0.0.1:${metricsPort}\n    token_file: metrics.token\n`,
    // The token file sits beside the config (relative paths resolve against the config's directory).
    wait: false,
  });
  await writeFile(join(gw.dir, 'metrics.token'), `${TOKEN}\n`, { mode: 0o600 });
  await waitFor(() => gw.output().includes('chaperone is up'), { what: 'chaperone up', timeoutMs: 90_000 });
  for (const u of ['alice', 'bob', 'carol']) tokens[u] = await devToken(gw, u);
}, 120_000);

afterAll(async () => {
  await gw?.cleanup();
});

describe('the metrics listener', () => {
  it('refuses a scraper without the token, or with another one', async () => {
    const none = await fetch(`${metricsUrl}/metrics`);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ error: 'unauthenticated' });
    const wrong = await fetch(`${metricsUrl}/metrics`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ error: 'invalid_token' });
    // The HTTP API's routes do not exist here, and /metrics does not exist on the HTTP API.
    expect(
      (await fetch(`${metricsUrl}/status`, { headers: { authorization: `Bearer ${TOKEN}` } })).status,
    ).toBe(404);
    expect((await apiFetch(gw, tokens['carol']!, '/metrics')).status).toBe(404);
  });

  it('serves Prometheus text that moves with real requests through Envoy', async () => {
    const before = await read();
    const allow = { target: 'demo', decision: 'allow' };
    const deny = { target: 'demo', decision: 'deny' };
    expect(await egress('/demo/items', 'alice')).toBe(200);
    expect(await egress('/demo/items', 'alice')).toBe(200);
    expect(await egress('/demo/items', 'bob')).toBe(403);
    expect(await egress('/demo/items')).toBe(401);
    let after: Scrape = before;
    await waitFor(
      async () => {
        after = await read();
        return after.value('chaperone_decisions_total') >= before.value('chaperone_decisions_total') + 4;
      },
      { what: 'four more decisions counted', timeoutMs: 10_000 },
    );
    expect(
      after.value('chaperone_decisions_total', allow) - before.value('chaperone_decisions_total', allow),
    ).toBe(2);
    expect(
      after.value('chaperone_decisions_total', deny) - before.value('chaperone_decisions_total', deny),
    ).toBe(2);
    const reasons = after.get('chaperone_decisions_total')!.metrics.map((m) => m.labels?.['reason_code']);
    // An allow, a policy deny and the deny of the request without a token: three reason codes.
    expect(reasons).toEqual(expect.arrayContaining(['ALLOWED', 'DENIED_BY_POLICY']));
    expect(new Set(reasons).size).toBeGreaterThanOrEqual(3);
    expect(after.types.get('chaperone_check_duration_seconds')).toBe('histogram');
    const count = (s: Scrape) => s.value('chaperone_check_duration_seconds_count', allow);
    expect(count(after)).toBe(count(before) + 2);
    // Every request was answered within the 200 ms ext_authz timeout: all within the 0.2 s bucket.
    const within = (s: Scrape) => s.value('chaperone_check_duration_seconds_bucket', { ...allow, le: '0.2' });
    expect(within(after) - within(before)).toBe(2);
  });

  it('reports the control plane, the policy and the audit pipeline', async () => {
    const s = await read();
    const status = (await (await apiFetch(gw, tokens['carol']!, '/status')).json()) as {
      authz: { policy_revision: string };
    };
    expect(s.value('chaperone_policy_info', { revision: status.authz.policy_revision })).toBe(1);
    expect(s.value('chaperone_policy_reload_failing')).toBe(0);
    for (const type of ['CDS', 'LDS', 'RDS']) {
      expect(s.value('chaperone_xds_pushes_total', { node: 'chaperone-local', type })).toBeGreaterThan(0);
      expect(s.value('chaperone_xds_acks_total', { node: 'chaperone-local', type })).toBeGreaterThan(0);
    }
    expect(s.value('chaperone_xds_nacks_total')).toBe(0);
    expect(s.value('chaperone_xds_streams')).toBe(1);
    for (const name of [
      'chaperone_audit_spool_pending_records',
      'chaperone_audit_shipper_lag_seconds',
      'chaperone_approvals_pending',
      'chaperone_config_restart_required',
      'nodejs_eventloop_lag_seconds',
    ])
      expect(s.get(name), name).toBeDefined();
    await waitFor(async () => (await read()).value('chaperone_audit_shipped_records_total') >= 4, {
      what: 'the decisions shipped to the store',
      timeoutMs: 20_000,
    });
  });

  it('counts an agent token as active once minted', async () => {
    const before = (await read()).value('chaperone_agent_tokens_active');
    const res = await apiFetch(gw, tokens['alice']!, '/oauth/token', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: tokens['alice']!,
        agent_name: 'metrics-test',
      }),
    });
    expect(res.status).toBe(200);
    expect((await read()).value('chaperone_agent_tokens_active')).toBe(before + 1);
  });

  it('never labels a sample with a user, a path or a token', async () => {
    const values = (await read()).labelValues();
    for (const v of values) {
      expect(v).not.toMatch(/alice|bob|carol|\/demo|Bearer|eyJ/);
    }
  });

  it("passes Envoy's own stats through /metrics/envoy", async () => {
    const res = await fetch(`${metricsUrl}/metrics/envoy`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    const envoy = parseScrape(await res.text());
    expect(envoy.value('envoy_cluster_manager_cds_update_success')).toBeGreaterThan(0);
    expect(envoy.get('envoy_http_downstream_rq_total')).toBeDefined();
  });
});
