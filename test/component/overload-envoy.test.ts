// Overload as a client of a real Envoy 1.40 sees it: a burst beyond what the authz server admits comes
// back at once as 503 with the ERR_OVERLOADED body and `retry-after` — Envoy counts them as ext_authz
// denies, not errors or timeouts — while the admitted requests (held on a slow disk in their durable
// append) go through once it catches up; the next requests are served normally.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpoolRecorder } from '../../audit/recorder.ts';
import { type AuthzServer, startAuthzServer } from '../../authz-server/server.ts';
import { PROJECT_ROOT } from '../../lib/tools.ts';
import { type RunningEnvoy, renderTemplate, startEnvoy } from '../support/envoy.ts';
import { freePort } from '../support/ports.ts';
import { openSlowDiskSpool, type SlowDiskSpool } from '../support/slow-disk.ts';
import { type EchoUpstream, startEchoUpstream } from '../support/upstream.ts';
import { waitFor } from '../support/wait.ts';

const MAX_IN_FLIGHT = 4;
const BURST = 40;

describe.each(['grpc-js', 'http2'] as const)('overload through Envoy (%s transport)', (transport) => {
  let dir: string;
  let upstream: EchoUpstream;
  let authz: AuthzServer;
  let envoy: RunningEnvoy;
  let disk: SlowDiskSpool;
  let base: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'chaperone-overload-envoy-'));
    await writeFile(join(dir, 'p.rego'), 'package t\n\ndecision := input.parsed_path[0] == "demo"\n');
    disk = await openSlowDiskSpool(join(dir, 'spool'));
    upstream = await startEchoUpstream();
    authz = await startAuthzServer({
      address: '127.0.0.1:0',
      transport,
      maxInFlight: MAX_IN_FLIGHT,
      maxLagMs: 0, // the in-flight bound alone: a busy test machine must not shed by lag
      policy: { dir, entrypoint: 't/decision' },
      logger: pino({ level: 'silent' }),
      recorder: new SpoolRecorder(disk.spool),
    });
    const listenPort = await freePort();
    const adminPort = await freePort();
    const template = await readFile(join(PROJECT_ROOT, 'envoy/bootstrap-static.yaml'), 'utf8');
    envoy = await startEnvoy({
      bootstrapYaml: renderTemplate(template, {
        LISTEN_PORT: listenPort,
        ADMIN_PORT: adminPort,
        AUTHZ_PORT: authz.port,
        UPSTREAM_PORT: upstream.port,
      }),
      adminPort,
      listenPorts: [listenPort],
    });
    base = `http://127.0.0.1:${listenPort}`;
  }, 60_000);

  afterAll(async () => {
    disk?.release();
    await envoy?.close();
    await authz?.close();
    await disk?.spool.close();
    await upstream?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function counter(suffix: string): Promise<number> {
    const res = await fetch(`${envoy.adminUrl}/stats?format=json`);
    const { stats } = (await res.json()) as { stats: { name: string; value?: number }[] };
    return stats.filter((s) => s.name === `http.egress.${suffix}`).reduce((n, s) => n + (s.value ?? 0), 0);
  }

  it('sheds the excess at once with 503 ERR_OVERLOADED and serves the rest', async () => {
    expect((await fetch(`${base}/demo/items`)).status).toBe(200);
    const denied = await counter('ext_authz.denied');
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
    // The excess is answered while the admitted requests are still held on the disk.
    await waitFor(() => answers.length >= BURST - MAX_IN_FLIGHT, { what: 'the shed requests' });
    disk.release();
    await Promise.all(burst);
    const shed = answers.filter((a) => a.status === 503);
    expect(shed).toHaveLength(BURST - MAX_IN_FLIGHT);
    for (const a of shed) {
      expect(JSON.parse(a.body)).toEqual({
        error: 'ERR_OVERLOADED',
        reason: 'the gateway is over capacity; retry shortly',
      });
      expect(a.retryAfter).toBe('1');
    }
    expect(answers.filter((a) => a.status === 200)).toHaveLength(MAX_IN_FLIGHT);
    // Envoy saw answers, not failures: denies from the authz server, no ext_authz error or timeout.
    expect((await counter('ext_authz.denied')) - denied).toBe(BURST - MAX_IN_FLIGHT);
    expect(await counter('ext_authz.error')).toBe(0);
    // Recovered: the next requests pass.
    const after = await Promise.all(Array.from({ length: MAX_IN_FLIGHT }, () => fetch(`${base}/demo/items`)));
    expect(after.map((r) => r.status)).toEqual(Array(MAX_IN_FLIGHT).fill(200));
  });
});
