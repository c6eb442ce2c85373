// The validated, normalised configuration (camelCase, defaults applied, relative paths resolved
// against the config file's directory). Consumers read this, never the raw YAML.

export type TargetProtocol = 'http' | 'mcp' | 'llm' | 'kubernetes' | 'graphql';

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
  credentials: CredentialRefConfig[];
}

export type PolicySource = { kind: 'dir'; path: string } | { kind: 'bundle'; path: string };

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
  policy: { source: PolicySource; entrypoint: string };
  audit: { store: AuditStoreConfig; spoolDir: string };
  authz: { addresses: string[] };
  /** `issuer`: the agent-token issuer URL (the fleet's shared API URL; default http://<httpAddress>). */
  controlPlane: { xdsAddress: string; httpAddress: string; issuer: string };
  envoy: { adminPort: number; caFile: string; deltaXds: boolean };
  console: ConsoleConfig;
  notifications: NotificationsConfig;
  /** `pendingTtlMs`: a request nobody decided expires after this long. */
  approvals: { pendingTtlMs: number };
}
