// gRPC Access Log Service (envoy.service.accesslog.v3): Envoy streams an entry per request; we keep
// the request-outcome fields and the ext_authz dynamic metadata (decision id, policy revision) so
// entries join the authz decisions. Envoy's ALS is lossy by design (it drops when its buffer is full);
// decisions recorded by the authz server are the primary audit record, these are the outcome record.
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { loadEnvoyProtos, lookup } from '../lib/envoy-proto.ts';
import { fromStruct } from '../lib/proto-struct.ts';

export interface AccessLogEntry {
  requestId: string;
  decisionId: string | null;
  policyRevision: string | null;
  time: Date;
  nodeId: string;
  route: string;
  method: string;
  authority: string;
  path: string;
  responseCode: number;
  responseCodeDetails: string;
  bytesSent: number;
  bytesReceived: number;
  durationMs: number;
  upstreamHost: string;
  upstreamCluster: string;
  metadata: Record<string, unknown>;
}

export interface AccessLogSink {
  /** Resolves once the entries are stored (or queued for storing). */
  write(entries: AccessLogEntry[]): Promise<void>;
}

const durationMs = (d: { seconds?: number; nanos?: number } | undefined) =>
  d ? (d.seconds ?? 0) * 1000 + (d.nanos ?? 0) / 1e6 : 0;

function addressOf(a: any): string {
  const s = a?.socketAddress;
  return s ? `${s.address}:${s.portValue ?? 0}` : '';
}

/** Maps one HTTPAccessLogEntry (proto-loader, camelCase) to an AccessLogEntry. */
export function toAccessLogEntry(e: any, nodeId: string): AccessLogEntry {
  const common = e.commonProperties ?? {};
  const req = e.request ?? {};
  const res = e.response ?? {};
  const filterMetadata: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(common.metadata?.filterMetadata ?? {}))
    filterMetadata[k] = fromStruct(v as any);
  const authz = (filterMetadata['envoy.filters.http.ext_authz'] ?? {}) as Record<string, unknown>;
  const start = common.startTime
    ? (common.startTime.seconds ?? 0) * 1000 + (common.startTime.nanos ?? 0) / 1e6
    : Date.now();
  return {
    requestId: req.requestId ?? '',
    decisionId: typeof authz['decision_id'] === 'string' ? authz['decision_id'] : null,
    policyRevision: typeof authz['policy_revision'] === 'string' ? authz['policy_revision'] : null,
    time: new Date(start),
    nodeId,
    route: common.routeName ?? '',
    method: req.requestMethod ?? '',
    authority: req.authority ?? '',
    // The query string can carry secrets; the outcome record keeps the path only.
    path: String(req.path ?? '').split('?')[0] ?? '',
    responseCode: res.responseCode?.value ?? 0,
    responseCodeDetails: res.responseCodeDetails ?? '',
    bytesSent: (res.responseHeadersBytes ?? 0) + (res.responseBodyBytes ?? 0),
    bytesReceived: (req.requestHeadersBytes ?? 0) + (req.requestBodyBytes ?? 0),
    durationMs: durationMs(common.duration ?? common.timeToLastDownstreamTxByte),
    upstreamHost: addressOf(common.upstreamRemoteAddress),
    upstreamCluster: common.upstreamCluster ?? '',
    metadata: filterMetadata,
  };
}

export function addAccessLogService(server: grpc.Server, sink: AccessLogSink, log: Logger): void {
  const root = loadEnvoyProtos(['envoy/service/accesslog/v3/als.proto']);
  const svc = lookup<grpc.ServiceClientConstructor>(root, 'envoy.service.accesslog.v3.AccessLogService');
  server.addService(svc.service, {
    StreamAccessLogs: (
      call: grpc.ServerReadableStream<any, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ) => {
      let nodeId = '';
      let pending = Promise.resolve();
      call.on('data', (msg: any) => {
        if (msg.identifier?.node?.id) nodeId = msg.identifier.node.id;
        const entries = (msg.httpLogs?.logEntry ?? []).map((e: any) => toAccessLogEntry(e, nodeId));
        if (entries.length === 0) return;
        pending = pending
          .then(() => sink.write(entries))
          .catch((err: unknown) =>
            log.error({ err: String(err), count: entries.length }, 'als: entries not stored'),
          );
      });
      call.on('end', () => void pending.then(() => callback(null, {})));
      call.on('error', () => undefined);
    },
  });
}
