// xDS push latency: time from publishing a changed snapshot to every connected ADS client having
// ACKed it, for N clients × R routes. The clients are raw ADS streams that behave like Envoy (wildcard
// CDS/LDS, RDS by name, ACK every response); they run in this process, so their work counts against
// the figure (a conservative measurement). Target (issue 3): ≤ 1 s at 1,000 routes × 100 clients.
// Both protocol variants: state of the world (`sotw`) and incremental (`delta`).
// Usage: npx tsx bench/xds/run.ts [--clients 1,10,100] [--routes 10,100,1000] [--modes sotw,delta]
import { cpus, totalmem } from 'node:os';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { loadEnvoyProtos, lookup } from '../../lib/envoy-proto.ts';
import { AdsServer } from '../../xds/server/ads-server.ts';
import { TYPE } from '../../xds/server/resource-types.ts';
import { XdsSnapshot } from '../../xds/server/snapshot.ts';

const list = (name: string, def: number[]) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? def : process.argv[i + 1]!.split(',').map(Number);
};
const CLIENTS = list('clients', [1, 10, 100]);
const ROUTES = list('routes', [10, 100, 1000]);
const MODES = (() => {
  const i = process.argv.indexOf('--modes');
  return (i === -1 ? 'sotw,delta' : process.argv[i + 1]!).split(',') as ('sotw' | 'delta')[];
})();
const HCM =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

function snapshot(routes: number, generation: number): XdsSnapshot {
  const built = XdsSnapshot.build({
    clusters: [],
    endpoints: [],
    listeners: [
      {
        name: 'l1',
        address: { socket_address: { address: '127.0.0.1', port_value: 10000 } },
        filter_chains: [
          {
            filters: [
              {
                name: 'envoy.filters.network.http_connection_manager',
                typed_config: {
                  '@type': HCM,
                  stat_prefix: 'l1',
                  rds: { route_config_name: 'r1', config_source: { ads: {}, resource_api_version: 'V3' } },
                  http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } }],
                },
              },
            ],
          },
        ],
      },
    ],
    routes: [
      {
        name: 'r1',
        virtual_hosts: [
          {
            name: 'v',
            domains: ['*'],
            routes: Array.from({ length: routes }, (_, i) => ({
              match: { prefix: `/t${i}/` },
              direct_response: { status: 200, body: { inline_string: `g${generation}-${i}` } },
            })),
          },
        ],
      },
    ],
  });
  if (!built.ok) throw new Error(JSON.stringify(built.errors));
  return built.snapshot;
}

/** One Envoy-like incremental ADS client: wildcard CDS/LDS, RDS by name, ACKs every response. */
function deltaClient(ctor: grpc.ServiceClientConstructor, address: string, id: string): () => void {
  const c = new ctor(address, grpc.credentials.createInsecure());
  const stream = (c as any).DeltaAggregatedResources();
  stream.on('data', (res: { typeUrl: string; nonce: string }) => {
    stream.write({ typeUrl: res.typeUrl, responseNonce: res.nonce });
  });
  stream.on('error', () => undefined);
  stream.write({ node: { id, cluster: 'bench' }, typeUrl: TYPE.cluster });
  stream.write({ typeUrl: TYPE.listener });
  stream.write({ typeUrl: TYPE.route, resourceNamesSubscribe: ['r1'] });
  return () => {
    stream.cancel();
    c.close();
  };
}

/** One Envoy-like ADS client: subscribes, ACKs every response. */
function client(ctor: grpc.ServiceClientConstructor, address: string, id: string): () => void {
  const c = new ctor(address, grpc.credentials.createInsecure());
  const stream = (c as any).StreamAggregatedResources();
  const node = { id, cluster: 'bench' };
  const names: Record<string, string[]> = { [TYPE.route]: ['r1'] };
  stream.on('data', (res: { typeUrl: string; versionInfo: string; nonce: string }) => {
    stream.write({
      typeUrl: res.typeUrl,
      versionInfo: res.versionInfo,
      responseNonce: res.nonce,
      resourceNames: names[res.typeUrl] ?? [],
    });
  });
  stream.on('error', () => undefined);
  stream.write({ node, typeUrl: TYPE.cluster, resourceNames: [] });
  stream.write({ typeUrl: TYPE.listener, resourceNames: [] });
  stream.write({ typeUrl: TYPE.route, resourceNames: ['r1'] });
  return () => {
    stream.cancel();
    c.close();
  };
}

async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setImmediate(r));
  }
  return true;
}

const root = loadEnvoyProtos(['envoy/service/discovery/v3/ads.proto']);
const ctor = lookup<grpc.ServiceClientConstructor>(
  root,
  'envoy.service.discovery.v3.AggregatedDiscoveryService',
);
process.stderr.write(
  `chaperone xDS bench: ${cpus().length} CPUs, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}\n`,
);
const results: string[] = [];
for (const mode of MODES) {
  for (const routes of ROUTES) {
    for (const clients of CLIENTS) {
      const ads = new AdsServer(pino({ level: 'silent' }));
      const server = new grpc.Server();
      ads.addToServer(server);
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
          e ? reject(e) : resolve(p),
        ),
      );
      ads.setSnapshot(snapshot(routes, 1));
      const connect = mode === 'delta' ? deltaClient : client;
      const closers = Array.from({ length: clients }, (_, i) =>
        connect(ctor, `127.0.0.1:${port}`, `node-${i}`),
      );
      await until(() => ads.currentCount() === clients, 60_000);
      // The clock includes building (encoding + validating) the changed snapshot, as a config edit would.
      // Timed by ACK events (each client acknowledging the changed RouteConfiguration), not by polling
      // currentCount(), whose own cost would be part of the figure; currentCount() confirms afterwards.
      const acked = new Set<string>();
      ads.on('ack', (e) => {
        if (e.typeUrl === TYPE.route) acked.add(e.nodeId);
      });
      const started = process.hrtime.bigint();
      ads.setSnapshot(snapshot(routes, 2));
      const ok = (await until(() => acked.size === clients, 60_000)) && ads.currentCount() === clients;
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const line = `| ${mode} | ${routes} | ${clients} | ${ok ? ms.toFixed(1) : 'timeout'} | ${routes === 1000 && clients === 100 ? (ms <= 1000 ? 'met (≤ 1000 ms)' : 'missed (> 1000 ms)') : ''} |`;
      process.stderr.write(`${line}\n`);
      results.push(line);
      for (const close of closers) close();
      server.forceShutdown();
    }
  }
}
process.stdout.write(
  `\n| xDS | routes | clients | change → all ACKed (ms) | target |\n|:--|--:|--:|--:|:--|\n${results.join('\n')}\n`,
);
process.exit(0);
