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
import { type BoundDataPlane, bindGrpc } from '../pki/data-plane-listen.ts';
import type { CertificateSource } from '../pki/rotating-certificate.ts';
import { type CheckDeps, type CheckMetrics, CheckPipeline, type DecisionRecorder } from './check-pipeline.ts';
import { type CredentialSpec, CredentialStore } from './credentials/credential-store.ts';
import { type PolicySource, PolicyStore } from './policy/policy-store.ts';

export interface AuthzServerOptions {
  /** `unix:/abs/path` (0600 socket) or host:port (port 0 picks a free one). Default 127.0.0.1:9191. */
  address?: string;
  /**
   * For a TCP address: this server's certificate (renewed) and the CA whose client certificates it
   * requires (pki/data-plane-listen.ts). `chaperone up` and `authz serve` always give one for TCP;
   * without it a TCP server is plaintext, which only tests should use.
   */
  tls?: CertificateSource | null;
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
}

export interface AuthzServer {
  /** `unix:/path` or host:port as bound. */
  address: string;
  /** The TCP port (0 on a Unix socket). */
  port: number;
  /** Whether clients must present a certificate from the data-plane CA. */
  mutualTls: boolean;
  policy: PolicyStore;
  metrics: CheckMetrics;
  credentials: CredentialStore;
  close(): Promise<void>;
}

const HEALTH_SERVICE = 'envoy.service.auth.v3.Authorization';

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

/** The gRPC server with Authorization/Check answered by the pipeline, and grpc.health.v1. */
function grpcServer(pipeline: CheckPipeline): { server: grpc.Server; health: HealthImplementation } {
  const root = loadEnvoyProtos([EXT_AUTHZ_PROTO]);
  const authorization = lookup<grpc.ServiceClientConstructor>(root, 'envoy.service.auth.v3.Authorization');
  const server = new grpc.Server({
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    'grpc.keepalive_permit_without_calls': 1,
  });
  server.addService(authorization.service, {
    Check: (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      pipeline.check(call.request).then(
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
  const { server, health } = grpcServer(pipeline);
  const bound = await listen(server, opts, logger);
  logger.info({ address: bound.address, mutual_tls: bound.tls }, 'authz server listening');

  return {
    address: bound.address,
    port: bound.kind === 'tcp' ? Number(bound.address.slice(bound.address.lastIndexOf(':') + 1)) : 0,
    mutualTls: bound.tls,
    policy,
    metrics,
    credentials,
    close: () =>
      new Promise<void>((resolveClose) => {
        policy.close();
        shadow?.close();
        credentials.close();
        health.setStatus('', 'NOT_SERVING');
        health.setStatus(HEALTH_SERVICE, 'NOT_SERVING');
        server.tryShutdown(() => void bound.release().then(() => resolveClose()));
        // In-flight Checks are short; do not let a stuck stream hold shutdown forever.
        setTimeout(() => server.forceShutdown(), 2000).unref();
      }),
  };
}
