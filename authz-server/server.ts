// The ext_authz gRPC server: envoy.service.auth.v3.Authorization/Check plus grpc.health.v1.
// Start-up loads the Envoy protos once, loads the policy (failing loudly if the first load fails)
// and then serves; policy reloads swap in the background without failing a request.
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import pino, { type Logger } from 'pino';
import { AUTHZ_DEFAULTS } from '../config/authz-defaults.ts';
import { ChaperoneError } from '../contracts/errors.ts';
import type { ApprovalStore } from '../fleet/approval-store.ts';
import { type IdentityOptions, IdentityVerifier } from '../identity/verifier.ts';
import { EXT_AUTHZ_PROTO, loadEnvoyProtos, lookup } from '../lib/envoy-proto.ts';
import { splitHostPort } from '../lib/ports.ts';
import { type CheckDeps, type CheckMetrics, CheckPipeline, type DecisionRecorder } from './check-pipeline.ts';
import { type CredentialSpec, CredentialStore } from './credentials/credential-store.ts';
import { countDecision } from './pipeline/respond.ts';
import { type PolicySource, PolicyStore } from './policy/policy-store.ts';
import type { CheckResponseMessage } from './result-mapper.ts';
import { Admission, type CallState, callState, requestTimeMs } from './transport/admission.ts';
import { authzMethods, HealthStatus } from './transport/check-service.ts';
import { createUnaryGrpcServer } from './transport/unary-grpc-server.ts';

export interface AuthzServerOptions {
  /** host:port; port 0 picks a free one. Default 127.0.0.1:9191. */
  address?: string;
  policy: { bundle?: string; dir?: string; entrypoint?: string; capabilities?: string; watch?: boolean };
  identity?: IdentityOptions;
  logger?: Logger;
  recorder?: DecisionRecorder;
  maxBodyBytes?: number;
  /** Upstream credentials per target name (`env:`/`file:` references, resolved here, never logged). */
  credentials?: Record<string, CredentialSpec[]>;
  /** Human approval: where pending requests live and the status URL returned to the requester. */
  approvals?: { store: ApprovalStore; statusUrl: (id: string) => string };
  revocation?: CheckDeps['revocation'];
  /** Shadow mode: a candidate policy evaluated on live traffic, recorded and counted, never enforced. */
  shadow?: { bundle?: string; dir?: string; entrypoint?: string };
  onDecision?: CheckDeps['onDecision'];
  /**
   * What carries Check: `http2`, the lean unary gRPC server on node:http2 (authz-server/transport/, the
   * default: less CPU per Check through Envoy, docs/performance.md), or `grpc-js` (@grpc/grpc-js). The
   * environment variable CHAPERONE_AUTHZ_TRANSPORT sets it when the option does not, so `chaperone up`
   * can be switched without a flag.
   */
  transport?: AuthzTransport;
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
  address: string;
  port: number;
  policy: PolicyStore;
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

/** The enforcing policy (its first load must succeed) and the shadow candidate, if any. */
async function loadPolicies(
  opts: AuthzServerOptions,
  logger: Logger,
): Promise<{ policy: PolicyStore; shadow: PolicyStore | null }> {
  const policy = new PolicyStore(policySource(opts.policy), {
    onLoaded: (s) => logger.info({ policy_revision: s.revision }, 'policy loaded'),
    onError: (e) => logger.error({ errors: e.errors }, e.message),
  });
  if (!(await policy.reload())) {
    const err = policy.lastError();
    throw new ChaperoneError('ERR_POLICY_MISSING', err?.message ?? 'policy could not be loaded');
  }
  if (opts.policy.watch) policy.watch();
  if (!opts.shadow) return { policy, shadow: null };
  const shadow = new PolicyStore(policySource(opts.shadow), {
    onLoaded: (s) => logger.info({ shadow_revision: s.revision }, 'shadow policy loaded'),
    onError: (e) => logger.error({ errors: e.errors }, `shadow policy: ${e.message}`),
  });
  if (!(await shadow.reload())) {
    policy.close();
    throw new ChaperoneError(
      'ERR_POLICY_MISSING',
      `shadow policy could not be loaded: ${shadow.lastError()?.message ?? 'unknown error'}`,
    );
  }
  shadow.watch();
  return { policy, shadow };
}

async function startIdentity(opts: AuthzServerOptions, logger: Logger): Promise<IdentityVerifier | null> {
  if (!opts.identity || opts.identity.issuers.length === 0) {
    logger.warn('no identity issuer configured: every request reaches the policy unauthenticated');
    return null;
  }
  const identity = new IdentityVerifier(opts.identity);
  // Prefetch discovery and keys so the first request does not pay for them; failure is not fatal
  // (the verifier retries later), but it is worth a warning.
  await identity
    .warmUp()
    .catch((err: unknown) => logger.warn({ err: String(err) }, 'identity warm-up failed'));
  return identity;
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

function listen(server: grpc.Server, address: string): Promise<number> {
  return new Promise<number>((resolvePort, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, boundPort) => {
      if (err) {
        reject(
          new ChaperoneError('ERR_INTERNAL', `cannot listen on ${address}: ${err.message}`, { cause: err }),
        );
      } else resolvePort(boundPort);
    });
  });
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
      check(call.request, state).then(
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
  const { policy, shadow } = await loadPolicies(opts, logger);
  const identity = await startIdentity(opts, logger);
  await loadCredentials(credentials, logger);

  const metrics: CheckMetrics = { total: 0, allowed: 0, denied: 0, errors: {} };
  const pipeline = new CheckPipeline({
    policy,
    identity,
    logger,
    metrics,
    credentials,
    ...(opts.approvals ? { approvals: opts.approvals } : {}),
    ...(opts.revocation ? { revocation: opts.revocation } : {}),
    ...(shadow ? { shadow } : {}),
    ...(opts.onDecision ? { onDecision: opts.onDecision } : {}),
    ...(opts.identity?.tokenHeader ? { tokenHeader: opts.identity.tokenHeader } : {}),
    ...(opts.recorder ? { recorder: opts.recorder } : {}),
    ...(opts.maxBodyBytes ? { maxBodyBytes: opts.maxBodyBytes } : {}),
  });
  const admission = admissionOf(opts, metrics);
  const check: CheckHandler = (request, call) =>
    admission.run(() => pipeline.check(request, call), requestTimeMs(request));
  if (transport === 'http2')
    return listenLean(opts, check, { policy, shadow, metrics, credentials, logger, admission });
  const { server, health } = grpcServer(check);
  const address = opts.address ?? AUTHZ_DEFAULTS.address;
  const port = await listen(server, address);
  const host = address.slice(0, address.lastIndexOf(':'));
  logger.info({ address: `${host}:${port}` }, 'authz server listening');

  return {
    address: `${host}:${port}`,
    port,
    policy,
    metrics,
    admission,
    credentials,
    close: () =>
      new Promise<void>((resolveClose) => {
        policy.close();
        shadow?.close();
        credentials.close();
        admission.close();
        health.setStatus('', 'NOT_SERVING');
        health.setStatus(HEALTH_SERVICE, 'NOT_SERVING');
        server.tryShutdown(() => resolveClose());
        // In-flight Checks are short; do not let a stuck stream hold shutdown forever.
        setTimeout(() => server.forceShutdown(), 2000).unref();
      }),
  };
}

/** The same server on the lean transport (authz-server/transport/): Check and grpc.health.v1 Check. */
async function listenLean(
  opts: AuthzServerOptions,
  check: CheckHandler,
  parts: Pick<AuthzServer, 'policy' | 'metrics' | 'credentials' | 'admission'> & {
    shadow: PolicyStore | null;
    logger: Logger;
  },
): Promise<AuthzServer> {
  const health = new HealthStatus({ '': 'SERVING', [HEALTH_SERVICE]: 'SERVING' });
  const server = createUnaryGrpcServer({
    methods: authzMethods(check, health),
    maxReceiveMessageBytes: 16 * 1024 * 1024,
    // CheckPipeline.check never rejects; this is belt and braces.
    onHandlerError: (err) => parts.logger.error({ err: String(err) }, 'Check failed in the transport'),
  });
  const address = opts.address ?? AUTHZ_DEFAULTS.address;
  const { host, port: wanted } = splitHostPort(address);
  const port = await server.listen(host, wanted).catch((err: Error) => {
    throw new ChaperoneError('ERR_INTERNAL', `cannot listen on ${address}: ${err.message}`, { cause: err });
  });
  const bound = `${address.slice(0, address.lastIndexOf(':'))}:${port}`;
  parts.logger.info({ address: bound, transport: 'http2' }, 'authz server listening');
  return {
    address: bound,
    port,
    policy: parts.policy,
    metrics: parts.metrics,
    admission: parts.admission,
    credentials: parts.credentials,
    close: async () => {
      parts.policy.close();
      parts.shadow?.close();
      parts.credentials.close();
      parts.admission.close();
      health.set('', 'NOT_SERVING');
      health.set(HEALTH_SERVICE, 'NOT_SERVING');
      // In-flight Checks are short; do not let a stuck stream hold shutdown forever.
      await server.close(2000);
    },
  };
}
