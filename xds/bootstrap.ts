// The Envoy bootstrap that makes an Envoy take everything else from Chaperone: node identity, its admin
// interface (a Unix socket 0600 by default, loopback TCP when configured), one static cluster for the
// control plane (ADS, access logs and ext_proc share its gRPC server) — a Unix socket, or TCP with
// mutual TLS from SDS files — and dynamic listeners/clusters over ADS. Pure: returns the bootstrap as
// JSON (YAML is a superset).
import { isIP } from 'node:net';
import { parseDataPlaneAddress } from '../lib/data-plane-address.ts';
import { SOCKET_MODE } from '../lib/unix-socket.ts';
import type { IrDataPlaneTls } from './ir/types.ts';
import { dataPlaneTlsSocket, endpointOf, envoyAddress } from './translate/data-plane.ts';

export interface BootstrapOptions {
  nodeId: string;
  /** Envoy cluster name reported in the node, for fleet grouping. */
  nodeCluster?: string;
  /** `unix:/path` or `host:port` of the control plane's gRPC server (ADS + ALS + ext_proc). */
  xdsAddress: string;
  /** `unix:/path` (bound 0600) or `host:port` of Envoy's admin interface. */
  adminAddress?: string;
  /** Shorthand for `adminAddress: 127.0.0.1:<adminPort>`. */
  adminPort?: number;
  /** Incremental xDS (DELTA_GRPC): only changed resources travel. Default: state of the world. */
  delta?: boolean;
  /** Mutual TLS to a TCP control plane: Envoy's certificate files. Callers require it for TCP. */
  tls?: IrDataPlaneTls | null;
}

export const XDS_CLUSTER = 'chaperone_xds';

function adminOf(o: BootstrapOptions): Record<string, unknown> {
  const text = o.adminAddress ?? (o.adminPort === undefined ? null : `127.0.0.1:${o.adminPort}`);
  if (text === null) throw new Error('the bootstrap needs an admin address (adminAddress or adminPort)');
  return envoyAddress(endpointOf(parseDataPlaneAddress(text)), SOCKET_MODE);
}

export function envoyBootstrap(o: BootstrapOptions): Record<string, unknown> {
  const xds = endpointOf(parseDataPlaneAddress(o.xdsAddress));
  const tls = 'pipe' in xds ? null : (o.tls ?? null);
  return {
    node: { id: o.nodeId, cluster: o.nodeCluster ?? 'chaperone-egress' },
    admin: { address: adminOf(o) },
    dynamic_resources: {
      ads_config: {
        api_type: o.delta ? 'DELTA_GRPC' : 'GRPC',
        transport_api_version: 'V3',
        set_node_on_first_message_only: true,
        grpc_services: [{ envoy_grpc: { cluster_name: XDS_CLUSTER } }],
      },
      cds_config: { ads: {}, resource_api_version: 'V3' },
      lds_config: { ads: {}, resource_api_version: 'V3' },
    },
    static_resources: {
      clusters: [
        {
          name: XDS_CLUSTER,
          // A control plane named by DNS (a fleet's service name) is resolved; IPs and sockets are static.
          type: 'pipe' in xds || isIP(xds.host) !== 0 ? 'STATIC' : 'STRICT_DNS',
          connect_timeout: '1s',
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
          load_assignment: {
            cluster_name: XDS_CLUSTER,
            endpoints: [{ lb_endpoints: [{ endpoint: { address: envoyAddress(xds) } }] }],
          },
          ...(tls ? { transport_socket: dataPlaneTlsSocket(tls) } : {}),
        },
      ],
    },
    overload_manager: {
      resource_monitors: [
        {
          name: 'envoy.resource_monitors.global_downstream_max_connections',
          typed_config: {
            '@type':
              'type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig',
            max_active_downstream_connections: 50000,
          },
        },
      ],
    },
  };
}
