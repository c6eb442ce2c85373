// IrListener → envoy.config.listener.v3.Listener: one HTTP connection manager with the same
// hardening as envoy/bootstrap-static.yaml (see envoy/README.md for each setting's reason), routes
// over RDS, and the request-outcome record streamed to Chaperone's gRPC access-log service.

import { CONFIG_DEFAULTS } from '../../config/defaults.ts';
import {
  CHAPERONE_HEADER_PREFIX,
  CLIENT_IDENTITY_HEADERS,
  DECISION_ID_HEADER,
  MASK_HEADER,
  MASK_HEADER_VALUE,
} from '../../contracts/ext-authz.ts';
import type { Ir, IrListener } from '../ir/types.ts';
import {
  ADS_CONFIG_SOURCE,
  COMPOSITE_FILTER,
  COMPOSITE_TYPE,
  EARLY_HEADER_MUTATION,
  EARLY_HEADER_MUTATION_TYPE,
  EXECUTE_FILTER_ACTION_TYPE,
  EXT_AUTHZ_FILTER,
  EXT_AUTHZ_TYPE,
  EXT_PROC_FILTER,
  EXT_PROC_TYPE,
  EXTENSION_WITH_MATCHER_TYPE,
  GRPC_ACCESS_LOG,
  GRPC_ACCESS_LOG_TYPE,
  HCM_FILTER,
  HCM_TYPE,
  HEADER_MUTATION_FILTER,
  HEADER_MUTATION_TYPE,
  MASKING_FILTER,
  REQUEST_HEADER_INPUT_TYPE,
  ROUTER_FILTER,
  ROUTER_TYPE,
  STRIP_MASK_HEADER_FILTER,
} from './envoy-names.ts';
import { localReplyConfig } from './local-replies.ts';
import { extAuthzTimeout, withRequestBody } from './request-body.ts';

/** ext_authz settings that are policy of the product, not of a config file. */
export const EXT_AUTHZ_SETTINGS = {
  /**
   * The filter-wide body setting. Every route overrides it with its target's own (route.ts); this is the
   * plain-HTTP default, for a route that would not.
   */
  maxRequestBytes: CONFIG_DEFAULTS.maxRequestBytes.http,
} as const;

/**
 * Client claims about where a request came from. Removed before the connection manager looks at the
 * request, so Envoy's own `x-forwarded-for` (the real peer, appended because `use_remote_address`) is the
 * only one an upstream or the policy sees: with `use_remote_address` alone Envoy appends to the client's
 * list and passes the rest through as sent.
 */
export const CLIENT_ADDRESS_HEADERS = ['x-forwarded-for', 'x-real-ip', 'forwarded'] as const;

function earlyHeaderMutation(): Record<string, unknown> {
  return {
    name: EARLY_HEADER_MUTATION,
    typed_config: {
      '@type': EARLY_HEADER_MUTATION_TYPE,
      mutations: CLIENT_ADDRESS_HEADERS.map((h) => ({ remove: h })),
    },
  };
}

function headerMutationFilter(): Record<string, unknown> {
  return {
    name: HEADER_MUTATION_FILTER,
    typed_config: {
      '@type': HEADER_MUTATION_TYPE,
      mutations: {
        // Runs before ext_authz, so only what the client sent is removed: x-chaperone-* is ours to
        // set, and the identity headers other proxies trust must not reach an upstream from a client.
        // (`remove_on_match` is Envoy ≥ 1.31; lib/envoy-proto.ts adds it to the bundled API snapshot.)
        request_mutations: [
          { remove_on_match: { key_matcher: { prefix: CHAPERONE_HEADER_PREFIX } } },
          ...CLIENT_IDENTITY_HEADERS.map((h) => ({ remove: h })),
        ],
      },
    },
  };
}

/**
 * The mask processor (Chaperone's ext_proc server, on the control plane's gRPC port). Only the response
 * headers are sent by default; the processor switches a response to a buffered body when its decision
 * carried masks. Fail closed: no processor, no response.
 */
function extProcConfig(ir: Ir): Record<string, unknown> {
  return {
    '@type': EXT_PROC_TYPE,
    grpc_service: { envoy_grpc: { cluster_name: ir.accessLogCluster }, timeout: '2s' },
    failure_mode_allow: false,
    allow_mode_override: true,
    processing_mode: {
      request_header_mode: 'SKIP',
      response_header_mode: 'SEND',
      request_body_mode: 'NONE',
      response_body_mode: 'NONE',
      request_trailer_mode: 'SKIP',
      response_trailer_mode: 'SKIP',
    },
    metadata_options: { forwarding_namespaces: { untyped: [EXT_AUTHZ_FILTER] } },
    message_timeout: '2s',
  };
}

/**
 * Response masking only where a decision asks for it: the composite filter runs after ext_authz, whose
 * allow adds MASK_HEADER to the request exactly when the decision carries `masks`, and delegates to the
 * mask processor only for such requests (matched on the request headers, so it sees the whole
 * response). Every other request opens no ext_proc stream: no second gRPC call per request.
 */
function maskingFilter(ir: Ir): Record<string, unknown> {
  return {
    name: MASKING_FILTER,
    typed_config: {
      '@type': EXTENSION_WITH_MATCHER_TYPE,
      extension_config: { name: COMPOSITE_FILTER, typed_config: { '@type': COMPOSITE_TYPE } },
      xds_matcher: {
        matcher_tree: {
          input: {
            name: 'mask-header',
            typed_config: { '@type': REQUEST_HEADER_INPUT_TYPE, header_name: MASK_HEADER },
          },
          exact_match_map: {
            map: {
              [MASK_HEADER_VALUE]: {
                action: {
                  name: 'mask-response',
                  typed_config: {
                    '@type': EXECUTE_FILTER_ACTION_TYPE,
                    typed_config: { name: EXT_PROC_FILTER, typed_config: extProcConfig(ir) },
                  },
                },
              },
            },
          },
        },
      },
    },
  };
}

/** MASK_HEADER is for Envoy's filters only: removed after the composite filter has matched on it. */
function stripMaskHeaderFilter(): Record<string, unknown> {
  return {
    name: STRIP_MASK_HEADER_FILTER,
    typed_config: {
      '@type': HEADER_MUTATION_TYPE,
      mutations: { request_mutations: [{ remove: MASK_HEADER }] },
    },
  };
}

function extAuthzFilter(ir: Ir, listener: IrListener): Record<string, unknown> {
  return {
    name: EXT_AUTHZ_FILTER,
    typed_config: {
      '@type': EXT_AUTHZ_TYPE,
      transport_api_version: 'V3',
      grpc_service: { envoy_grpc: { cluster_name: ir.authzCluster }, timeout: extAuthzTimeout(listener) },
      // Fail closed, with 503 so "authz is down" is not mistaken for "policy said no".
      failure_mode_allow: false,
      status_on_error: { code: 'ServiceUnavailable' },
      with_request_body: withRequestBody(EXT_AUTHZ_SETTINGS.maxRequestBytes),
    },
  };
}

function accessLog(ir: Ir, listener: IrListener): Record<string, unknown> {
  return {
    name: GRPC_ACCESS_LOG,
    typed_config: {
      '@type': GRPC_ACCESS_LOG_TYPE,
      common_config: {
        log_name: listener.accessLogName,
        transport_api_version: 'V3',
        grpc_service: { envoy_grpc: { cluster_name: ir.accessLogCluster } },
      },
      // The decision id also travels in the ext_authz dynamic metadata; the header is the fallback
      // join key when a decision was produced without metadata (e.g. a deny body).
      additional_response_headers_to_log: [DECISION_ID_HEADER],
    },
  };
}

export function listenerResource(ir: Ir, listener: IrListener): Record<string, unknown> {
  return {
    name: listener.name,
    address: { socket_address: { address: listener.address, port_value: listener.port } },
    filter_chains: [
      {
        filters: [
          {
            name: HCM_FILTER,
            typed_config: {
              '@type': HCM_TYPE,
              stat_prefix: listener.name,
              rds: { route_config_name: listener.routeConfigName, config_source: ADS_CONFIG_SOURCE },
              // The policy must judge the path the upstream receives: resolve dot segments and
              // merge slashes first; refuse encoded slashes, which upstreams read differently.
              normalize_path: true,
              merge_slashes: true,
              path_with_escaped_slashes_action: 'REJECT_REQUEST',
              // `x_chaperone_user` could become `x-chaperone-user` at a CGI-style upstream.
              common_http_protocol_options: { headers_with_underscores_action: 'REJECT_REQUEST' },
              // Envoy is the edge: client x-forwarded-for / x-envoy-* are not trusted, and no hop
              // before it is (xff_num_trusted_hops 0, Envoy's default, stated).
              use_remote_address: true,
              xff_num_trusted_hops: 0,
              early_header_mutation_extensions: [earlyHeaderMutation()],
              // x-request-id joins decisions and access-log entries.
              generate_request_id: true,
              // Virtual hosts list bare host names; the listener port must not defeat the match.
              strip_any_host_port: true,
              // A body over its route's limit is refused by Envoy before any check: say so, in JSON.
              local_reply_config: localReplyConfig(),
              access_log: [accessLog(ir, listener)],
              http_filters: [
                headerMutationFilter(),
                extAuthzFilter(ir, listener),
                maskingFilter(ir),
                stripMaskHeaderFilter(),
                { name: ROUTER_FILTER, typed_config: { '@type': ROUTER_TYPE } },
              ],
            },
          },
        ],
      },
    ],
  };
}
