// Defaults of chaperone.yaml, one place, each with the reason for its value. Every address binds
// loopback: exposing the gateway, its admin port or the control plane is a deliberate choice.
import { AUTHZ_DEFAULTS } from './authz-defaults.ts';

export const CONFIG_DEFAULTS = {
  /** The egress listener agents send plain HTTP to. */
  listener: { name: 'egress', address: '127.0.0.1', port: 10000 },
  /** Envoy's conventional admin port; always bound on 127.0.0.1 (the admin API can stop Envoy). */
  envoyAdminPort: 9901,
  /** Debian/Ubuntu/Alpine system CA bundle, used to verify https upstreams without their own ca_file. */
  envoyCaFile: '/etc/ssl/certs/ca-certificates.crt',
  /** ADS and the access-log service share one gRPC port, so an Envoy needs one static cluster. */
  xdsAddress: '127.0.0.1:18000',
  /** Health, status and audit queries. */
  httpAddress: '127.0.0.1:8181',
  /** OPA-Envoy's conventional ext_authz address, so existing Envoy configs point here unchanged. */
  authzAddress: AUTHZ_DEFAULTS.address,
  policyDir: AUTHZ_DEFAULTS.policyDir,
  entrypoint: AUTHZ_DEFAULTS.entrypoint,
  /** `Authorization: Bearer <jwt>`, what OAuth clients send. */
  tokenHeader: 'authorization',
  clockToleranceSec: AUTHZ_DEFAULTS.clockToleranceSec,
  /** PGlite in-process: nothing to install for a single node. */
  auditStore: 'embedded',
  spoolDir: '.chaperone/spool',
  protocol: 'http',
  /** Envoy buffers the body for the check: body rules and protocol views read it whole. */
  bodyMode: 'buffer',
  /**
   * The largest body a target's check reads (Envoy answers 413 above it), by protocol. LLM chats and MCP
   * tool calls carry whole conversations and file contents: 1 MiB. Kubernetes: 1.5 MiB, etcd's default
   * request limit, so any object the cluster can store fits. Plain HTTP and GraphQL: 64 KiB, far above
   * JSON API calls and queries, small enough that buffering stays cheap; uploads use `body: headers_only`.
   */
  maxRequestBytes: {
    http: 64 * 1024,
    graphql: 64 * 1024,
    llm: 1024 * 1024,
    mcp: 1024 * 1024,
    kubernetes: 1536 * 1024,
  },
  /** Credential header value template: the secret as is. */
  credentialFormat: '{}',
} as const;
