// The ADS server with a real Envoy: Envoy takes listeners and routes from it (visible in /config_dump),
// serves them, follows a change, and a config Envoy rejects (a regex RE2 refuses) is NACKed — recorded
// with Envoy's error detail — while the last good config keeps serving.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EnvoyProcess, startEnvoy } from '../../gateway/envoy-process.ts';
import { envoyBootstrap } from '../../xds/bootstrap.ts';
import { AdsServer } from '../../xds/server/ads-server.ts';
import { XdsSnapshot } from '../../xds/server/snapshot.ts';
import { freePort } from '../support/ports.ts';
import { waitFor } from '../support/wait.ts';

const HCM =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

function listener(name: string, port: number) {
  return {
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: port } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': HCM,
              stat_prefix: name,
              rds: { route_config_name: 'r1', config_source: { ads: {}, resource_api_version: 'V3' } },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } }],
            },
          },
        ],
      },
    ],
  };
}

function snapshot(listenPort: number, body: string, regex?: string, extraPort?: number): XdsSnapshot {
  const built = XdsSnapshot.build({
    clusters: [],
    endpoints: [],
    listeners: [listener('l1', listenPort), ...(extraPort ? [listener('l2', extraPort)] : [])],
    routes: [
      {
        name: 'r1',
        virtual_hosts: [
          {
            name: 'v',
            domains: ['*'],
            routes: [
              {
                match: regex ? { safe_regex: { regex } } : { prefix: '/' },
                direct_response: { status: 200, body: { inline_string: body } },
              },
            ],
          },
        ],
      },
    ],
  });
  if (!built.ok) throw new Error(JSON.stringify(built.errors));
  return built.snapshot;
}

for (const mode of ['sotw', 'delta'] as const) {
  describe(`ADS with a real Envoy (${mode === 'delta' ? 'incremental' : 'state of the world'})`, () => {
    let ads: AdsServer;
    let server: grpc.Server;
    let envoy: EnvoyProcess;
    let dir: string;
    let listenPort: number;
    let adminPort: number;
    const nacks: { typeUrl: string; message: string }[] = [];

    const get = async (port = listenPort) => {
      try {
        // A fresh connection each time: a kept-alive one to a removed (draining) listener still answers.
        return await (await fetch(`http://127.0.0.1:${port}/`, { headers: { connection: 'close' } })).text();
      } catch {
        return null;
      }
    };

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'chaperone-xds-envoy-'));
      ads = new AdsServer(pino({ level: 'silent' }));
      ads.on('nack', (n: { typeUrl: string; message: string }) => nacks.push(n));
      server = new grpc.Server();
      ads.addToServer(server);
      const xdsPort = await new Promise<number>((resolve, reject) =>
        server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
          e ? reject(e) : resolve(p),
        ),
      );
      listenPort = await freePort();
      adminPort = await freePort();
      ads.setSnapshot(snapshot(listenPort, 'one'));
      envoy = await startEnvoy({
        bootstrap: envoyBootstrap({
          nodeId: 'edge-1',
          xdsAddress: `127.0.0.1:${xdsPort}`,
          adminPort,
          delta: mode === 'delta',
        }),
        bootstrapPath: join(dir, 'bootstrap.json'),
        adminUrl: `http://127.0.0.1:${adminPort}`,
        listenPorts: [listenPort],
      });
    });

    afterAll(async () => {
      await envoy?.stop();
      server?.forceShutdown();
      await rm(dir, { recursive: true, force: true });
    });

    it('serves what the control plane published, visible in /config_dump', async () => {
      await waitFor(async () => (await get()) === 'one', { what: 'the first config' });
      const dump = await (await fetch(`http://127.0.0.1:${adminPort}/config_dump`)).text();
      expect(dump).toContain('"route_config_name": "r1"');
      expect(dump).toContain('"inline_string": "one"');
      expect(ads.status().streams[0]?.mode).toBe(mode);
      await waitFor(() => ads.currentCount() === 1, { what: 'the stream to be current' });
    });

    it('follows a change within a second', async () => {
      const started = Date.now();
      ads.setSnapshot(snapshot(listenPort, 'two'));
      await waitFor(async () => (await get()) === 'two', { what: 'the change', intervalMs: 10 });
      expect(Date.now() - started).toBeLessThan(1_000);
    });

    it('adds a listener, then removes it when a change drops it', async () => {
      const extra = await freePort();
      ads.setSnapshot(snapshot(listenPort, 'two', undefined, extra));
      await waitFor(async () => (await get(extra)) === 'two', { what: 'the second listener' });
      ads.setSnapshot(snapshot(listenPort, 'two'));
      await waitFor(async () => (await get(extra)) === null, { what: 'the second listener to go' });
      expect(await get()).toBe('two');
      await waitFor(() => ads.currentCount() === 1, { what: 'the stream to be current' });
    });

    it('records the NACK of a config Envoy rejects and keeps serving the last good one', async () => {
      ads.setSnapshot(snapshot(listenPort, 'three', '(unclosed'));
      await waitFor(() => nacks.length > 0, { what: "Envoy's NACK" });
      expect(nacks[0]!.typeUrl).toContain('RouteConfiguration');
      expect(nacks[0]!.message.length).toBeGreaterThan(0);
      expect(ads.status().streams[0]?.lastNack?.message).toBe(nacks[0]!.message);
      expect(await get()).toBe('two');
      // A rejected config is not current; the next good one is served and acknowledged.
      expect(ads.currentCount()).toBe(0);
      ads.setSnapshot(snapshot(listenPort, 'four'));
      await waitFor(async () => (await get()) === 'four', { what: 'the next good config' });
      await waitFor(() => ads.currentCount() === 1, { what: 'the stream to be current again' });
    });
  });
}
