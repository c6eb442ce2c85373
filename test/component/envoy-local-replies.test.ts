// Envoy's own answers, in a real Envoy 1.40 running what our translator generates: with no authz server
// to ask, the fail-closed 503 carries ERR_AUTHZ_UNAVAILABLE in JSON with `retry-after`; once the server
// answers, every one of its answers keeps its own body — the shed ERR_OVERLOADED (no decision id) and a
// 503 ERR_CREDENTIAL_UNAVAILABLE decision alike — and an upstream's failure keeps Envoy's text.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpoolRecorder } from '../../audit/recorder.ts';
import { type AuthzServer, startAuthzServer } from '../../authz-server/server.ts';
import { AUTHZ_CLUSTER } from '../../xds/ir/build-ir.ts';
import type { RunningEnvoy } from '../support/envoy.ts';
import { freePort } from '../support/ports.ts';
import { openSlowDiskSpool, type SlowDiskSpool } from '../support/slow-disk.ts';
import { startTranslatedEnvoy } from '../support/translated-envoy.ts';
import { type EchoUpstream, startEchoUpstream } from '../support/upstream.ts';
import { waitFor } from '../support/wait.ts';

interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

describe("Envoy's own answers carry a Chaperone code; the authz server's keep theirs", () => {
  let dir: string;
  let upstream: EchoUpstream;
  let authz: AuthzServer | undefined;
  let envoy: RunningEnvoy;
  let disk: SlowDiskSpool;
  let base: string;
  let authzAddress: string;

  const get = async (path: string): Promise<Answer> => {
    const res = await fetch(`${base}${path}`);
    return { status: res.status, headers: res.headers, text: await res.text() };
  };

  async function stat(name: string): Promise<number> {
    const res = await fetch(`${envoy.adminUrl}/stats?format=json&filter=${encodeURIComponent(`^${name}$`)}`);
    const { stats } = (await res.json()) as { stats: { name: string; value?: number }[] };
    return stats.find((s) => s.name === name)?.value ?? 0;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'chaperone-local-replies-'));
    await writeFile(
      join(dir, 'p.rego'),
      `package t

default decision := true

decision := false if input.parsed_path[1] == "forbidden"

decision := {"allowed": false, "http_status": 503, "body": "closed by policy"} if input.parsed_path[1] == "closed"

decision := {"allowed": false, "http_status": 413, "body": "too much by policy"} if input.parsed_path[1] == "much"
`,
    );
    disk = await openSlowDiskSpool(join(dir, 'spool'));
    upstream = await startEchoUpstream();
    const closedPort = await freePort();
    ({ envoy, base, authzAddress } = await startTranslatedEnvoy(dir, {
      targets: `  - name: demo
    upstream: http://127.0.0.1:${upstream.port}
    match: { path_prefix: /demo }
  - name: down
    upstream: http://127.0.0.1:${closedPort}
    match: { path_prefix: /down }
  - name: keyed
    upstream: http://127.0.0.1:${upstream.port}
    match: { path_prefix: /keyed }
    credentials:
      - { header: authorization, value: "env:CHAPERONE_TEST_UNSET_SECRET", format: "Bearer {}" }`,
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

  it('answers 503 ERR_AUTHZ_UNAVAILABLE in JSON, with retry-after, when no authz server answers', async () => {
    const errorsBefore = await stat('http.egress.ext_authz.error');
    const a = await get('/demo/items');
    expect(a.status).toBe(503);
    expect(a.headers.get('content-type')).toBe('application/json');
    expect(a.headers.get('retry-after')).toBe('1');
    const body = JSON.parse(a.text) as Record<string, unknown>;
    expect(body).toEqual({
      error: 'ERR_AUTHZ_UNAVAILABLE',
      reason: 'no authorization decision could be made; retry shortly',
      request_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
    });
    expect(body).not.toHaveProperty('decision_id');
    expect(await stat('http.egress.ext_authz.error')).toBe(errorsBefore + 1);
    expect(await stat(`cluster.${AUTHZ_CLUSTER}.upstream_cx_connect_fail`)).toBeGreaterThan(0);
    expect(upstream.requests).toHaveLength(0);
  });

  it("keeps every answer of the authz server and an upstream's failure as they were", async () => {
    authz = await startAuthzServer({
      address: authzAddress,
      maxInFlight: 1,
      maxLagMs: 0,
      policy: { dir, entrypoint: 't/decision' },
      credentials: { keyed: [{ header: 'authorization', value: 'env:CHAPERONE_TEST_UNSET_SECRET' }] },
      logger: pino({ level: 'silent' }),
      recorder: new SpoolRecorder(disk.spool),
    });
    await waitFor(async () => (await get('/demo/items')).status === 200, {
      what: 'Envoy reaching the authz server',
    });

    // A decision of 503: the server's body, with its decision id, not Envoy's.
    const keyed = await get('/keyed/x');
    expect(keyed.status).toBe(503);
    expect(JSON.parse(keyed.text)).toEqual({
      error: 'ERR_CREDENTIAL_UNAVAILABLE',
      reason: 'upstream credential is unavailable',
      decision_id: expect.any(String),
    });
    expect(keyed.headers.get('retry-after')).toBeNull();

    // A policy's denies, whatever their status, keep the policy's body.
    expect((await get('/demo/forbidden')).status).toBe(403);
    const closed = await get('/demo/closed');
    expect([closed.status, closed.text]).toEqual([503, 'closed by policy']);
    expect(closed.headers.get('retry-after')).toBeNull();
    const much = await get('/demo/much');
    expect([much.status, much.text]).toEqual([413, 'too much by policy']);

    // The upstream is down: Envoy's router answers 503 after an allow, and its text is left alone.
    const down = await get('/down/x');
    expect(down.status).toBe(503);
    expect(down.text).toMatch(/^upstream connect error/);
    expect(down.headers.get('retry-after')).toBeNull();

    // Shed by the server (no decision id, but its reason code in the metadata): its own body.
    disk.hold();
    const held = get('/demo/held');
    await waitFor(() => authz!.admission.stats().inFlight === 1, { what: 'the held allow' });
    const shed = await get('/demo/shed');
    disk.release();
    expect(shed.status).toBe(503);
    expect(JSON.parse(shed.text)).toEqual({
      error: 'ERR_OVERLOADED',
      reason: 'the gateway is over capacity; retry shortly',
    });
    expect(shed.headers.get('retry-after')).toBe('1');
    expect((await held).status).toBe(200);
  });
});
