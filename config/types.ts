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
}

export type PolicySource = { kind: 'dir'; path: string } | { kind: 'bundle'; path: string };

/** `connection` is a postgres:// URL or an `env:NAME` reference to one. */
export type AuditStoreConfig = { kind: 'embedded' } | { kind: 'postgres'; connection: string };

export interface Config {
  /** The file it was read from (as given), or null. */
  file: string | null;
  listeners: ListenerConfig[];
  /** null: no issuer configured (every token is rejected). */
  identity: IdentityConfig | null;
  targets: TargetConfig[];
  policy: { source: PolicySource; entrypoint: string };
  audit: { store: AuditStoreConfig; spoolDir: string };
  authz: { addresses: string[] };
  /** `issuer`: the agent-token issuer URL (the fleet's shared API URL; default http://<httpAddress>). */
  controlPlane: { xdsAddress: string; httpAddress: string; issuer: string };
  envoy: { adminPort: number; caFile: string; deltaXds: boolean };
}
