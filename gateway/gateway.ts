// `chaperone up`: the whole gateway in one process tree — audit pipeline, authz server, control plane
// (ADS + access-log service), the HTTP API and a real Envoy — started in dependency order, each with
// a status line, and stopped in reverse order (the audit spool flushed last).
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { type ApiHandler, type HttpApi, startHttpApi } from '../api/http-api.ts';
import { AGENT_AUDIENCE, agentRoutes } from '../api/routes/agents.ts';
import { approvalRoutes } from '../api/routes/approvals.ts';
import { type AccessLogSink, addAccessLogService } from '../audit/access-log-service.ts';
import { decisionLogPush } from '../audit/decision-log-push.ts';
import type { CredentialSpec } from '../authz-server/credentials/credential-store.ts';
import { addMaskProcessor } from '../authz-server/masking/mask-processor.ts';
import { type AuthzServer, startAuthzServer } from '../authz-server/server.ts';
import type { Config } from '../config/types.ts';
import type { DecisionRecorder } from '../contracts/decision.ts';
import { AgentRegistry } from '../fleet/agent-registry.ts';
import { ApprovalStore } from '../fleet/approval-store.ts';
import { SharedTargets } from '../fleet/config-revisions.ts';
import type { FleetKeys } from '../fleet/fleet-keys.ts';
import type { SharedState } from '../fleet/shared-state.ts';
import type { IdentityOptions } from '../identity/verifier.ts';
import { IdentityVerifier } from '../identity/verifier.ts';
import { assertPortsFree, type PlannedBind, splitHostPort } from '../lib/ports.ts';
import { envoyBootstrap } from '../xds/bootstrap.ts';
import { AdsServer } from '../xds/server/ads-server.ts';
import { type EnvoyProcess, startEnvoy } from './envoy-process.ts';
import { XdsPublisher } from './xds-publisher.ts';

/** The audit pipeline as the gateway uses it (audit/ provides it). */
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
    subject: string;
    action: string;
    target?: string | null;
    reason: string;
    detail?: unknown;
  }): Promise<void>;
  /** HTTP API routes of the audit trail (query, tail, verify). */
  routes?: Record<string, ApiHandler>;
  /** Flushes the spool into the store as far as possible, then closes. */
  close(): Promise<void>;
}

export interface GatewayOptions {
  config: Config;
  /** Watched for changes when set. */
  configPath: string | null;
  stateDir: string;
  logger: Logger;
  nodeId?: string;
  /** Opens the audit pipeline once ports are known to be free. */
  openAudit: () => Promise<AuditRuntime>;
  /** Extra HTTP API routes (dev tokens, approvals…). */
  apiRoutes?: Record<string, ApiHandler>;
  /** Extra binds to check up front (dev IdP, demo upstream). */
  extraBinds?: PlannedBind[];
  onStatus?: (component: string, detail: string) => void;
  /** Shadow mode: a candidate policy (directory or bundle) evaluated on live traffic, never enforced. */
  shadowPolicy?: { dir?: string; bundle?: string; revision?: string };
}

export interface Gateway {
  authz: AuthzServer;
  ads: AdsServer;
  api: HttpApi;
  envoy: EnvoyProcess;
  audit: AuditRuntime;
  publisher: XdsPublisher;
  status(): Record<string, unknown>;
  stop(): Promise<void>;
}

export function identityOptions(config: Config): IdentityOptions | undefined {
  if (!config.identity) return undefined;
  return {
    issuers: config.identity.issuers,
    tokenHeader: config.identity.tokenHeader,
    clockToleranceSec: config.identity.clockToleranceSec,
  };
}

export function credentialSpecs(config: Config): Record<string, CredentialSpec[]> {
  const out: Record<string, CredentialSpec[]> = {};
  for (const t of config.targets) {
    if (t.credentials.length > 0)
      out[t.name] = t.credentials.map((c) => ({ header: c.header, value: c.value, format: c.format }));
  }
  return out;
}

export function plannedBinds(config: Config): PlannedBind[] {
  const authz = splitHostPort(config.authz.addresses[0] ?? '127.0.0.1:9191');
  const xds = splitHostPort(config.controlPlane.xdsAddress);
  const api = splitHostPort(config.controlPlane.httpAddress);
  return [
    ...config.listeners.map((l) => ({
      component: `envoy listener ${l.name}`,
      host: l.address,
      port: l.port,
      override: `listeners[].port in the config`,
    })),
    {
      component: 'envoy admin',
      host: '127.0.0.1',
      port: config.envoy.adminPort,
      override: 'envoy.admin_port',
    },
    { component: 'authz server', ...authz, override: 'authz.address' },
    { component: 'control plane (ADS + ALS)', ...xds, override: 'control_plane.xds_address' },
    { component: 'HTTP API', ...api, override: 'control_plane.http_address' },
  ];
}

async function listenGrpc(server: grpc.Server, address: string): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) =>
      err ? reject(err) : resolve(port),
    ),
  );
}

export async function startGateway(o: GatewayOptions): Promise<Gateway> {
  const { config, logger } = o;
  const say = o.onStatus ?? (() => undefined);
  await assertPortsFree([...plannedBinds(config), ...(o.extraBinds ?? [])]);

  const stack: { name: string; stop: () => Promise<void> | void }[] = [];
  const stopAll = async () => {
    for (const s of stack.reverse()) {
      try {
        await s.stop();
      } catch (err) {
        logger.error(
          { component: s.name, err: err instanceof Error ? err.message : String(err) },
          'stop failed',
        );
      }
    }
    stack.length = 0;
  };

  try {
    const audit = await o.openAudit();
    stack.push({ name: 'audit', stop: () => audit.close() });
    const auditStatus = audit.status() as { store?: string; spool?: { dir?: string } };
    say('audit', `${auditStatus.store ?? 'store'}  spool ${auditStatus.spool?.dir ?? '-'}`);

    const policy = config.policy.source;
    const identity = identityOptions(config);
    const approvals = await ApprovalStore.open(audit.state);
    const apiBase = `http://${config.controlPlane.httpAddress}`;
    // Agent tokens carry the fleet's issuer; this node verifies them with the fleet's public keys,
    // which its own API publishes.
    const agentIssuer = config.controlPlane.issuer;
    // Chaperone's own issuer for agent tokens (RFC 8693 exchange at the HTTP API), trusted next to
    // the configured human issuers; its keys live in the state directory.
    const agentKeys = audit.keys;
    const agents = await AgentRegistry.open(audit.state);
    stack.push({ name: 'agent inventory', stop: () => agents.close() });
    const authzIdentity = {
      ...(identity ?? {}),
      issuers: [
        ...(identity?.issuers ?? []),
        {
          issuer: agentIssuer,
          audiences: [AGENT_AUDIENCE],
          jwksUri: `${apiBase}/.well-known/jwks.json`,
          algorithms: ['ES256'],
        },
      ],
    };
    const humanVerifier = identity ? new IdentityVerifier(identity) : null;
    // The HTTP API starts before the authz server: Chaperone's own issuer (discovery, JWKS) is served
    // from it, and the authz server fetches those keys at start.
    const routes: Record<string, ApiHandler> = {
      'GET /healthz': () => ({ status: 200, body: { status: 'ok' } }),
      'GET /readyz': () => ({ status: 503, body: { ready: false, starting: true } }),
      ...audit.routes,
      // Agents may follow their own approval requests; deciding one needs a human (enforced there).
      ...approvalRoutes(approvals, new IdentityVerifier(authzIdentity), audit.recordAdmin),
      ...agentRoutes({
        issuer: agentIssuer,
        keys: agentKeys,
        registry: agents,
        userVerifier: humanVerifier,
        ...(audit.recordAdmin ? { audit: audit.recordAdmin } : {}),
      }),
      ...o.apiRoutes,
    };
    const api = await startHttpApi({
      ...splitHostPort(config.controlPlane.httpAddress),
      logger: logger.child({ component: 'api' }),
      routes,
    });
    stack.push({ name: 'api', stop: () => api.close() });
    say('http api', `${api.url}  /healthz /readyz /status /audit /approvals /agents`);
    const logs = config.decisionLogs
      ? decisionLogPush(config.decisionLogs, {
          entrypoint: config.policy.entrypoint,
          logger: logger.child({ component: 'decision-logs' }),
          labels: { id: o.nodeId ?? 'chaperone-local' },
          // Masked as the audit trail masks them (audit-runtime.ts gives its recorder the same list).
          extraSecretHeaders: [
            ...(config.identity ? [config.identity.tokenHeader] : []),
            ...config.targets.flatMap((t) => t.credentials.map((c) => c.header)),
          ],
        })
      : null;
    logs?.start();
    stack.push({ name: 'decision logs', stop: () => logs?.stop() });
    const authz = await startAuthzServer({
      address: config.authz.addresses[0] ?? '127.0.0.1:9191',
      policy: {
        ...(policy.kind === 'bundle' ? { bundle: policy.path } : { dir: policy.path }),
        entrypoint: config.policy.entrypoint,
        watch: true,
        signing: config.policy.signing ?? null,
        bundleService: config.policy.bundleService ?? null,
      },
      sharedState: audit.state,
      identity: authzIdentity,
      logger: logger.child({ component: 'authz' }),
      revocation: agents,
      ...(o.shadowPolicy ? { shadow: { ...o.shadowPolicy, entrypoint: config.policy.entrypoint } } : {}),
      onDecision: (e) => {
        agents.observe(e);
        logs?.add(e);
      },
      recorder: audit.recorder,
      credentials: credentialSpecs(config),
      // The fleet's public API (control_plane.issuer): any node answers for any approval.
      approvals: { store: approvals, statusUrl: (id) => `${agentIssuer}/approvals/status?id=${id}` },
    });
    stack.push({ name: 'authz', stop: () => authz.close() });
    say('authz server', `${authz.address}  policy ${authz.policy.current()?.revision ?? 'none'}`);

    const ads = new AdsServer(logger.child({ component: 'xds' }));
    const grpcServer = new grpc.Server();
    ads.addToServer(grpcServer);
    addAccessLogService(grpcServer, audit.accessLogs, logger.child({ component: 'als' }));
    addMaskProcessor(grpcServer, {
      logger: logger.child({ component: 'masking' }),
      // What was masked (counts per detector, never values) joins the decision in the audit trail.
      onMasked: (m) =>
        void audit.recordAdmin?.({
          subject: 'chaperone',
          action: 'MASK',
          reason: `masked ${
            Object.entries(m.counts)
              .map(([k, n]) => `${n} ${k}`)
              .join(', ') || 'nothing'
          } in the response to decision ${m.decisionId ?? '?'}`,
          detail: { decision_id: m.decisionId, counts: m.counts, content_type: m.contentType },
        }),
    });
    await listenGrpc(grpcServer, config.controlPlane.xdsAddress);
    stack.push({
      name: 'control plane',
      stop: () =>
        new Promise<void>((resolve) => {
          grpcServer.tryShutdown(() => resolve());
          setTimeout(() => grpcServer.forceShutdown(), 2000).unref();
        }),
    });
    // Credentials follow the served targets: a target added by an edit or a fleet revision gets its
    // credential injected without a restart.
    const publisher = new XdsPublisher(ads, logger.child({ component: 'config' }), (served) => {
      authz.credentials
        .replace(credentialSpecs(served))
        .catch((err: unknown) =>
          logger.error(
            { err: err instanceof Error ? err.message : String(err) },
            'credentials of the new targets rejected; the previous ones stay in force',
          ),
        );
    });
    // Targets are the fleet's: this node's file joins the revisions in the store, newer ones from other
    // control planes are served as they arrive.
    const fleet = await SharedTargets.open(audit.state, config.targets, {
      logger: logger.child({ component: 'config' }),
      onRevision: (r) => publisher.publishRevision(r),
    });
    publisher.joinFleet(fleet.shared);
    const first = publisher.publish({ ...config, targets: fleet.revision.targets });
    if (!first.ok)
      throw new Error(`config cannot be translated to Envoy resources:\n  ${first.errors.join('\n  ')}`);
    if (o.configPath) publisher.watchFile(o.configPath);
    stack.push({ name: 'config watch', stop: () => publisher.close() });
    say(
      'control plane',
      `${config.controlPlane.xdsAddress}  ADS + access logs, config ${first.version?.slice(0, 12)} (revision ${fleet.revision.revision})`,
    );

    const nodeId = o.nodeId ?? 'chaperone-local';
    const adminUrl = `http://127.0.0.1:${config.envoy.adminPort}`;
    const envoy = await startEnvoy({
      bootstrap: envoyBootstrap({
        nodeId,
        xdsAddress: config.controlPlane.xdsAddress,
        adminPort: config.envoy.adminPort,
        delta: config.envoy.deltaXds,
      }),
      bootstrapPath: join(o.stateDir, 'envoy', `${nodeId}.bootstrap.json`),
      adminUrl,
      listenPorts: config.listeners.map((l) => l.port),
      onLog: (line) => logger.debug({ component: 'envoy' }, line),
    });
    stack.push({ name: 'envoy', stop: () => envoy.stop() });
    say('envoy', `${config.listeners.map((l) => `${l.address}:${l.port}`).join(', ')}  admin ${adminUrl}`);

    const status = () => ({
      authz: {
        address: authz.address,
        policy_revision: authz.policy.current()?.revision ?? null,
        policy_error: authz.policy.lastError()?.message ?? null,
        policy: authz.policyStatus(),
        metrics: authz.metrics,
        credentials: authz.credentials.status(),
      },
      xds: {
        ...ads.status(),
        current_streams: ads.currentCount(),
        config: { ...publisher.status(), fleet: fleet.shared.status() },
      },
      state: audit.state.status(),
      ...(logs ? { decision_logs: logs.status() } : {}),
      envoy: { admin: adminUrl, pid: envoy.pid },
      audit: audit.status(),
    });
    // The status routes join the API now that every component exists.
    Object.assign(routes, {
      'GET /readyz': async () => {
        const envoyReady = await fetch(`${adminUrl}/ready`).then(
          (r) => r.ok,
          () => false,
        );
        const ready = envoyReady && authz.policy.current() !== null && ads.currentCount() > 0;
        return {
          status: ready ? 200 : 503,
          body: { ready, envoy: envoyReady, xds_current: ads.currentCount() },
        };
      },
      'GET /status': () => ({ status: 200, body: status() }),
    } satisfies Record<string, ApiHandler>);

    return { authz, ads, api, envoy, audit, publisher, status, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
