// Incremental ADS over real gRPC, driven by a raw client so each response can be inspected: only what
// changed travels, removals are named, a reconnecting client that reports what it holds
// (initial_resource_versions) gets only the difference, and a rejected version is not sent again.
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEnvoyProtos, lookup } from '../../lib/envoy-proto.ts';
import { AdsServer } from '../../xds/server/ads-server.ts';
import { TYPE } from '../../xds/server/resource-types.ts';
import { XdsSnapshot } from '../../xds/server/snapshot.ts';
import { waitFor } from '../support/wait.ts';

interface Response {
  typeUrl: string;
  nonce: string;
  systemVersionInfo: string;
  resources?: { name: string; version: string }[];
  removedResources?: string[];
}

function cluster(name: string, timeout = '1s') {
  return {
    name,
    type: 'STATIC',
    connect_timeout: timeout,
    load_assignment: {
      cluster_name: name,
      endpoints: [
        {
          lb_endpoints: [
            { endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 9 } } } },
          ],
        },
      ],
    },
  };
}

function snapshot(clusters: ReturnType<typeof cluster>[]): XdsSnapshot {
  const built = XdsSnapshot.build({ clusters, endpoints: [], listeners: [], routes: [] });
  if (!built.ok) throw new Error(JSON.stringify(built.errors));
  return built.snapshot;
}

let ads: AdsServer;
let server: grpc.Server;
let address: string;
const ctor = lookup<grpc.ServiceClientConstructor>(
  loadEnvoyProtos(['envoy/service/discovery/v3/ads.proto']),
  'envoy.service.discovery.v3.AggregatedDiscoveryService',
);

/** A delta CDS client that records every response and answers each with an ACK, or a NACK when told. */
function client(initial: Record<string, string> = {}) {
  const c = new ctor(address, grpc.credentials.createInsecure());
  const stream = (
    c as unknown as { DeltaAggregatedResources(): grpc.ClientDuplexStream<unknown, Response> }
  ).DeltaAggregatedResources();
  const responses: Response[] = [];
  let reject = false;
  stream.on('data', (res: Response) => {
    responses.push(res);
    stream.write({
      typeUrl: res.typeUrl,
      responseNonce: res.nonce,
      ...(reject ? { errorDetail: { code: 3, message: 'rejected by the test' } } : {}),
    });
  });
  stream.on('error', () => undefined);
  stream.write({ node: { id: 'delta-1' }, typeUrl: TYPE.cluster, initialResourceVersions: initial });
  return {
    responses,
    rejectNext: (on: boolean) => {
      reject = on;
    },
    close: () => {
      stream.cancel();
      c.close();
    },
  };
}

const names = (r: Response | undefined) => (r?.resources ?? []).map((x) => x.name).sort();

beforeAll(async () => {
  ads = new AdsServer(pino({ level: 'silent' }));
  server = new grpc.Server();
  ads.addToServer(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  address = `127.0.0.1:${port}`;
});

afterAll(() => {
  server?.forceShutdown();
});

describe('incremental ADS', () => {
  it('sends everything first, then only what changed, and names what went away', async () => {
    ads.setSnapshot(snapshot([cluster('a'), cluster('b'), cluster('c')]));
    const cl = client();
    try {
      await waitFor(() => cl.responses.length === 1 && ads.currentCount() === 1, {
        what: 'the first response',
      });
      expect(names(cl.responses[0])).toEqual(['a', 'b', 'c']);

      ads.setSnapshot(snapshot([cluster('a'), cluster('b', '2s'), cluster('c')]));
      await waitFor(() => cl.responses.length === 2, { what: 'the change' });
      expect(names(cl.responses[1])).toEqual(['b']);
      expect(cl.responses[1]!.removedResources ?? []).toEqual([]);

      ads.setSnapshot(snapshot([cluster('a'), cluster('b', '2s')]));
      await waitFor(() => cl.responses.length === 3, { what: 'the removal' });
      expect(names(cl.responses[2])).toEqual([]);
      expect(cl.responses[2]!.removedResources).toEqual(['c']);
      await waitFor(() => ads.currentCount() === 1, { what: 'the client to be current' });
    } finally {
      cl.close();
    }
  });

  it('gives a reconnecting client only the difference from what it reports holding', async () => {
    // What the first client holds now: a and b (versions from the last test's responses).
    const held = new Map<string, string>();
    const first = client();
    await waitFor(() => first.responses.length === 1, { what: 'a fresh full response' });
    for (const r of first.responses[0]!.resources ?? []) held.set(r.name, r.version);
    first.close();
    await waitFor(() => ads.status().streams.length === 0, { what: 'the first stream to close' });

    // While it was away: a unchanged, b changed, d added; it also reports a stale resource e.
    ads.setSnapshot(snapshot([cluster('a'), cluster('b', '3s'), cluster('d')]));
    const again = client({ ...Object.fromEntries(held), e: 'stale' });
    try {
      await waitFor(() => again.responses.length >= 1 && ads.currentCount() === 1, { what: 'the resync' });
      const all = again.responses.flatMap((r) => (r.resources ?? []).map((x) => x.name)).sort();
      const removed = again.responses.flatMap((r) => r.removedResources ?? []);
      expect(all).toEqual(['b', 'd']);
      expect(removed).toEqual(['e']);
    } finally {
      again.close();
    }
  });

  it('does not resend a rejected version; the next good one is sent', async () => {
    const cl = client();
    try {
      await waitFor(() => cl.responses.length === 1 && ads.currentCount() === 1, {
        what: 'the first response',
      });
      cl.rejectNext(true);
      ads.setSnapshot(snapshot([cluster('a', '9s'), cluster('b', '3s'), cluster('d')]));
      await waitFor(() => ads.status().streams[0]?.lastNack !== null, { what: 'the NACK' });
      expect(ads.status().streams[0]?.lastNack?.message).toBe('rejected by the test');
      cl.rejectNext(false);
      const count = cl.responses.length;
      // Another change elsewhere: the rejected version of a is not part of the next response.
      ads.setSnapshot(snapshot([cluster('a', '9s'), cluster('b', '4s'), cluster('d')]));
      await waitFor(() => cl.responses.length > count, { what: 'the next response' });
      expect(names(cl.responses.at(-1))).toEqual(['b']);
      // A new version of a is sent again.
      ads.setSnapshot(snapshot([cluster('a', '8s'), cluster('b', '4s'), cluster('d')]));
      await waitFor(() => names(cl.responses.at(-1)).includes('a'), { what: 'the new version of a' });
      await waitFor(() => ads.currentCount() === 1, { what: 'the client to be current' });
    } finally {
      cl.close();
    }
  });
});
