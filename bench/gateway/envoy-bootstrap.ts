// The Envoy of bench:gateway's first two sides (Envoy alone; Envoy + OPA-Envoy): one listener with the
// HTTP connection manager settings `chaperone up` generates (xds/translate/listener.ts), a route to the
// bench upstream and, for OPA-Envoy, the ext_authz filter with the same settings Chaperone uses and its
// cluster with the same circuit breaker (xds/translate/cluster.ts). The third side runs the Envoy
// `chaperone up` configures itself over xDS.
import { circuitBreakers } from '../../xds/translate/cluster.ts';

export const LISTENER_STAT_PREFIX = 'egress';

export interface BootstrapOptions {
  listenPort: number;
  adminPort: number;
  upstreamPort: number;
  /**
   * The ext_authz gRPC server: a port on 127.0.0.1 (OPA-Envoy), a Unix socket (`chaperone authz serve`,
   * which listens on TCP only with mutual TLS), or null for Envoy alone.
   */
  authz: { port: number } | { pipe: string } | null;
  /** Checks outstanding to the ext_authz cluster, as `authz.max_outstanding` bounds Chaperone's. */
  authzMaxOutstanding: number;
}

const HCM =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

function extAuthzFilter(): Record<string, unknown> {
  return {
    name: 'envoy.filters.http.ext_authz',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
      transport_api_version: 'V3',
      // As Chaperone's EXT_AUTHZ_SETTINGS: 0.5 s, fail closed with 503, bodies up to 8 KiB.
      grpc_service: { envoy_grpc: { cluster_name: 'ext_authz' }, timeout: '0.5s' },
      failure_mode_allow: false,
      status_on_error: { code: 'ServiceUnavailable' },
      with_request_body: { max_request_bytes: 8192, allow_partial_message: true, pack_as_bytes: true },
    },
  };
}

function cluster(
  name: string,
  at: { port: number } | { pipe: string },
  http2: boolean,
  maxOutstanding?: number,
): Record<string, unknown> {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    ...(maxOutstanding === undefined
      ? {}
      : {
          circuit_breakers: circuitBreakers({
            maxRequests: maxOutstanding,
            maxPendingRequests: maxOutstanding,
          }),
        }),
    ...(http2
      ? {
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
        }
      : {}),
    load_assignment: {
      cluster_name: name,
      endpoints: [
        {
          lb_endpoints: [
            {
              endpoint: {
                address:
                  'pipe' in at
                    ? { pipe: { path: at.pipe } }
                    : { socket_address: { address: '127.0.0.1', port_value: at.port } },
              },
            },
          ],
        },
      ],
    },
  };
}

export function benchBootstrap(o: BootstrapOptions): Record<string, unknown> {
  return {
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: o.adminPort } } },
    static_resources: {
      listeners: [
        {
          name: 'egress',
          address: { socket_address: { address: '127.0.0.1', port_value: o.listenPort } },
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type': HCM,
                    stat_prefix: LISTENER_STAT_PREFIX,
                    normalize_path: true,
                    merge_slashes: true,
                    path_with_escaped_slashes_action: 'REJECT_REQUEST',
                    common_http_protocol_options: { headers_with_underscores_action: 'REJECT_REQUEST' },
                    use_remote_address: true,
                    generate_request_id: true,
                    strip_any_host_port: true,
                    route_config: {
                      name: 'egress',
                      virtual_hosts: [
                        {
                          name: 'demo',
                          domains: ['*'],
                          routes: [{ match: { prefix: '/demo' }, route: { cluster: 'upstream' } }],
                        },
                      ],
                    },
                    http_filters: [
                      ...(o.authz === null ? [] : [extAuthzFilter()]),
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
      clusters: [
        cluster('upstream', { port: o.upstreamPort }, false),
        ...(o.authz === null ? [] : [cluster('ext_authz', o.authz, true, o.authzMaxOutstanding)]),
      ],
    },
  };
}
