// Aggregated Discovery Service: serves per-node snapshots over both ADS variants — state of the world
// (sotw-stream.ts) and incremental (delta-stream.ts). A NACKed version is logged with Envoy's
// error_detail, shown in status() and never resent; the client keeps serving its last good config.
import { EventEmitter } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { loadEnvoyProtos, lookup } from '../../lib/envoy-proto.ts';
import { DeltaAdsStream, type DeltaDiscoveryRequest, type DeltaDiscoveryResponse } from './delta-stream.ts';
import type { XdsSnapshot } from './snapshot.ts';
import { type DiscoveryRequest, type DiscoveryResponse, SotwAdsStream } from './sotw-stream.ts';
import type { AdsEvents, StreamHost, StreamStatus, XdsStream } from './stream.ts';

export type { NackRecord, StreamStatus } from './stream.ts';

export class AdsServer extends EventEmitter<AdsEvents> implements StreamHost {
  private defaultSnapshot: XdsSnapshot | null = null;
  private readonly nodeSnapshots = new Map<string, XdsSnapshot>();
  private readonly streams = new Set<XdsStream>();

  constructor(readonly log: Logger) {
    super();
  }

  snapshotFor(nodeId: string): XdsSnapshot | null {
    return this.nodeSnapshots.get(nodeId) ?? this.defaultSnapshot;
  }

  /** Publishes a snapshot for one node, or for every node without its own ('*'). */
  setSnapshot(snapshot: XdsSnapshot, nodeId = '*'): void {
    const previous = nodeId === '*' ? this.defaultSnapshot : this.nodeSnapshots.get(nodeId);
    if (previous?.version === snapshot.version) return; // nothing changed: no push
    if (nodeId === '*') this.defaultSnapshot = snapshot;
    else this.nodeSnapshots.set(nodeId, snapshot);
    for (const s of this.streams) if (nodeId === '*' || s.nodeId === nodeId) s.sync();
  }

  status(): { version: string | null; streams: StreamStatus[] } {
    return {
      version: this.defaultSnapshot?.version ?? null,
      streams: [...this.streams].map((s) => s.status()),
    };
  }

  /** Number of connected streams whose client has acknowledged its current snapshot. */
  currentCount(): number {
    let n = 0;
    for (const s of this.streams) if (s.isCurrent()) n++;
    return n;
  }

  addToServer(server: grpc.Server): void {
    const root = loadEnvoyProtos(['envoy/service/discovery/v3/ads.proto']);
    const ads = lookup<grpc.ServiceClientConstructor>(
      root,
      'envoy.service.discovery.v3.AggregatedDiscoveryService',
    );
    server.addService(ads.service, {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) => {
        const stream = new SotwAdsStream(call, this);
        this.serve(call, stream, (req: DiscoveryRequest) => stream.onRequest(req));
      },
      DeltaAggregatedResources: (
        call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>,
      ) => {
        const stream = new DeltaAdsStream(call, this);
        this.serve(call, stream, (req: DeltaDiscoveryRequest) => stream.onRequest(req));
      },
    });
  }

  private serve<Req>(
    call: grpc.ServerDuplexStream<Req, unknown>,
    stream: XdsStream,
    onRequest: (req: Req) => void,
  ): void {
    this.streams.add(stream);
    const done = () => {
      if (!this.streams.delete(stream)) return;
      stream.close();
      this.log.info({ node: stream.nodeId, stream: stream.id }, 'xds: stream closed');
    };
    call.on('data', (req: Req) => {
      const first = !stream.nodeId;
      try {
        onRequest(req);
      } catch (err) {
        this.log.error({ err: String(err) }, 'xds: request handling failed');
      }
      if (first)
        this.log.info(
          { node: stream.nodeId, stream: stream.id, mode: stream.status().mode },
          'xds: stream opened',
        );
    });
    call.on('end', () => {
      done();
      call.end();
    });
    call.on('error', done);
    call.on('cancelled', done);
  }
}
