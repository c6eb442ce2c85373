// Component `authz server`: the ext_authz gRPC server with the configured policy (watched, or the
// fleet's published revision, or a bundle server), people's and agents' identities, revocations,
// credentials, approvals, the audit recorder and (when configured) OPA decision logs pushed out.
import { type DecisionLogPush, decisionLogPush } from '../../audit/decision-log-push.ts';
import type { CredentialSpec } from '../../authz-server/credentials/credential-store.ts';
import { type AuthzServer, startAuthzServer } from '../../authz-server/server.ts';
import type { Config } from '../../config/types.ts';
import type { GatewayComponent } from '../component.ts';
import { type GatewayContext, need } from '../context.ts';
import { dataPathIdentity } from '../identity.ts';

export function credentialSpecs(config: Config): Record<string, CredentialSpec[]> {
  const out: Record<string, CredentialSpec[]> = {};
  for (const t of config.targets) {
    if (t.credentials.length > 0)
      out[t.name] = t.credentials.map((c) => ({ header: c.header, value: c.value, format: c.format }));
  }
  return out;
}

export function authzComponent(): GatewayComponent<GatewayContext> {
  let authz: AuthzServer | null = null;
  let logs: DecisionLogPush | null = null;
  return {
    name: 'authz server',
    async start(ctx) {
      const { config, options } = ctx;
      const audit = need(ctx, 'audit');
      const agents = need(ctx, 'agents');
      const policy = config.policy.source;
      const issuer = config.controlPlane.issuer;
      logs = decisionLogs(ctx);
      logs?.start();
      authz = await startAuthzServer({
        address: config.authz.addresses[0]!,
        tls: ctx.dataPlaneTls?.server ?? null,
        policy: {
          ...(policy.kind === 'bundle' ? { bundle: policy.path } : { dir: policy.path }),
          entrypoint: config.policy.entrypoint,
          watch: true,
          signing: config.policy.signing ?? null,
          bundleService: config.policy.bundleService ?? null,
        },
        sharedState: audit.state,
        identity: dataPathIdentity(config),
        resourceAudiences: config.targets.flatMap((t) => (t.mcp ? [t.mcp.resource] : [])),
        usage: { counters: need(ctx, 'usage'), limits: config.limits ?? [] },
        logger: ctx.logger.child({ component: 'authz' }),
        revocation: agents,
        ...(options.shadowPolicy
          ? { shadow: { ...options.shadowPolicy, entrypoint: config.policy.entrypoint } }
          : {}),
        onDecision: (e) => {
          agents.observe(e);
          logs?.add(e);
        },
        telemetry: { ...(ctx.metrics ? { metrics: ctx.metrics } : {}), tracer: ctx.tracer ?? null },
        recorder: audit.recorder,
        credentials: credentialSpecs(config),
        // The fleet's public API (control_plane.issuer): any node answers for any approval.
        approvals: {
          store: need(ctx, 'approvals'),
          statusUrl: (id) => `${issuer}/approvals/status?id=${id}`,
        },
      });
      ctx.authz = authz;
      ctx.say(
        'authz server',
        `${authz.address}${authz.mutualTls ? ' (mutual TLS)' : ''}  policy ${authz.policy.current()?.revision ?? 'none'}`,
      );
    },
    async stop() {
      await authz?.close();
      await logs?.stop();
    },
    status: () =>
      authz
        ? {
            authz: {
              address: authz.address,
              mutual_tls: authz.mutualTls,
              policy_revision: authz.policy.current()?.revision ?? null,
              policy_error: authz.policy.lastError()?.message ?? null,
              policy: authz.policyStatus(),
              metrics: authz.metrics,
              credentials: authz.credentials.status(),
            },
            ...(logs ? { decision_logs: logs.status() } : {}),
          }
        : null,
  };
}

/** OPA decision logs pushed to `decision_logs.url`, masked as the audit trail masks its records. */
function decisionLogs(ctx: GatewayContext): DecisionLogPush | null {
  const { config } = ctx;
  if (!config.decisionLogs) return null;
  return decisionLogPush(config.decisionLogs, {
    entrypoint: config.policy.entrypoint,
    logger: ctx.logger.child({ component: 'decision-logs' }),
    labels: { id: ctx.options.nodeId ?? 'chaperone-local' },
    extraSecretHeaders: [
      ...(config.identity ? [config.identity.tokenHeader] : []),
      ...config.targets.flatMap((t) => t.credentials.map((c) => c.header)),
      ...(config.audit.redactHeaders ?? []),
    ],
  });
}
