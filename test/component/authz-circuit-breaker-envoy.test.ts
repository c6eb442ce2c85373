// The authz cluster's circuit breaker (`authz.max_outstanding`) in a real Envoy 1.40 running exactly what
// our translator generates (config → IR → resources, inlined as a static bootstrap): while the admitted
// Checks are held on a slow disk, a burst beyond the bound comes back at once as Envoy's own 503 — an
// ext_authz error (ERR_AUTHZ_UNAVAILABLE), counted as a circuit-breaker overflow, never sent to the
// authz server — and the held requests go through once the disk is released.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpoolRecorder } from '../../audit/recorder.ts';
import { type AuthzServer, startAuthzServer } from '../../authz-server/server.ts';
import { AUTHZ_CLUSTER } from '../../xds/ir/build-ir.ts';
import type { RunningEnvoy } from '../support/envoy.ts';
import { openSlowDiskSpool, type SlowDiskSpool } from '../support/slow-disk.ts';
import { startTranslatedEnvoy } from '../support/translated-envoy.ts';
import { type EchoUpstream, startEchoUpstream } from '../support/upstream.ts';
import { waitFor } from '../support/wait.ts';

/** The schema's smallest bound: what Envoy keeps outstanding to the one authz address. */
const BOUND = 16;
const BURST = 48;

describe('the authz circuit breaker through Envoy', () => {
  let dir: string;
  let upstream: EchoUpstream;
  let authz: AuthzServer;
  let envoy: RunningEnvoy;
  let disk: SlowDiskSpool;
  let base: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'chaperone-breaker-'));
    await writeFile(join(dir, 'p.rego'), 'package t\n\ndecision := input.parsed_path[0] == "demo"\n');
    disk = await openSlowDiskSpool(join(dir, 'spool'));
    upstream = await startEchoUpstream();
    authz = await startAuthzServer({
      address: `unix:${join(dir, 'authz.sock')}`,
      // The server admits the whole burst and never sheds by lag: whatever is refused, Envoy refused.
      maxInFlight: BURST * 2,
      maxLagMs: 0,
      policy: { dir, entrypoint: 't/decision' },
      logger: pino({ level: 'silent' }),
      recorder: new SpoolRecorder(disk.spool),
    });
    // `max_request_bytes: 8 MiB` gives the route's Checks Envoy's longest deadline (4.5 s), so the held
    // ones outlast a slow machine instead of timing out before the test releases them.
    ({ envoy, base } = await startTranslatedEnvoy(dir, {
      targets: `  - name: demo
    upstream: http://127.0.0.1:${upstream.port}
    match: { path_prefix: /demo }
    max_request_bytes: 8388608`,
      authz: `  max_outstanding: ${BOUND}`,
    }));
  }, 60_000);

  afterAll(async () => {
    disk?.release();
    await envoy?.close();
    await authz?.close();
    await disk?.spool.close();
    await upstream?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function stats(): Promise<Record<string, number>> {
    const res = await fetch(`${envoy.adminUrl}/stats?format=json`);
    const { stats } = (await res.json()) as { stats: { name: string; value?: number }[] };
    return Object.fromEntries(stats.filter((s) => s.value !== undefined).map((s) => [s.name, s.value!]));
  }

  it('translates the bound into the authz cluster Envoy runs', async () => {
    const res = await fetch(`${envoy.adminUrl}/config_dump?resource=static_clusters`);
    const dump = (await res.json()) as { configs: { cluster: Record<string, any> }[] };
    const cluster = dump.configs.map((c) => c.cluster).find((c) => c['name'] === AUTHZ_CLUSTER);
    expect(cluster?.['circuit_breakers']).toEqual({
      thresholds: [
        {
          max_pending_requests: BOUND,
          max_requests: BOUND,
          max_retries: 0,
          track_remaining: true,
        },
      ],
    });
  });

  it('fails the Checks past the bound at once, without sending them, and serves the held ones', async () => {
    expect((await fetch(`${base}/demo/items`)).status).toBe(200);
    const before = await stats();
    const decidedBefore = authz.metrics.total;
    disk.hold();
    const answers: { status: number; body: string; retryAfter: string | null }[] = [];
    const burst = Array.from({ length: BURST }, () =>
      fetch(`${base}/demo/items`).then(async (res) => {
        answers.push({
          status: res.status,
          body: await res.text(),
          retryAfter: res.headers.get('retry-after'),
        });
      }),
    );
    // The excess is answered while the admitted Checks are still held on the disk: Envoy did not wait
    // for the authz server to refuse them, and the server holds exactly the bound.
    await waitFor(() => answers.length >= BURST - BOUND && authz.admission.stats().inFlight === BOUND, {
      what: 'the refused requests while the admitted ones are held',
    });
    expect(answers).toHaveLength(BURST - BOUND);
    expect(authz.admission.stats()).toMatchObject({ inFlight: BOUND, shed: 0 });
    const held = await stats();
    disk.release();
    await Promise.all(burst);

    // Envoy's own 503 for an ext_authz error, with the code its local reply gives it (no decision was
    // made, so no decision id).
    const refused = answers.filter((a) => a.status === 503);
    expect(refused).toHaveLength(BURST - BOUND);
    for (const a of refused) {
      expect(JSON.parse(a.body)).toMatchObject({ error: 'ERR_AUTHZ_UNAVAILABLE' });
      expect(a.body).not.toContain('decision_id');
      expect(a.retryAfter).toBe('1');
    }
    expect(answers.filter((a) => a.status === 200)).toHaveLength(BOUND);

    const moved = (name: string, at = held) => (at[name] ?? 0) - (before[name] ?? 0);
    // Since Envoy 1.38 the requests bound counts `upstream_rq_active_overflow`, the pending bound
    // `upstream_rq_pending_overflow` (a Check waiting for a connection); together: every refusal.
    const overflowed =
      moved(`cluster.${AUTHZ_CLUSTER}.upstream_rq_active_overflow`) +
      moved(`cluster.${AUTHZ_CLUSTER}.upstream_rq_pending_overflow`);
    expect(overflowed).toBe(BURST - BOUND);
    expect(moved('http.egress.ext_authz.error', held)).toBe(BURST - BOUND);
    // Not timeouts, not denies: the refusals never reached the authz server.
    expect(moved(`cluster.${AUTHZ_CLUSTER}.upstream_rq_timeout`, await stats())).toBe(0);
    expect(moved('http.egress.ext_authz.denied', await stats())).toBe(0);
    expect(authz.metrics.total - decidedBefore).toBe(BOUND);
    // While the bound was reached, Envoy said so: no room left.
    expect(held[`cluster.${AUTHZ_CLUSTER}.circuit_breakers.default.rq_open`]).toBe(1);
    expect(held[`cluster.${AUTHZ_CLUSTER}.circuit_breakers.default.remaining_rq`]).toBe(0);

    // Recovered: the next requests pass.
    const after = await Promise.all(Array.from({ length: BOUND }, () => fetch(`${base}/demo/items`)));
    expect(after.map((r) => r.status)).toEqual(Array(BOUND).fill(200));
  });
});
