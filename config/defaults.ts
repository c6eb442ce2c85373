// Defaults of chaperone.yaml, one place, each with the reason for its value. Every address binds
// loopback: exposing the gateway, its admin port or the control plane is a deliberate choice.
import { AUTHZ_DEFAULTS } from './authz-defaults.ts';

export const CONFIG_DEFAULTS = {
  /** The egress listener agents send plain HTTP to. */
  listener: { name: 'egress', address: '127.0.0.1', port: 10000 },
  /**
   * Envoy's admin interface: a Unix socket (0600) in the socket directory, so no other local user can read
   * its config dump or stop Envoy. `envoy.admin_port` binds 127.0.0.1 instead (with a warning).
   */
  envoyAdminSocket: 'envoy-admin.sock',
  /** Debian/Ubuntu/Alpine system CA bundle, used to verify https upstreams without their own ca_file. */
  envoyCaFile: '/etc/ssl/certs/ca-certificates.crt',
  /**
   * ADS, the access-log service and ext_proc share one gRPC server, so an Envoy needs one static cluster.
   * A Unix socket in the socket directory: only the gateway's user (and so its Envoy) can connect.
   */
  xdsSocket: 'xds.sock',
  /** The authz server's Unix socket in the socket directory. */
  authzSocket: 'authz.sock',
  /**
   * Checks Envoy keeps outstanding to one authz address (`authz.max_outstanding`, the authz cluster's
   * circuit breaker). A node answers ~2,000 Checks/s on two cores and Envoy gives a Check 0.5 s: with
   * Envoy's own bound (1,024) Checks past capacity queue into timeouts. Measured at 2,000-4,000 rps
   * (docs/performance.md): 1,024 served 470-1,420 rps with ~3,000-10,000 timeouts per 10 s; 512 served
   * 1,750-1,900 rps at p99 370-460 ms; 256 1,780-1,850 rps at p99 210-250 ms; 128 1,500-1,630 rps. 256 also
   * equals the authz server's own in-flight bound (AUTHZ_DEFAULTS.maxInFlight): one Envoy never overruns it.
   */
  authzMaxOutstanding: 256,
  /** Sockets live beside the spool, in the state directory: `<dirname(spool_dir)>/sockets`. */
  socketDirName: 'sockets',
  /** The data-plane CA and Envoy's certificate files: `<dirname(spool_dir)>/pki`. */
  pkiDirName: 'pki',
  /**
   * Issued data-plane certificates live a day and are renewed after 16 h: a stolen Envoy key is useful for
   * hours, not months, and a control plane down for a few hours does not strand its Envoys.
   */
  certValiditySec: 24 * 3600,
  /** Health, status and audit queries. */
  httpAddress: '127.0.0.1:8181',
  policyDir: AUTHZ_DEFAULTS.policyDir,
  entrypoint: AUTHZ_DEFAULTS.entrypoint,
  /** `Authorization: Bearer <jwt>`, what OAuth clients send. */
  tokenHeader: 'authorization',
  clockToleranceSec: AUTHZ_DEFAULTS.clockToleranceSec,
  /**
   * An agent token lives at most an hour (and never past the person's own token): it carries the
   * person's groups as they were at the exchange, so a short life bounds how stale they can get.
   */
  agentTokenMaxTtl: '1h',
  /** What `identity.agent_token_max_ttl` may say at most: a working day's agent run. */
  agentTokenMaxTtlCeilingMs: 24 * 3_600_000,
  /** PGlite in-process: nothing to install for a single node. */
  auditStore: 'embedded',
  spoolDir: '.chaperone/spool',
  protocol: 'http',
  /**
   * Roles on the HTTP API (`access:`): nobody. Fail closed — the audit trail, approvals, /status and key
   * rotation refuse everyone until the operator names the IdP groups that hold each role.
   */
  access: { admins: [], auditors: [], reviewers: [] } as Readonly<
    Record<'admins' | 'auditors' | 'reviewers', readonly string[]>
  >,
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
  /** OPA's bundle polling defaults: a fleet of nodes spreads its requests over the minute. */
  bundlePolling: { min: 60, max: 120 },
  /** OPA's default signing algorithm. */
  bundleKeyAlgorithm: 'RS256',
  decisionLogs: {
    /** Shorter than OPA's 300-600 s: a log pipeline sees decisions within seconds. */
    delays: { min: 5, max: 10 },
    /** Room for minutes of decisions while the endpoint is down, bounded so memory stays bounded. */
    bufferSizeLimitBytes: 32 * 1024 * 1024,
    /** OPA's `upload_size_limit_bytes` default. */
    uploadSizeLimitBytes: 32 * 1024,
  },
  /** The console's OIDC client: a public client (authorization code + PKCE), registered at the IdP. */
  consoleClientId: 'chaperone-console',
  consoleScopes: ['openid', 'email', 'profile'] as readonly string[],
  /** A working day: a reviewer signs in once in the morning. */
  consoleSessionTtl: '8h',
  /** An unattended browser stops being a way in after an hour. */
  consoleSessionIdle: '1h',
  /** Every event to every sink unless a sink lists its own. */
  notificationEvents: [
    'approval.requested',
    'approval.decided',
    'approval.expired',
    'approval.revoked',
  ] as readonly string[],
  /** With the backoff (5 s doubling, capped at 10 min) this retries for about half an hour. */
  notificationMaxAttempts: 8,
  /** A request nobody decided within a day is stale: the agent has long given up waiting. */
  approvalPendingTtl: '24h',
} as const;
