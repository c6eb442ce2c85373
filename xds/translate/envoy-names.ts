// Envoy extension names and type URLs the translator emits, in one place.
const T = 'type.googleapis.com/';

export const HCM_FILTER = 'envoy.filters.network.http_connection_manager';
export const HCM_TYPE = `${T}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`;
export const HEADER_MUTATION_FILTER = 'envoy.filters.http.header_mutation';
export const HEADER_MUTATION_TYPE = `${T}envoy.extensions.filters.http.header_mutation.v3.HeaderMutation`;
export const EARLY_HEADER_MUTATION = 'envoy.http.early_header_mutation.header_mutation';
export const EARLY_HEADER_MUTATION_TYPE = `${T}envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation`;
export const EXT_AUTHZ_FILTER = 'envoy.filters.http.ext_authz';
export const EXT_AUTHZ_TYPE = `${T}envoy.extensions.filters.http.ext_authz.v3.ExtAuthz`;
export const EXT_AUTHZ_PER_ROUTE_TYPE = `${T}envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute`;
export const EXT_PROC_FILTER = 'envoy.filters.http.ext_proc';
export const EXT_PROC_TYPE = `${T}envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor`;
export const COMPOSITE_FILTER = 'envoy.filters.http.composite';
export const COMPOSITE_TYPE = `${T}envoy.extensions.filters.http.composite.v3.Composite`;
export const EXECUTE_FILTER_ACTION_TYPE = `${T}envoy.extensions.filters.http.composite.v3.ExecuteFilterAction`;
export const EXTENSION_WITH_MATCHER_TYPE = `${T}envoy.extensions.common.matching.v3.ExtensionWithMatcher`;
export const REQUEST_HEADER_INPUT_TYPE = `${T}envoy.type.matcher.v3.HttpRequestHeaderMatchInput`;
/** Chaperone's names for its own instances of Envoy filters (an HCM's filter names are unique). */
export const MASKING_FILTER = 'chaperone.response_masking';
export const STRIP_MASK_HEADER_FILTER = 'chaperone.strip_mask_header';
export const ROUTER_FILTER = 'envoy.filters.http.router';
export const ROUTER_TYPE = `${T}envoy.extensions.filters.http.router.v3.Router`;
export const GRPC_ACCESS_LOG = 'envoy.access_loggers.http_grpc';
export const CEL_FILTER = 'envoy.access_loggers.extension_filters.cel';
export const CEL_FILTER_TYPE = `${T}envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter`;
export const GRPC_ACCESS_LOG_TYPE = `${T}envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig`;
export const TLS_TRANSPORT_SOCKET = 'envoy.transport_sockets.tls';
export const UPSTREAM_TLS_TYPE = `${T}envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext`;
export const HTTP_PROTOCOL_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
export const HTTP_PROTOCOL_OPTIONS_TYPE = `${T}${HTTP_PROTOCOL_OPTIONS}`;

/** Config source for resources delivered over the same ADS stream. */
export const ADS_CONFIG_SOURCE = { ads: {}, resource_api_version: 'V3' } as const;
