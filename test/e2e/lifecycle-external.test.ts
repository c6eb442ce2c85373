// `chaperone up --envoy external`: the gateway serves xDS, ext_authz, ext_proc and the access logs to an
// Envoy that something else runs (systemd, Kubernetes) from `chaperone envoy bootstrap --config`. Here the
// data plane is on TCP, so the printed bootstrap carries the mutual-TLS certificate files the gateway
// keeps; `/readyz` is false until that Envoy holds an ADS stream, and traffic then flows through it.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EnvoyProcess, startEnvoy } from '../../gateway/envoy-process.ts';
import { runCli } from '../support/cli.ts';
import {
  devToken,
  type GatewayProcess,
  startGatewayProcess,
  tcpGatewayYaml,
} from '../support/gateway-process.ts';
import { waitFor } from '../support/wait.ts';

let gw: GatewayProcess;
let envoy: EnvoyProcess | null = null;

beforeAll(async () => {
  gw = await startGatewayProcess({ yaml: tcpGatewayYaml, args: ['--envoy', 'external'] });
}, 120_000);

afterAll(async () => {
  await envoy?.stop();
  await gw?.cleanup();
});

describe('chaperone up --envoy external', () => {
  it('starts no Envoy, says where one must connect, and is not ready without one', async () => {
    expect(gw.output()).toMatch(
      /✓ envoy\s+external: Envoys connect to 127\.0\.0\.1:\d+ \(bootstrap: chaperone envoy bootstrap/,
    );
    expect((await fetch(`${gw.api}/readyz`)).status).toBe(503);
    expect(await fetch(gw.egress).catch(() => null)).toBeNull(); // nobody on the egress port
  });

  it('serves an Envoy started from `chaperone envoy bootstrap --config`, over mutual TLS', async () => {
    const printed = await runCli(['envoy', 'bootstrap', '--node-id', 'edge-ext', '--config', gw.configPath]);
    expect(printed.code, printed.out).toBe(0);
    expect(printed.out).toContain(`path: ${join(gw.dir, 'pki', 'envoy', 'client-certificate.sds.json')}`);
    expect(printed.out).toContain(`port_value: ${gw.ports.xds}`);
    const admin = join(gw.dir, 'sockets', 'envoy-admin.sock');
    expect(printed.out).toContain(`path: ${admin}`);
    envoy = await startEnvoy({
      bootstrap: printed.out,
      bootstrapPath: join(gw.dir, 'external-envoy.yaml'),
      adminUrl: `unix:${admin}`,
      listenPorts: [gw.ports.listener],
    });
    await waitFor(async () => (await fetch(`${gw.api}/readyz`)).status === 200, {
      what: 'readyz with the external Envoy on ADS',
      timeoutMs: 15_000,
    });
    const res = await fetch(`${gw.egress}/demo/items`, {
      headers: { authorization: `Bearer ${await devToken(gw, 'alice')}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-chaperone-decision-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});
