// The validated, normalised configuration (camelCase, defaults applied, relative paths resolved
// against the config file's directory). Consumers read this, never the raw YAML.

export type TargetProtocol = 'http' | 'mcp' | 'llm' | 'kubernetes' | 'graphql';

/** How a target's request bodies reach the check (contracts/ext-authz.ts RouteBody says what each means). */
export type { RouteBody as TargetBody } from '../contracts/ext-authz.ts';

import type { RouteBody as TargetBody } from '../contracts/ext-authz.ts';

export interface ListenerConfig {
  name: string;
  /** IP address to bind. */
  address: string;
  port: number;
}

/** The authz server's issuer settings, as the config produces them. */
export type { IssuerConfig } from '../contracts/identity.ts';

import type { IssuerConfig } from '../contracts/identity.ts';

export interface IdentityConfig {
  issuers: IssuerConfig[];
  tokenHeader: string;
  clockToleranceSec: number;
  /** The longest an agent token may live (it never outlives the person's token either). */
  agentTokenMaxTtlMs: number;
}

/** A header the authz server sets on allowed requests; `value` is a reference, never a secret. */
export interface CredentialRefConfig {
  header: string;
  /** `env:NAME` or `file:/absolute/path`. */
  value: string;
  /** Template with `{}` for the secret. */
  format: string;
}

export interface TargetTlsConfig {
  /** null: the upstream host name (none for an IP upstream). */
  sni: string | null;
  /** null: `envoy.caFile`. */
  caFile: string | null;
}

export interface TargetConfig {
  name: string;
  /** The upstream URL as written (validated http/https, no path/query/user info). */
  upstream: string;
  tls: TargetTlsConfig | null;
  match: { hosts: string[]; pathPrefix: string | null };
  prefixRewrite: string | null;
  /** Envoy duration ("30s"), null: Envoy's default. */
  timeout: string | null;
  protocol: TargetProtocol;
  /** `body` and `max_request_bytes`, with the protocol's default limit applied. */
  body: TargetBody;
  credentials: CredentialRefConfig[];
  /**
   * An MCP target's OAuth 2.0 Protected Resource Metadata (RFC 9728), published at the gateway so MCP
   * clients discover where to log in. Absent: no metadata, no resource (audience) check.
   */
  mcp?: TargetMcpConfig;
}

/** `targets[].mcp`: how MCP clients find the authorization server for this target. */
export interface TargetMcpConfig {
  /** The target's canonical URL as MCP clients use it (RFC 8707 resource; tokens must name it in `aud`). */
  resource: string;
  /** Issuers that mint tokens for it (RFC 9728 `authorization_servers`); default every identity issuer. */
  authorizationServers: string[];
  /** RFC 9728 `scopes_supported` (what a client asks for when it logs in); empty: not published. */
  scopes: string[];
}

/** Who a usage limit counts together: one person, one agent of one person, or everyone on a target. */
export type UsageScope = 'user' | 'agent' | 'target';

/**
 * One limit of `rate_limits:` (requests) or `budgets:` (LLM tokens) for one window, flattened: a config
 * entry with a minute and a day figure becomes two. Given to the policy in `input.usage.limits`.
 */
export interface UsageLimitConfig {
  name: string;
  /** Target names it applies to; null: every target. */
  targets: string[] | null;
  per: UsageScope;
  kind: 'requests' | 'tokens';
  window: 'minute' | 'day';
  limit: number;
}

export type PolicySource = { kind: 'dir'; path: string } | { kind: 'bundle'; path: string };

/** A bundle verification key, as OPA's `keys.<id>`: `key` is `env:`/`file:`, or an inline PEM public key. */
export interface BundleKeyConfig {
  algorithm: string;
  key: string;
  scope: string | null;
}

/** Bundle signature verification (OPA's `signing` of a bundle plus its `keys`). */
export interface BundleSigningConfig {
  keyid: string | null;
  scope: string | null;
  excludeFiles: string[];
  keys: Record<string, BundleKeyConfig>;
}

/** A bundle server polled the way OPA polls one (HTTP GET with ETag/If-None-Match). */
export interface BundleServiceConfig {
  url: string;
  /** Bearer token reference (`env:NAME` or `file:/path`), or null. */
  token: string | null;
  minDelaySec: number;
  maxDelaySec: number;
}

/** Decision logs pushed to an HTTP endpoint in OPA's decision-log format (gzip JSON arrays). */
export interface DecisionLogsConfig {
  url: string;
  /** Bearer token reference (`env:NAME` or `file:/path`), or null. */
  token: string | null;
  minDelaySec: number;
  maxDelaySec: number;
  /** Encoded events kept while the endpoint is slow or down; beyond it the oldest are dropped. */
  bufferSizeLimitBytes: number;
  /** Bound of one (uncompressed) upload. */
  uploadSizeLimitBytes: number;
}

/** `connection` is a postgres:// URL or an `env:NAME` reference to one. */
export type AuditStoreConfig = { kind: 'embedded' } | { kind: 'postgres'; connection: string };

/**
 * Who may use Chaperone's own HTTP API beyond their own agents and approvals: IdP groups (from the
 * token's groups claim) per role. Empty lists: nobody holds the role.
 */
export interface AccessConfig {
  /** Key rotation, revoking anyone's agents, /status. */
  admins: string[];
  /** The audit trail (/audit/*), /status, everyone's agent inventory. */
  auditors: string[];
  /** Listing and deciding approval requests (a request's own reviewer groups apply on top). */
  reviewers: string[];
}

/**
 * Mutual TLS between Envoy and the data-plane services when they listen on TCP (a fleet): a CA (generated
 * in `dir`, or the operator's files), server certificates for the services, a client certificate for Envoy.
 */
export interface DataPlaneTlsConfig {
  /** The generated CA (`ca.pem`, `ca-key.pem` 0600) and, under `envoy/`, the files Envoys read. */
  dir: string;
  /** The operator's CA certificate and key (both or neither); null: generated in `dir` at first start. */
  caCert: string | null;
  caKey: string | null;
  /** DNS names and IPs Envoys use to reach this node's TCP services (server certificate names). */
  serverNames: string[];
  /** Lifetime of issued certificates, in seconds; each is renewed after two thirds of it. */
  certValiditySec: number;
}

export interface DataPlaneConfig {
  /** Directory of the Unix sockets (0700; sockets 0600). Default `<state dir>/sockets`. */
  socketDir: string;
  tls: DataPlaneTlsConfig;
}

/** The web console (`/console/` on the HTTP API): who signs people in, and for how long. */
export interface ConsoleConfig {
  /** False: no console routes (the JSON API is unchanged). Default: on when an issuer is configured. */
  enabled: boolean;
  /** The OIDC issuer people sign in with (one of `identity.issuers`); null: the first one. */
  issuer: string | null;
  clientId: string;
  /** `env:NAME` or `file:/path` of a confidential client's secret; null: a public client (PKCE only). */
  clientSecret: string | null;
  scopes: string[];
  /** RFC 8707 resource indicator sent with the sign-in (the access token's audience), or null. */
  resource: string | null;
  /** A session ends this long after sign-in, whatever happens. */
  sessionTtlMs: number;
  /** …or after this long without a request. */
  sessionIdleMs: number;
}

export type NotificationEventKind =
  | 'approval.requested'
  | 'approval.decided'
  | 'approval.expired'
  | 'approval.revoked';

/** Where approval events go: a signed JSON webhook, or a Slack-compatible incoming webhook. */
export interface NotificationSinkConfig {
  name: string;
  type: 'webhook' | 'slack';
  /** An http(s) URL, or an `env:`/`file:` reference to one (a Slack webhook URL is itself a secret). */
  url: string;
  /** Webhooks: `env:`/`file:` reference to the signing secret (`whsec_<base64>` or raw text). */
  secret: string | null;
  events: NotificationEventKind[];
}

export interface NotificationsConfig {
  sinks: NotificationSinkConfig[];
  /** A delivery is given up (status `failed`) after this many attempts. */
  maxAttempts: number;
}

export interface Config {
  /** The file it was read from (as given), or null. */
  file: string | null;
  listeners: ListenerConfig[];
  /** null: no issuer configured (every token is rejected). */
  identity: IdentityConfig | null;
  targets: TargetConfig[];
  access: AccessConfig;
  policy: {
    source: PolicySource;
    entrypoint: string;
    /** Follow a bundle server instead of (after start-up) the local source. */
    bundleService?: BundleServiceConfig | null;
    /** Verify bundle signatures: unsigned or tampered bundles are refused. */
    signing?: BundleSigningConfig | null;
  };
  /** Push every decision to an HTTP endpoint as OPA decision logs. */
  decisionLogs?: DecisionLogsConfig | null;
  /** `redactHeaders`: `audit.redact_headers`, more header names kept out of the trail (absent: none). */
  audit: { store: AuditStoreConfig; spoolDir: string; redactHeaders?: string[] };
  /**
   * `addresses`: each `unix:/abs/path` (default: `<socketDir>/authz.sock`) or `host:port` (mutual TLS).
   * `maxOutstanding`: Checks Envoy keeps outstanding to each address (the authz cluster's circuit breaker,
   * `maxOutstanding × addresses` in all); past it Envoy fails a Check at once instead of queueing it.
   */
  authz: { addresses: string[]; maxOutstanding: number };
  /**
   * `xdsAddress`: ADS, access logs and ext_proc, `unix:/abs/path` (default `<socketDir>/xds.sock`) or
   * `host:port` (mutual TLS). `issuer`: the agent-token issuer URL (the fleet's shared API URL; default
   * http://<httpAddress>).
   */
  controlPlane: { xdsAddress: string; httpAddress: string; issuer: string };
  /** `adminAddress`: `unix:<socketDir>/envoy-admin.sock`, or `127.0.0.1:<admin_port>` when configured. */
  envoy: { adminAddress: string; caFile: string; deltaXds: boolean };
  dataPlane: DataPlaneConfig;
  telemetry: TelemetryConfig;
  console: ConsoleConfig;
  notifications: NotificationsConfig;
  /** `pendingTtlMs`: a request nobody decided expires after this long. */
  approvals: { pendingTtlMs: number };
  /** `rate_limits:` and `budgets:`, flattened (absent or empty: no limit is configured). */
  limits?: UsageLimitConfig[];
}

/** `telemetry:` — the metrics listener (traces are configured by the OTEL_* environment variables). */
export interface TelemetryConfig {
  /** null: no metrics listener. `tokenFile`: scrapers must send its content as a bearer token. */
  metrics: { address: string; tokenFile: string | null } | null;
}
