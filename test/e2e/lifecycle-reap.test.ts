// The next start reaps the previous run's Envoy (issue 14): when a gateway died without stopping its
// Envoy (here: an Envoy started as that gateway would have, recorded in its pid file, holding the
// egress port and the admin socket), `chaperone up` in the same directory finds the record, checks
// through /proc that the pid really is that Envoy, stops it and starts on the same port and socket. A
// record naming any other process — something else that took the pid, or another Envoy — is left alone.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reapRecordedEnvoy, recordOf, writeEnvoyRecord } from '../../gateway/envoy-pid-file.ts';
import { type EnvoyProcess, startEnvoy } from '../../gateway/envoy-process.ts';
import {
  devGatewayYaml,
  devToken,
  type GatewayPorts,
  gatewayPorts,
  startGatewayProcess,
} from '../support/gateway-process.ts';
import { waitFor } from '../support/wait.ts';

let dir: string;
let ports: GatewayPorts;

/** What a killed run leaves: its Envoy on the egress port and admin socket, recorded in the pid file. */
function orphanBootstrap(listenPort: number, adminSocket: string): Record<string, unknown> {
  return {
    admin: { address: { pipe: { path: adminSocket, mode: 0o600 } } },
    static_resources: {
      listeners: [
        {
          name: 'stale',
          address: { socket_address: { address: '127.0.0.1', port_value: listenPort } },
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type':
                      'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                    stat_prefix: 'stale',
                    route_config: {
                      virtual_hosts: [
                        {
                          name: 'all',
                          domains: ['*'],
                          routes: [{ match: { prefix: '/' }, direct_response: { status: 418 } }],
                        },
                      ],
                    },
                    http_filters: [
                      {
                        name: 'envoy.filters.http.router',
                        typed_config: {
                          '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
                        },
                      },
                    ],
                  },
                },
              ],
            },
          ],
        },
      ],
    },
  };
}

async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  return stat !== null && !/^\S+ \(.*\) [ZX] /.test(stat);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chaperone-reap-'));
  ports = await gatewayPorts();
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the previous run’s Envoy', () => {
  it('is stopped by the next `chaperone up`, which then serves on the same port and socket', async () => {
    await writeFile(join(dir, 'chaperone.yaml'), devGatewayYaml(ports));
    const adminSocket = join(dir, 'sockets', 'envoy-admin.sock');
    await mkdir(join(dir, 'sockets'), { recursive: true, mode: 0o700 });
    const orphan: EnvoyProcess = await startEnvoy({
      bootstrap: orphanBootstrap(ports.listener, adminSocket),
      bootstrapPath: join(dir, 'envoy', 'chaperone-local.bootstrap.json'),
      pidFile: join(dir, 'envoy', 'chaperone-local.pid'),
      adminUrl: `unix:${adminSocket}`,
      listenPorts: [ports.listener],
    });
    expect((await fetch(`http://127.0.0.1:${ports.listener}/demo/items`)).status).toBe(418);
    const gw = await startGatewayProcess({ dir, ports });
    try {
      expect(gw.output()).toContain("stopped the previous run's Envoy");
      expect(await orphan.exited).toBe(0); // SIGTERM: Envoy shuts down cleanly
      const res = await fetch(`${gw.egress}/demo/items`, {
        headers: { authorization: `Bearer ${await devToken(gw, 'alice')}` },
      });
      expect(res.status).toBe(200);
    } finally {
      await gw.stop();
    }
  }, 120_000);

  it('is only ever a process the record names: another program on that pid, or another Envoy, is left alone', async () => {
    const pidFile = join(dir, 'other.pid');
    const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      await waitFor(async () => (await alive(sleeper.pid!)) === true, { what: 'sleep to run' });
      // A pid reused by another program (same start time, so only the command line tells it apart).
      await writeEnvoyRecord(pidFile, (await recordOf(sleeper.pid!, join(dir, 'envoy', 'x.json'), 1234))!);
      expect(await reapRecordedEnvoy(pidFile)).toBeNull();
      expect(await alive(sleeper.pid!)).toBe(true);
      // A record from another boot of the pid (the start time differs).
      await writeEnvoyRecord(pidFile, { pid: sleeper.pid!, startTime: '1', bootstrapPath: 'x', baseId: 1 });
      expect(await reapRecordedEnvoy(pidFile)).toBeNull();
      expect(await alive(sleeper.pid!)).toBe(true);
      expect(await readFile(pidFile, 'utf8').catch(() => null)).toBeNull(); // a stale record is dropped
    } finally {
      sleeper.kill('SIGKILL');
    }
    // A real Envoy, but not the one recorded (another bootstrap): not ours to stop.
    const adminSocket = join(dir, 'other-admin.sock');
    const other = await startEnvoy({
      bootstrap: orphanBootstrap(await gatewayPorts().then((p) => p.listener), adminSocket),
      bootstrapPath: join(dir, 'other.bootstrap.json'),
      pidFile: join(dir, 'other-envoy.pid'),
      adminUrl: `unix:${adminSocket}`,
    });
    try {
      const record = JSON.parse(await readFile(join(dir, 'other-envoy.pid'), 'utf8'));
      await writeEnvoyRecord(pidFile, {
        ...record,
        bootstrapPath: join(dir, 'envoy', 'chaperone-local.bootstrap.json'),
      });
      expect(await reapRecordedEnvoy(pidFile)).toBeNull();
      expect(await alive(other.pid)).toBe(true);
      // The record it wrote itself does name it.
      expect(await reapRecordedEnvoy(join(dir, 'other-envoy.pid'))).toBe(other.pid);
      expect(await other.exited).toBe(0);
    } finally {
      await other.stop();
    }
  });
});
