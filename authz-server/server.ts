// The ext_authz gRPC server: envoy.service.auth.v3.Authorization/Check plus grpc.health.v1.
// Start-up loads the Envoy protos once, loads the policy (failing loudly if the first load fails)
// and then serves; policy reloads swap in the background without failing a request.
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import pino, { type Logger } from 'pino';
import { AUTHZ_DEFAULTS } from '../config/authz-defaults.ts';
import type { BundleServiceConfig, BundleSigningConfig } from '../config/types.ts';
import { ChaperoneError } from '../contracts/errors.ts';
import type { ApprovalStore } from '../fleet/approval-store.ts';
import type { SharedState } from '../fleet/shared-state.ts';
import { type IdentityOptions, IdentityVerifier } from '../identity/verifier.ts';
import { EXT_AUTHZ_PROTO, loadEnvoyProtos, lookup } from '../lib/envoy-proto.ts';
import { type BoundDataPlane, bindGrpc, bindUnary } from '../pki/data-plane-listen.ts';
import type { CertificateSource } from '../pki/rotating-certificate.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import type { CheckTracer } from '../telemetry/tracing.ts';
import { type CheckDeps, type CheckMetrics, CheckPipeline, type DecisionRecorder } from './check-pipeline.ts';
import { type CredentialSpec, CredentialStore } from './credentials/credential-store.ts';
import type { ConfiguredAudiences } from './pipeline/resource-audience.ts';
import { countDecision } from './pipeline/respond.ts';
import type { UsageDeps } from './pipeline/usage.ts';
import { openPolicySources, type PolicySources } from './policy/policy-sources.ts';
import type { PolicySource, PolicyStore } from './policy/policy-store.ts';
import type { CheckResponseMessage } from './result-mapper.ts';
import { Admission, type CallState, callState, requestTimeMs } from './transport/admission.ts';
import { authzMethods, HealthStatus } from './transport/check-service.ts';
import { createUnaryGrpcServer } from './transport/unary-grpc-server.ts';

export interface AuthzServerOptions {
  /** `unix:/abs/path` (0600 socket) or host:port (port 0 picks a free one). Default 127.0.0.1:9191. */
  address?: string;
  /**
   * For a TCP address: this server's certificate (renewed) and the CA whose client certificates it
   * requires (pki/data-plane-listen.ts). `chaperone up` and `authz serve` always give one for TCP;
   * without it a TCP server is plaintext, which only tests should use.
   */
  tls?: CertificateSource | null;
  policy: {
    bundle?: string;
    dir?: string;
    entrypoint?: string;
    capabilities?: string;
    watch?: boolean;
    /** Verify bundle signatures (OPA's keys and signing settings). */
    signing?: BundleSigningConfig | null;
    /** Follow a bundle server (after start-up, instead of the local source). */
    bundleService?: BundleServiceConfig | null;
  };
  /** The fleet's shared store: the published policy revision is served (and followed) when there is one. */
  sharedState?: SharedState;
  identity?: IdentityOptions;
  /**
   * MCP targets' RFC 8707 resources (`targets[].mcp.resource`): tokens a person's issuer minted for one
   * of them are verified too, and good on that target only (pipeline/resource-audience.ts).
   */
  resourceAudiences?: string[];
  logger?: Logger;
  /** Rate limits and token budgets: the fleet's counters and the configured limits (input.usage). */
  usage?: UsageDeps;
  recorder?: DecisionRecorder;
  maxBodyBytes?: number;
  /** Upstream credentials per target name (`env:`/`file:` references, resolved here, never logged). */
  credentials?: Record<string, CredentialSpec[]>;
  /** Human approval: where pending requests live and the status URL returned to the requester. */
  approvals?: { store: ApprovalStore; statusUrl: (id: string) => string };
  revocation?: CheckDeps['revocation'];
  /** Shadow mode: a candidate policy evaluated on live traffic, recorded and counted, never enforced. */
  shadow?: { bundle?: string; dir?: string; revision?: string; entrypoint?: string };
  onDecision?: CheckDeps['onDecision'];
  /**
   * What carries Check: `http2`, the lean unary gRPC server on node:http2 (authz-server/transport/, the
   * default: less CPU per Check through Envoy, docs/performance.md), or `grpc-js` (@grpc/grpc-js). The
   * environment variable CHAPERONE_AUTHZ_TRANSPORT sets it when the option does not, so `chaperone up`
   * can be switched without a flag.
   */
  transport?: AuthzTransport;
  /** Prometheus metrics and the Check tracer (each absent when off). The caller shuts the tracer down. */
  telemetry?: { metrics?: Metrics; tracer?: CheckTracer | null };
  /**
   * Checks running at once; more are answered 503 ERR_OVERLOADED at once (transport/admission.ts).
   * Default AUTHZ_DEFAULTS.maxInFlight, or the environment variable CHAPERONE_AUTHZ_MAX_IN_FLIGHT.
   */
  maxInFlight?: number;
  /**
   * Event-loop lag (ms) beyond which new Checks are shed the same way; 0 turns it off. Default
   * AUTHZ_DEFAULTS.maxLagMs, or the environment variable CHAPERONE_AUTHZ_MAX_LAG_MS.
   */
  maxLagMs?: number;
}

export type AuthzTransport = 'grpc-js' | 'http2';

function transportOf(opts: AuthzServerOptions): AuthzTransport {
  const chosen = opts.transport ?? process.env['CHAPERONE_AUTHZ_TRANSPORT'] ?? AUTHZ_DEFAULTS.transport;
  if (chosen !== 'grpc-js' && chosen !== 'http2') {
    throw new ChaperoneError('ERR_INTERNAL', `unknown authz transport "${chosen}" (grpc-js or http2)`);
  }
  return chosen;
}

export interface AuthzServer {
  /** `unix:/path` or host:port as bound. */
  address: string;
  /** The TCP port (0 on a Unix socket). */
  port: number;
  /** Whether clients must present a certificate from the data-plane CA. */
  mutualTls: boolean;
  policy: PolicyStore;
  /** Where the policy comes from and how its last loads went (for /status). */
  policyStatus(): Record<string, unknown>;
  metrics: CheckMetrics;
  /** Load shedding: Checks in flight, the bounds, how many were shed, the loop's lag. */
  admission: Pick<Admission, 'stats' | 'close'>;
  credentials: CredentialStore;
  close(): Promise<void>;
}

const HEALTH_SERVICE = 'envoy.service.auth.v3.Authorization';

/** The option, else the environment variable, else the default; a whole number from `min`. */
function limitOf(
  name: string,
  option: number | undefined,
  env: string,
  fallback: number,
  min: number,
): number {
  const raw = option ?? process.env[env] ?? fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min)
    throw new ChaperoneError(
      'ERR_INTERNAL',
      `${name} must be a whole number of at least ${min}, got "${raw}"`,
    );
  return n;
}

function admissionOf(opts: AuthzServerOptions, metrics: CheckMetrics): Admission {
  return new Admission({
    maxInFlight: limitOf(
      'max Checks in flight',
      opts.maxInFlight,
      'CHAPERONE_AUTHZ_MAX_IN_FLIGHT',
      AUTHZ_DEFAULTS.maxInFlight,
      1,
    ),
    maxLagMs: limitOf(
      'max event-loop lag',
      opts.maxLagMs,
      'CHAPERONE_AUTHZ_MAX_LAG_MS',
      AUTHZ_DEFAULTS.maxLagMs,
      0,
    ),
    onShed: () => countDecision(metrics, 'ERR_OVERLOADED', false),
  });
}

/** A Check as the transports call it: admitted (or shed), then run by the pipeline. */
type CheckHandler = (request: unknown, call: CallState) => Promise<CheckResponseMessage>;

function policySource(p: AuthzServerOptions['policy']): PolicySource {
  const entrypoint = p.entrypoint ?? AUTHZ_DEFAULTS.entrypoint;
  if (p.bundle) return { kind: 'bundle', path: p.bundle, entrypoint };
  return {
    kind: 'dir',
    path: p.dir ?? AUTHZ_DEFAULTS.policyDir,
    entrypoint,
    ...(p.capabilities ? { capabilities: p.capabilities } : {}),
  };
}

/** The enforcing policy (its first load must succeed), its fleet sources, and the shadow candidate. */
function loadPolicies(opts: AuthzServerOptions, logger: Logger): Promise<PolicySources> {
  const shadow = opts.shadow;
  const entrypoint = shadow?.entrypoint ?? opts.policy.entrypoint ?? AUTHZ_DEFAULTS.entrypoint;
  return openPolicySources({
    local: policySource(opts.policy),
    watch: opts.policy.watch ?? false,
    signing: opts.policy.signing ?? null,
    bundleService: opts.policy.bundleService ?? null,
    fleet: opts.sharedState ?? null,
    ...(opts.telemetry?.metrics
      ? { onReload: (ok: boolean) => opts.telemetry?.metrics?.policyReload(ok) }
      : {}),
    shadow: !shadow
      ? null
      : shadow.revision
        ? { kind: 'revision', revision: shadow.revision, entrypoint }
        : policySource({ ...shadow, entrypoint }),
    logger,
  });
}

async function startIdentity(opts: AuthzServerOptions, logger: Logger): Promise<IdentityVerifier | null> {
  if (!opts.identity || opts.identity.issuers.length === 0) {
    logger.warn('no identity issuer configured: every request reaches the policy unauthenticated');
    return null;
  }
  const resources = opts.resourceAudiences ?? [];
  const identity = new IdentityVerifier({
    ...opts.identity,
    issuers: opts.identity.issuers.map((i) =>
      i.agentIssuer || resources.length === 0
        ? i
        : { ...i, audiences: [...new Set([...i.audiences, ...resources])] },
    ),
  });
  // Prefetch discovery and keys so the first request does not pay for them; failure is not fatal
  // (the verifier retries later), but it is worth a warning.
  await identity
    .warmUp()
    .catch((err: unknown) => logger.warn({ err: String(err) }, 'identity warm-up failed'));
  return identity;
}

/** Each person-issuer's own configured audiences (before the MCP resources were added for verification). */
function configuredAudiences(opts: AuthzServerOptions): ConfiguredAudiences {
  return new Map(
    (opts.identity?.issuers ?? [])
      .filter((i) => !i.agentIssuer)
      .map((i) => [i.issuer, new Set(i.audiences)] as const),
  );
}

async function loadCredentials(credentials: CredentialStore, logger: Logger): Promise<void> {
  for (const c of await credentials.load()) {
    if (!c.ready)
      logger.warn(
        { target: c.target, header: c.header, ref: c.ref, problem: c.problem },
        'credential unavailable: its target denies until it resolves',
      );
  }
  credentials.watch();
}

/**
 * The listen decision (socket 0600, or TLS requiring a client certificate) is pki/data-plane-listen.ts's,
 * shared with the control plane and with any other Check transport.
 */
async function listen(
  server: grpc.Server,
  opts: AuthzServerOptions,
  logger: Logger,
): Promise<BoundDataPlane> {
  const bound = await bindGrpc(server, {
    address: opts.address ?? AUTHZ_DEFAULTS.address,
    tls: opts.tls ?? null,
    component: 'authz server',
    override: 'authz.address',
  });
  if (bound.kind === 'tcp' && !bound.tls)
    logger.warn(
      { address: bound.address },
      'authz server on plaintext TCP: any process that reaches it gets answers',
    );
  return bound;
}

/** The gRPC server with Authorization/Check answered by `check`, and grpc.health.v1. */
function grpcServer(check: CheckHandler): { server: grpc.Server; health: HealthImplementation } {
  const root = loadEnvoyProtos([EXT_AUTHZ_PROTO]);
  const authorization = lookup<grpc.ServiceClientConstructor>(root, 'envoy.service.auth.v3.Authorization');
  const server = new grpc.Server({
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    'grpc.keepalive_permit_without_calls': 1,
  });
  server.addService(authorization.service, {
    Check: (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const deadline = call.getDeadline();
      const state = callState(() => call.cancelled, deadline instanceof Date ? deadline.getTime() : deadline);
      // Envoy puts its ext_authz span's context in the call's metadata when it traces.
      const parent = call.metadata.get('traceparent')[0];
      check(call.request, typeof parent === 'string' ? { ...state, traceparent: parent } : state).then(
        (response) => callback(null, response),
        // CheckPipeline.check never rejects; this is belt and braces.
        (err: unknown) => callback({ code: grpc.status.INTERNAL, details: String(err) }),
      );
    },
  });
  const health = new HealthImplementation({ '': 'SERVING', [HEALTH_SERVICE]: 'SERVING' });
  health.addToServer(server);
  return { server, health };
}

/** The serving policy's revision (an info gauge) and whether its last reload failed, read per scrape. */
function policyGauges(metrics: Metrics, policy: PolicyStore): void {
  metrics.gauge(
    'chaperone_policy_info',
    'The policy revision serving (value 1).',
    () => {
      const revision = policy.current()?.revision;
      return revision ? [{ labels: { revision }, value: 1 }] : [];
    },
    ['revision'],
  );
  metrics.gauge(
    'chaperone_policy_reload_failing',
    '1 when the last policy reload failed (the last good policy keeps serving), else 0.',
    () => (policy.lastError() ? 1 : 0),
  );
}

export async function startAuthzServer(opts: AuthzServerOptions): Promise<AuthzServer> {
  const logger = opts.logger ?? pino({ name: 'chaperone-authz' });
  const transport = transportOf(opts);
  // Validated first: an inline secret in the config must fail before anything starts.
  const credentials = new CredentialStore(opts.credentials ?? {}, {
    onChange: (c) =>
      logger.info(
        { target: c.target, header: c.header, ref: c.ref, ready: c.ready, problem: c.problem },
        'credential changed',
      ),
  });
  const sources = await loadPolicies(opts, logger);
  const { policy, shadow } = sources;
  const identity = await startIdentity(opts, logger);
  await loadCredentials(credentials, logger);

  const metrics: CheckMetrics = { total: 0, allowed: 0, denied: 0, errors: {} };
  const pipeline = new CheckPipeline({
    policy,
    identity,
    logger,
    metrics,
    credentials,
    audiences: configuredAudiences(opts),
    ...(opts.usage ? { usage: opts.usage } : {}),
    ...(opts.approvals ? { approvals: opts.approvals } : {}),
    ...(opts.revocation ? { revocation: opts.revocation } : {}),
    ...(shadow ? { shadow } : {}),
    ...(opts.onDecision ? { onDecision: opts.onDecision } : {}),
    ...(opts.telemetry?.metrics ? { telemetry: opts.telemetry.metrics } : {}),
    ...(opts.telemetry?.tracer ? { tracer: opts.telemetry.tracer } : {}),
    ...(opts.identity?.tokenHeader ? { tokenHeader: opts.identity.tokenHeader } : {}),
    ...(opts.recorder ? { recorder: opts.recorder } : {}),
    ...(opts.maxBodyBytes ? { maxBodyBytes: opts.maxBodyBytes } : {}),
  });
  if (opts.telemetry?.metrics) policyGauges(opts.telemetry.metrics, policy);
  const admission = admissionOf(opts, metrics);
  const check: CheckHandler = (request, call) =>
    admission.run(() => pipeline.check(request, call), requestTimeMs(request));
  const parts = { policy, sources, metrics, credentials, logger, admission };
  return transport === 'http2' ? listenLean(opts, check, parts) : listenGrpcJs(opts, check, parts);
}

type ServerParts = Pick<AuthzServer, 'policy' | 'metrics' | 'credentials' | 'admission'> & {
  sources: PolicySources;
  logger: Logger;
};

/** What both transports answer besides their listener. */
function served(parts: ServerParts, bound: BoundDataPlane, close: () => Promise<void>): AuthzServer {
  parts.logger.info({ address: bound.address, mutual_tls: bound.tls }, 'authz server listening');
  return {
    address: bound.address,
    port: bound.kind === 'tcp' ? Number(bound.address.slice(bound.address.lastIndexOf(':') + 1)) : 0,
    mutualTls: bound.tls,
    policy: parts.policy,
    policyStatus: () => parts.sources.status(),
    metrics: parts.metrics,
    admission: parts.admission,
    credentials: parts.credentials,
    close: async () => {
      parts.sources.close();
      parts.credentials.close();
      parts.admission.close();
      await close();
      await bound.release();
    },
  };
}

/** @grpc/grpc-js: Authorization/Check and grpc.health.v1. */
async function listenGrpcJs(opts: AuthzServerOptions, check: CheckHandler, parts: ServerParts) {
  const { server, health } = grpcServer(check);
  const bound = await listen(server, opts, parts.logger);
  return served(
    parts,
    bound,
    () =>
      new Promise<void>((resolveClose) => {
        health.setStatus('', 'NOT_SERVING');
        health.setStatus(HEALTH_SERVICE, 'NOT_SERVING');
        server.tryShutdown(() => resolveClose());
        // In-flight Checks are short; do not let a stuck stream hold shutdown forever.
        setTimeout(() => server.forceShutdown(), 2000).unref();
      }),
  );
}

/**
 * The same server on the lean transport (authz-server/transport/): Check and grpc.health.v1 Check, on
 * the data-plane listen rules (pki/data-plane-listen.ts): a 0600 Unix socket, or TLS requiring a client
 * certificate from the data-plane CA.
 */
async function listenLean(opts: AuthzServerOptions, check: CheckHandler, parts: ServerParts) {
  const health = new HealthStatus({ '': 'SERVING', [HEALTH_SERVICE]: 'SERVING' });
  const server = createUnaryGrpcServer({
    methods: authzMethods(check, health),
    maxReceiveMessageBytes: 16 * 1024 * 1024,
    // CheckPipeline.check never rejects; this is belt and braces.
    onHandlerError: (err) => parts.logger.error({ err: String(err) }, 'Check failed in the transport'),
    tls: opts.tls ?? null,
  });
  const bound = await bindUnary(server, {
    address: opts.address ?? AUTHZ_DEFAULTS.address,
    tls: opts.tls ?? null,
    component: 'authz server',
    override: 'authz.address',
  });
  if (bound.kind === 'tcp' && !bound.tls)
    parts.logger.warn(
      { address: bound.address },
      'authz server on plaintext TCP: any process that reaches it gets answers',
    );
  return served(parts, bound, async () => {
    health.set('', 'NOT_SERVING');
    health.set(HEALTH_SERVICE, 'NOT_SERVING');
    // In-flight Checks are short; do not let a stuck stream hold shutdown forever.
    await server.close(2000);
  });
}
