// The intermediate representation between chaperone.yaml and Envoy: what the gateway serves, with
// every name, default and ordering decided, and nothing Envoy-specific in shape. Built by
// buildIr(config), consumed by translate(ir). Plain data: deep-equal IRs translate identically.
import type { TargetBody, TargetProtocol } from '../../config/types.ts';

export type { TargetBody, TargetProtocol };

/** A TCP endpoint (IP literal without brackets, or DNS name) or a Unix socket path (`pipe`). */
export type IrEndpoint = { host: string; port: number } | { pipe: string };

/**
 * How Envoy finds a cluster's endpoints. `eds`: IP endpoints published as a ClusterLoadAssignment
 * over ADS (changes need no cluster update). `logical_dns`: one DNS name, re-resolved, connections
 * follow the answer (what external APIs behind DNS load balancers need; EDS cannot carry names).
 * `static` / `strict_dns`: inline endpoints, for Chaperone's own services.
 */
export type IrDiscovery = 'eds' | 'logical_dns' | 'strict_dns' | 'static';

export interface IrUpstreamTls {
  /** Server name sent in the handshake; null for an IP upstream without an explicit SNI. */
  sni: string | null;
  /** CA bundle on the Envoy host that must have signed the upstream certificate. */
  caFile: string;
  /** What the certificate must name: the SNI host, or the IP for an IP upstream. */
  subjectAltName: { type: 'DNS' | 'IP_ADDRESS'; value: string };
}

/**
 * Mutual TLS to one of Chaperone's own services: Envoy presents its client certificate and accepts only a
 * server certificate from the data-plane CA naming the server role. Both come from SDS files on the Envoy
 * host that the control plane rewrites when it renews them (Envoy watches them).
 */
export interface IrDataPlaneTls {
  /** SDS file holding Envoy's client certificate and key. */
  certificateSds: string;
  /** SDS file holding the data-plane CA. */
  validationSds: string;
  /** URI SAN the server's certificate must carry. */
  serverUri: string;
}

export interface IrCluster {
  name: string;
  discovery: IrDiscovery;
  endpoints: IrEndpoint[];
  tls: IrUpstreamTls | null;
  /** Chaperone's own services over TCP (the authz pool of a fleet); null for sockets and targets. */
  dataPlaneTls: IrDataPlaneTls | null;
  /** Speak HTTP/2 (gRPC services) instead of HTTP/1.1. */
  http2: boolean;
  connectTimeout: string;
  /**
   * Bounds on what Envoy sends at once (the authz cluster's); absent: Envoy's defaults (1,024 requests,
   * 1,024 pending). Absent rather than null on target clusters, so their routes' checksums stay as they were.
   */
  circuitBreakers?: IrCircuitBreakers;
}

/**
 * The cluster's circuit breaker (priority DEFAULT, the only one Chaperone's traffic uses): a request past
 * a bound is failed by Envoy at once, never queued. Over HTTP/2 every request is multiplexed on a ready
 * connection, so `maxRequests` bounds what is outstanding and `maxPendingRequests` what waits while a
 * connection is being made.
 */
export interface IrCircuitBreakers {
  maxRequests: number;
  maxPendingRequests: number;
}

export interface IrRouteMatch {
  /** Path prefix, '/' for everything. */
  pathPrefix: string;
  /**
   * true: match at a segment boundary (`/demo` matches /demo and /demo/x, not /demox); used when the
   * configured prefix does not end with '/'.
   */
  segmentBoundary: boolean;
}

export interface IrRoute {
  /** `<target>/0`: stable, sent to the authz server and named in access logs. */
  routeId: string;
  target: string;
  protocol: TargetProtocol;
  match: IrRouteMatch;
  prefixRewrite: string | null;
  /** Envoy duration; null: Envoy's default. */
  timeout: string | null;
  /** Host header sent upstream (host[:port] of the upstream URL). */
  hostRewrite: string;
  /** How the request body reaches the check: buffered up to a limit, or not at all. */
  body: TargetBody;
  cluster: string;
  /** Content hash of this route's IR, its cluster and its credential references. */
  checksum: string;
  /** An MCP target's RFC 9728 metadata, served by Envoy itself (absent: none). */
  oauthResource?: IrOauthResource;
}

/** OAuth 2.0 Protected Resource Metadata (RFC 9728) of an MCP target, and where it is served. */
export interface IrOauthResource {
  /** RFC 8707 resource identifier: the URL MCP clients connect to. */
  resource: string;
  /** `/.well-known/oauth-protected-resource` + the resource's path (RFC 9728 section 3.1). */
  metadataPath: string;
  /** The same on the resource's origin: what a 401's `WWW-Authenticate: Bearer resource_metadata=` names. */
  metadataUrl: string;
  authorizationServers: string[];
  scopes: string[];
}

export interface IrVirtualHost {
  name: string;
  /** Host names (`*` for any host). */
  domains: string[];
  /** In match order: first match wins. */
  routes: IrRoute[];
}

export interface IrListener {
  name: string;
  address: string;
  port: number;
  /** RDS name of this listener's RouteConfiguration. */
  routeConfigName: string;
  virtualHosts: IrVirtualHost[];
  /** log_name of the gRPC access log. */
  accessLogName: string;
}

/** Per target: what the authz server needs besides the route (credential references, never values). */
export interface IrTarget {
  name: string;
  protocol: TargetProtocol;
  routeId: string;
  cluster: string;
  credentials: { header: string; ref: string; format: string }[];
}

export interface Ir {
  /** Sorted by name. */
  listeners: IrListener[];
  /** Target clusters and the authz cluster, sorted by name. */
  clusters: IrCluster[];
  /** Sorted by name. */
  targets: IrTarget[];
  /** Cluster of the ext_authz gRPC service (part of `clusters`). */
  authzCluster: string;
  /** Cluster of the gRPC access-log service (the control plane: static in every Envoy's bootstrap). */
  accessLogCluster: string;
  /** Content hash of the whole IR. */
  revision: string;
}
