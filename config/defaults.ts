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
  /**
   * Roles on the HTTP API (`access:`): nobody. Fail closed — the audit trail, approvals, /status and key
   * rotation refuse everyone until the operator names the IdP groups that hold each role.
   */
  access: { admins: [], auditors: [], reviewers: [] } as Readonly<
    Record<'admins' | 'auditors' | 'reviewers', readonly string[]>
  >,
  /** Credential header value template: the secret as is. */
  credentialFormat: '{}',
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
