// The ADS server against a second real xDS client: @grpc/grpc-js-xds resolves `xds:///authz-svc` through
// our Listener → RouteConfiguration → Cluster → ClusterLoadAssignment, and the channel follows a
// snapshot change to another backend. A resource the client rejects is NACKed: the NACK is recorded
// with its error detail, not resent, and the last good config keeps serving.
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { HealthImplementation, protoPath } from 'grpc-health-check';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdsServer } from '../../xds/server/ads-server.ts';
import { XdsSnapshot } from '../../xds/server/snapshot.ts';
import { waitFor } from '../support/wait.ts';

const HCM =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

function resources(backendPort: number, opts: { lbPolicy?: string } = {}) {
  return {
    listeners: [
      {
        name: 'authz-svc',
        api_listener: {
          api_listener: {
            '@type': HCM,
            rds: { route_config_name: 'authz-route', config_source: { ads: {}, resource_api_version: 'V3' } },
            http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } }],
          },
        },
      },
    ],
    routes: [
      {
        name: 'authz-route',
        virtual_hosts: [
          {
            name: 'authz',
            domains: ['authz-svc'],
            routes: [{ match: { prefix: '' }, route: { cluster: 'authz-cluster' } }],
          },
        ],
      },
    ],
    clusters: [
      {
        name: 'authz-cluster',
        type: 'EDS',
        eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } },
        lb_policy: opts.lbPolicy ?? 'ROUND_ROBIN',
      },
    ],
    endpoints: [
      {
        cluster_name: 'authz-cluster',
        endpoints: [
          {
            locality: { region: 'local', zone: 'a' },
            load_balancing_weight: 1,
            lb_endpoints: [
              {
                endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: backendPort } } },
              },
            ],
          },
        ],
      },
    ],
  };
}

function snapshot(json: ReturnType<typeof resources>): XdsSnapshot {
  const built = XdsSnapshot.build(json);
  if (!built.ok) throw new Error(JSON.stringify(built.errors));
  return built.snapshot;
}

async function healthBackend(
  status: 'SERVING' | 'NOT_SERVING',
): Promise<{ port: number; server: grpc.Server }> {
  const server = new grpc.Server();
  new HealthImplementation({ '': status }).addToServer(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  return { port, server };
}

let ads: AdsServer;
let xdsServer: grpc.Server;
let serving: { port: number; server: grpc.Server };
let notServing: { port: number; server: grpc.Server };
let client: any;
const nacks: { typeUrl: string; message: string }[] = [];

beforeAll(async () => {
  ads = new AdsServer(pino({ level: 'silent' }));
  ads.on('nack', (n: { typeUrl: string; message: string }) => nacks.push(n));
  xdsServer = new grpc.Server();
  ads.addToServer(xdsServer);
  const xdsPort = await new Promise<number>((resolve, reject) =>
    xdsServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  serving = await healthBackend('SERVING');
  notServing = await healthBackend('NOT_SERVING');
  ads.setSnapshot(snapshot(resources(serving.port)));

  process.env['GRPC_XDS_BOOTSTRAP_CONFIG'] = JSON.stringify({
    xds_servers: [
      {
        server_uri: `127.0.0.1:${xdsPort}`,
        channel_creds: [{ type: 'insecure' }],
        server_features: ['xds_v3'],
      },
    ],
    node: { id: 'grpc-js-xds-client', locality: {} },
  });
  const xds = await import('@grpc/grpc-js-xds');
  xds.register();
  const def = grpc.loadPackageDefinition(loadSync(protoPath, { enums: String })) as any;
  client = new def.grpc.health.v1.Health('xds:///authz-svc', grpc.credentials.createInsecure());
});

afterAll(() => {
  client?.close();
  for (const s of [xdsServer, serving?.server, notServing?.server]) s?.forceShutdown();
  delete process.env['GRPC_XDS_BOOTSTRAP_CONFIG'];
});

function healthCheck(): Promise<string> {
  return new Promise((resolve, reject) =>
    client.Check(
      { service: '' },
      { deadline: Date.now() + 5000 },
      (e: Error | null, r: { status: string }) => (e ? reject(e) : resolve(r.status)),
    ),
  );
}

describe('ADS with @grpc/grpc-js-xds as the client', () => {
  it('resolves xds:///authz-svc through LDS → RDS → CDS → EDS and reaches the backend', async () => {
    expect(await healthCheck()).toBe('SERVING');
    await waitFor(() => ads.currentCount() === 1, { what: 'the client to ACK every type' });
    const [stream] = ads.status().streams;
    expect(stream?.nodeId).toBe('grpc-js-xds-client');
  });

  it('follows a new snapshot to another backend', async () => {
    ads.setSnapshot(snapshot(resources(notServing.port)));
    await waitFor(async () => (await healthCheck()) === 'NOT_SERVING', {
      what: 'the channel to move',
      timeoutMs: 15_000,
    });
    await waitFor(() => ads.currentCount() === 1, { what: 'the ACK of the new version' });
  });

  it('records a NACK with its error detail, does not resend it, and the last good config keeps serving', async () => {
    const before = nacks.length;
    ads.setSnapshot(snapshot(resources(notServing.port, { lbPolicy: 'MAGLEV' })));
    await waitFor(() => nacks.length > before, { what: 'a NACK', timeoutMs: 15_000 });
    const nack = nacks.at(-1)!;
    expect(nack.typeUrl).toContain('Cluster');
    expect(nack.message.length).toBeGreaterThan(0);
    expect(ads.status().streams[0]?.lastNack?.message).toBe(nack.message);
    // The channel keeps working on the last accepted cluster (xDS applies each type on its own).
    expect(await healthCheck()).toBe('NOT_SERVING');
    const count = nacks.length;
    await new Promise((r) => setTimeout(r, 300)); // a resend would arrive and be NACKed again within this window
    expect(nacks.length).toBe(count);
  });
});
