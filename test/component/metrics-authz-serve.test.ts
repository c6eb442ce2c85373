// `chaperone authz serve --metrics-addr` as it runs beside an Envoy it does not manage: the real CLI in
// a child process, Checks over real gRPC, its /metrics scraped and parsed. Off loopback, a token file is
// required (exit 2 otherwise).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthzClient, authzClient } from '../support/authz-client.ts';
import { type AuthzServeProcess, runCli, startAuthzServe } from '../support/cli.ts';
import { freePort } from '../support/ports.ts';
import { scrape } from '../support/prometheus.ts';

let serve: AuthzServeProcess;
let client: AuthzClient;
let metricsUrl: string;
let dir = '';

beforeAll(async () => {
  const metricsPort = await freePort();
  metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  // The data-plane default: a Unix socket only this user can open.
  dir = await mkdtemp(join(tmpdir(), 'chaperone-metrics-'));
  const socket = `unix:${join(dir, 'authz.sock')}`;
  serve = startAuthzServe(socket, ['--metrics-addr', `127.0.0.1:${metricsPort}`]);
  await serve.ready();
  client = authzClient(socket);
}, 150_000);

afterAll(async () => {
  client?.close();
  serve?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('chaperone authz serve --metrics-addr', () => {
  it('counts its decisions and shows its policy revision', async () => {
    const before = await scrape(metricsUrl);
    const res = await client.check({
      path: '/demo/items',
      contextExtensions: { route_id: 'demo/0', target: 'demo' },
    });
    expect(res.status.code).not.toBe(0); // no token: denied
    const after = await scrape(metricsUrl);
    const denies = (s: typeof after) => s.value('chaperone_decisions_total', { decision: 'deny' });
    expect(denies(after)).toBe(denies(before) + 1);
    expect(after.get('chaperone_policy_info')?.metrics[0]?.labels?.['revision']).toMatch(/^[0-9a-f]{16}$/);
    expect(after.value('chaperone_check_duration_seconds_count')).toBe(
      before.value('chaperone_check_duration_seconds_count') + 1,
    );
    // The gateway's own families are not here: this process runs no control plane.
    expect(after.get('chaperone_xds_streams')).toBeUndefined();
  });

  it('refuses a metrics address off loopback without a token file (exit 2)', async () => {
    const { code, out } = await runCli(
      ['authz', 'serve', '--addr', `unix:${join(dir, 'refused.sock')}`, '--metrics-addr', '0.0.0.0:0'],
      { timeoutMs: 60_000 },
    );
    expect(code).toBe(2);
    expect(out).toContain('--metrics-addr is not a loopback address: give --metrics-token-file too');
  });
});
