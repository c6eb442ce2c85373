// What a config edit can change in a running gateway. Targets, listeners and the authz cluster's circuit
// breaker (`authz.max_outstanding`) become Envoy resources and authz-server credentials, which follow a
// reload; every other section was read once at start-up (the authz server's issuers and policy source,
// the API's roles, the audit store, the addresses the processes bind, Envoy's bootstrap, the metrics
// listener). An edit to one of those is reported — by section, with its line — and its running value
// stays in force until the next restart: publishing a new authz address to Envoy while the authz server
// still listens on the old one would deny everything.
import { configLineOf } from './load-config.ts';
import type { Config } from './types.ts';

/** A section of chaperone.yaml that is applied only at start-up, and where its value is in a Config. */
interface RestartOnly {
  /** The YAML path operators edit (also what /status and the log name). */
  section: string;
  of(c: Config): unknown;
}

export const RESTART_ONLY: readonly RestartOnly[] = [
  { section: 'identity', of: (c) => c.identity },
  { section: 'access', of: (c) => c.access },
  { section: 'policy', of: (c) => c.policy },
  { section: 'audit', of: (c) => c.audit },
  // The addresses only: `authz.max_outstanding` is Envoy's, and an xDS push applies it.
  { section: 'authz', of: (c) => c.authz.addresses },
  { section: 'control_plane', of: (c) => c.controlPlane },
  { section: 'envoy.admin_port', of: (c) => c.envoy.adminAddress },
  { section: 'envoy.delta_xds', of: (c) => c.envoy.deltaXds },
  { section: 'telemetry', of: (c) => c.telemetry },
  { section: 'data_plane', of: (c) => c.dataPlane },
  { section: 'console', of: (c) => c.console },
  { section: 'notifications', of: (c) => c.notifications },
  { section: 'approvals', of: (c) => c.approvals },
  // The authz server reads its limits once (they reach the policy as input.usage.limits).
  { section: 'rate_limits', of: (c) => (c.limits ?? []).filter((l) => l.kind === 'requests') },
  { section: 'budgets', of: (c) => (c.limits ?? []).filter((l) => l.kind === 'tokens') },
];

/**
 * Config keys a reload applies, wholly or in part (`envoy` and `authz` keep their restart-only parts as
 * running; test/unit/reload-plan.test.ts checks every key is classified).
 */
export const HOT_KEYS: readonly (keyof Config)[] = ['file', 'listeners', 'targets', 'envoy', 'authz'];

export interface RestartNeeded {
  section: string;
  /** Line of the section in the edited file, when known. */
  line: number | null;
}

export interface ReloadPlan {
  /** The edited config with every restart-only section as it is running. */
  apply: Config;
  /** Restart-only sections the edit changed (empty: everything edited is applied). */
  restartNeeded: RestartNeeded[];
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Splits an edit of `running` into what a reload applies now and what waits for a restart. */
export function reloadPlan(running: Config, next: Config): ReloadPlan {
  const restartNeeded = RESTART_ONLY.filter((s) => !same(s.of(running), s.of(next))).map((s) => ({
    section: s.section,
    line: configLineOf(next, s.section) ?? null,
  }));
  const apply: Config = {
    ...next,
    identity: running.identity,
    access: running.access,
    policy: running.policy,
    audit: running.audit,
    authz: { ...next.authz, addresses: running.authz.addresses },
    controlPlane: running.controlPlane,
    envoy: { ...next.envoy, adminAddress: running.envoy.adminAddress, deltaXds: running.envoy.deltaXds },
    telemetry: running.telemetry,
    dataPlane: running.dataPlane,
    console: running.console,
    notifications: running.notifications,
    approvals: running.approvals,
    ...(running.limits ? { limits: running.limits } : {}),
  };
  if (!running.limits) delete apply.limits;
  return { apply, restartNeeded };
}

/** `identity (line 4), audit (line 20)` */
export function describeRestartNeeded(r: readonly RestartNeeded[]): string {
  return r.map((x) => (x.line === null ? x.section : `${x.section} (line ${x.line})`)).join(', ');
}
