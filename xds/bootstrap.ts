// The Envoy bootstrap that makes an Envoy take everything else from Chaperone: node identity, admin
// on loopback, one static cluster for the control plane (ADS + ALS share its gRPC port), and dynamic
// listeners/clusters over ADS. Pure: returns the bootstrap as JSON (YAML is a superset).

export interface BootstrapOptions {
  nodeId: string;
  /** Envoy cluster name reported in the node, for fleet grouping. */
  nodeCluster?: string;
  /** host:port of the control plane's gRPC server (ADS + ALS). */
  xdsAddress: string;
  adminAddress?: string;
  adminPort: number;
  /** Incremental xDS (DELTA_GRPC): only changed resources travel. Default: state of the world. */
  delta?: boolean;
}

export const XDS_CLUSTER = 'chaperone_xds';

function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  const port = Number(address.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error(`"${address}" is not a host:port address`);
  }
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port };
}

export function envoyBootstrap(o: BootstrapOptions): Record<string, unknown> {
  const xds = splitHostPort(o.xdsAddress);
  return {
    node: { id: o.nodeId, cluster: o.nodeCluster ?? 'chaperone-egress' },
    admin: {
      address: { socket_address: { address: o.adminAddress ?? '127.0.0.1', port_value: o.adminPort } },
    },
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
          type: 'STATIC',
          connect_timeout: '1s',
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
          load_assignment: {
            cluster_name: XDS_CLUSTER,
            endpoints: [
              {
                lb_endpoints: [
                  { endpoint: { address: { socket_address: { address: xds.host, port_value: xds.port } } } },
                ],
              },
            ],
          },
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
