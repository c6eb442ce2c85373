// IrCluster → envoy.config.cluster.v3.Cluster, plus the ClusterLoadAssignment an EDS cluster takes
// over ADS. Upstream TLS always verifies the chain (trusted CA) and the name (SAN = SNI host):
// Envoy checks neither unless told to, and credentials are injected on these connections.
import { isIP } from 'node:net';
import type { IrCircuitBreakers, IrCluster, IrEndpoint, IrUpstreamTls } from '../ir/types.ts';
import { dataPlaneTlsSocket, envoyAddress } from './data-plane.ts';
import {
  ADS_CONFIG_SOURCE,
  HTTP_PROTOCOL_OPTIONS,
  HTTP_PROTOCOL_OPTIONS_TYPE,
  TLS_TRANSPORT_SOCKET,
  UPSTREAM_TLS_TYPE,
} from './envoy-names.ts';
import { TranslateError } from './errors.ts';

function lbEndpoints(endpoints: IrEndpoint[]): Record<string, unknown>[] {
  return [{ lb_endpoints: endpoints.map((e) => ({ endpoint: { address: envoyAddress(e) } })) }];
}

/** A socket endpoint whose host is not an IP literal (DNS name); pipes are addresses already. */
const namedHost = (e: IrEndpoint) => !('pipe' in e) && isIP(e.host) === 0;

export function loadAssignment(cluster: IrCluster): Record<string, unknown> {
  return { cluster_name: cluster.name, endpoints: lbEndpoints(cluster.endpoints) };
}

function tlsTransportSocket(tls: IrUpstreamTls): Record<string, unknown> {
  const context: Record<string, unknown> = { '@type': UPSTREAM_TLS_TYPE };
  if (tls.sni !== null) context['sni'] = tls.sni;
  context['common_tls_context'] = {
    validation_context: {
      trusted_ca: { filename: tls.caFile },
      match_typed_subject_alt_names: [
        { san_type: tls.subjectAltName.type, matcher: { exact: tls.subjectAltName.value } },
      ],
    },
  };
  return { name: TLS_TRANSPORT_SOCKET, typed_config: context };
}

/**
 * One threshold at DEFAULT priority (ext_authz and the router send everything there). No retries: a
 * Check is never retried by the cluster, and a retry at the moment the bound is reached would only add
 * load. `track_remaining` publishes `circuit_breakers.default.remaining_rq` / `remaining_pending`, so an
 * operator sees how close the bound is before it refuses anything.
 */
export function circuitBreakers(b: IrCircuitBreakers): Record<string, unknown> {
  return {
    thresholds: [
      {
        priority: 'DEFAULT',
        max_pending_requests: b.maxPendingRequests,
        max_requests: b.maxRequests,
        max_retries: 0,
        track_remaining: true,
      },
    ],
  };
}

function fail(cluster: IrCluster, path: string, message: string): never {
  throw new TranslateError([{ resource: `Cluster[${cluster.name}]`, path, message }]);
}

export function clusterResource(cluster: IrCluster): Record<string, unknown> {
  if (cluster.endpoints.length === 0) fail(cluster, 'endpoints', 'a cluster needs at least one endpoint');
  const out: Record<string, unknown> = { name: cluster.name, connect_timeout: cluster.connectTimeout };
  switch (cluster.discovery) {
    case 'eds':
      if (cluster.endpoints.some((e) => 'pipe' in e || isIP(e.host) === 0))
        fail(cluster, 'endpoints', 'EDS endpoints must be IP addresses');
      out['type'] = 'EDS';
      out['eds_cluster_config'] = { eds_config: ADS_CONFIG_SOURCE, service_name: cluster.name };
      break;
    case 'static':
      if (cluster.endpoints.some(namedHost))
        fail(cluster, 'endpoints', 'STATIC endpoints must be IP addresses or Unix sockets');
      out['type'] = 'STATIC';
      out['load_assignment'] = loadAssignment(cluster);
      break;
    case 'logical_dns':
    case 'strict_dns':
      if (cluster.endpoints.some((e) => 'pipe' in e))
        fail(cluster, 'endpoints', 'DNS clusters cannot hold Unix sockets');
      if (cluster.discovery === 'logical_dns' && cluster.endpoints.length !== 1) {
        fail(cluster, 'endpoints', 'a LOGICAL_DNS cluster has exactly one endpoint');
      }
      out['type'] = cluster.discovery === 'logical_dns' ? 'LOGICAL_DNS' : 'STRICT_DNS';
      // Egress hosts are reached over IPv4 first; `localhost` → ::1 would miss v4-only dev upstreams.
      out['dns_lookup_family'] = 'V4_PREFERRED';
      out['load_assignment'] = loadAssignment(cluster);
      break;
    default:
      fail(cluster, 'type', `unsupported discovery "${String(cluster.discovery satisfies never)}"`);
  }
  if (cluster.http2) {
    out['typed_extension_protocol_options'] = {
      [HTTP_PROTOCOL_OPTIONS]: {
        '@type': HTTP_PROTOCOL_OPTIONS_TYPE,
        explicit_http_config: { http2_protocol_options: {} },
      },
    };
  }
  if (cluster.circuitBreakers) out['circuit_breakers'] = circuitBreakers(cluster.circuitBreakers);
  if (cluster.tls !== null && cluster.dataPlaneTls !== null)
    fail(cluster, 'tls', 'a cluster has upstream TLS or data-plane TLS, not both');
  if (cluster.tls !== null) out['transport_socket'] = tlsTransportSocket(cluster.tls);
  if (cluster.dataPlaneTls !== null) out['transport_socket'] = dataPlaneTlsSocket(cluster.dataPlaneTls);
  return out;
}
