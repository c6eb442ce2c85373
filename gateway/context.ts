// What the gateway's components share while `chaperone up` starts them: the options they were given
// and what each earlier component made (the audit runtime, the fleet stores, the API, the authz server,
// the control plane, Envoy). A component reads what it needs with `need`, so a wrong start order fails
// loudly at start-up instead of as an undefined later.
import type { Logger } from 'pino';
import type { HttpApi } from '../api/http-api.ts';
import type { AuditTrail } from '../api/routes/audit.ts';
import type { AccessLogSink } from '../audit/access-log-service.ts';
import type { AuthzServer } from '../authz-server/server.ts';
import type { Config } from '../config/types.ts';
import type { DecisionRecorder } from '../contracts/decision.ts';
import { ChaperoneError } from '../contracts/errors.ts';
import type { AgentRegistry } from '../fleet/agent-registry.ts';
import type { ApprovalStore } from '../fleet/approval-store.ts';
import type { SharedTargets } from '../fleet/config-revisions.ts';
import type { FleetKeys } from '../fleet/fleet-keys.ts';
import type { NotificationOutbox } from '../fleet/notifications-outbox.ts';
import type { SharedState } from '../fleet/shared-state.ts';
import type { UsageCounters } from '../fleet/usage-counters.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import type { CheckTracer } from '../telemetry/tracing.ts';
import type { AdsServer } from '../xds/server/ads-server.ts';
import type { RunningComponents } from './component.ts';
import type { DataPlaneTls } from './data-plane-tls.ts';
import type { EnvoyProcess } from './envoy-process.ts';
import type { XdsPublisher } from './xds-publisher.ts';

/** The audit pipeline as the gateway uses it (gateway/audit-runtime.ts opens it). */
export interface AuditRuntime {
  recorder: DecisionRecorder;
  accessLogs: AccessLogSink;
  /** Fleet state kept in the audit store's database (one node on PGlite, any number on PostgreSQL). */
  state: SharedState;
  /** This node's signing key and the fleet's public keys. */
  keys: FleetKeys;
  status(): Record<string, unknown>;
  /** Records an administrative action (approval decided, agents revoked) in the same chained trail. */
  recordAdmin?(a: {
    /** Who acted: a person's subject and its issuer (none for Chaperone's own actions). */
    subject: string;
    issuer?: string;
    action: string;
    target?: string | null;
    reason: string;
    detail?: unknown;
  }): Promise<void>;
  /** The store's read side for the HTTP API's audit routes (query, tail, verify, export). */
  trail?: AuditTrail;
  /** Every public key checkpoints were signed with (verify checks them). */
  /** Verifies the trail against keys and anchors kept outside the database (audit/trust.ts). */
  verifyTrail?: () => Promise<unknown>;
  /** Flushes the spool into the store as far as possible, then closes. */
  close(): Promise<void>;
}

/** `chaperone up --dev`: the dev issuer's demo users, whose tokens the API hands out on loopback. */
export interface DevTokens {
  users: readonly string[];
  tokenFor(user: string, ttlSec: number): Promise<string>;
}

/** The gateway's Envoy: a supervised child process, or one that systemd/Kubernetes runs (`--envoy external`). */
export interface ManagedEnvoy {
  mode: 'managed' | 'external';
  /** The running child (managed), or null while it restarts (and always for an external Envoy). */
  current(): EnvoyProcess | null;
  /** Managed: the child runs and its admin says ready. External: true (its ADS stream is what counts). */
  ready(): Promise<boolean>;
  status(): Record<string, unknown>;
}

/** A status line: `up` (the default) prints ✓, `down` prints ✗. */
export type StatusLine = (component: string, detail: string, state?: 'up' | 'down') => void;

export interface GatewayOptions {
  config: Config;
  /** Watched for changes when set. */
  configPath: string | null;
  stateDir: string;
  logger: Logger;
  nodeId?: string;
  /** Opens the audit pipeline once ports are known to be free. */
  openAudit: () => Promise<AuditRuntime>;
  /** Dev mode: demo-user tokens on the HTTP API (served only when the API listens on loopback). */
  devTokens?: DevTokens;
  /** Extra binds to check up front (dev IdP, demo upstream). */
  extraBinds?: { component: string; host: string; port: number; override: string }[];
  onStatus?: StatusLine;
  /** `external`: no child Envoy; Envoys run elsewhere from `chaperone envoy bootstrap`. Default managed. */
  envoy?: 'managed' | 'external';
  /** Shadow mode: a candidate policy (directory or bundle) evaluated on live traffic, never enforced. */
  shadowPolicy?: { dir?: string; bundle?: string; revision?: string };
}

/** Filled in by the components as they start, in START_ORDER. */
export interface GatewayContext {
  readonly options: GatewayOptions;
  readonly config: Config;
  readonly logger: Logger;
  /** One status line per component on the terminal (and one when a component goes down or up again). */
  readonly say: StatusLine;
  /** Every running component (for /status). */
  running?: RunningComponents;
  /** Prometheus metrics, when `telemetry.metrics` is configured. */
  metrics?: Metrics;
  /** The Check tracer, when the OTEL_* environment turns traces on. */
  tracer?: CheckTracer;
  audit?: AuditRuntime;
  approvals?: ApprovalStore;
  agents?: AgentRegistry;
  /** Approval events and their notification deliveries (the console shows them). */
  outbox?: NotificationOutbox;
  /** Rate-limit and token-budget counters, shared through the store. */
  usage?: UsageCounters;
  api?: HttpApi;
  authz?: AuthzServer;
  ads?: AdsServer;
  publisher?: XdsPublisher;
  fleet?: SharedTargets;
  /** null: every data-plane service is a Unix socket. */
  dataPlaneTls?: DataPlaneTls | null;
  envoy?: ManagedEnvoy;
}

type Products = Omit<GatewayContext, 'options' | 'config' | 'logger' | 'say'>;

/** What an earlier component made; a missing one is a start-order bug, reported as such. */
export function need<K extends keyof Products>(ctx: GatewayContext, key: K): NonNullable<Products[K]> {
  const value = ctx[key];
  if (value === undefined || value === null)
    throw new ChaperoneError('ERR_GATEWAY_START', `gateway start order: ${key} is needed before it exists`);
  return value as NonNullable<Products[K]>;
}
