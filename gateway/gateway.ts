// `chaperone up`: the whole gateway in one process tree — audit pipeline, fleet state, the HTTP API,
// authz server, control plane (ADS + access-log service) and a real Envoy — as a list of components
// (gateway/components/) started in START_ORDER by one runner, each with a status line, and stopped in
// reverse order (the audit spool flushed last). /status is composed from the components' status().
import type { HttpApi } from '../api/http-api.ts';
import type { AuthzServer } from '../authz-server/server.ts';
import type { Config } from '../config/types.ts';
import { parseDataPlaneAddress } from '../lib/data-plane-address.ts';
import { assertPortsFree, type PlannedBind, splitHostPort } from '../lib/ports.ts';
import type { AdsServer } from '../xds/server/ads-server.ts';
import { type GatewayComponent, runComponents } from './component.ts';
import { auditComponent } from './components/audit.ts';
import { authzComponent } from './components/authz.ts';
import { controlPlaneComponent } from './components/control-plane.ts';
import { dataPlaneComponent } from './components/data-plane.ts';
import { envoyComponent, envoyPaths } from './components/envoy.ts';
import { fleetStateComponent } from './components/fleet-state.ts';
import { httpApiComponent } from './components/http-api.ts';
import { notificationsComponent } from './components/notifications.ts';
import { telemetryComponent } from './components/telemetry.ts';
import {
  type AuditRuntime,
  type GatewayContext,
  type GatewayOptions,
  type ManagedEnvoy,
  need,
} from './context.ts';
import { reapRecordedEnvoy } from './envoy-pid-file.ts';
import type { XdsPublisher } from './xds-publisher.ts';

export type { AuditRuntime, DevTokens, GatewayOptions, ManagedEnvoy } from './context.ts';

/**
 * The components of `chaperone up`, in start order (stopped in reverse). Each needs what the earlier
 * ones made: telemetry first (the others count and trace into it; stopped last, it exports the last
 * spans); the data plane (sockets, or the CA and certificates for TCP) comes before the servers that
 * listen on it; the HTTP API serves the agent issuer's keys the authz server fetches at start; the
 * control plane's publisher updates the authz server's credentials; Envoy connects to the control plane.
 */
export const START_ORDER: readonly (() => GatewayComponent<GatewayContext>)[] = [
  telemetryComponent,
  auditComponent,
  fleetStateComponent,
  notificationsComponent,
  httpApiComponent,
  dataPlaneComponent,
  authzComponent,
  controlPlaneComponent,
  envoyComponent,
];

/** The component names in start order (what docs/architecture.md quotes). */
export const startOrderNames = (): string[] => START_ORDER.map((make) => make().name);

export interface Gateway {
  authz: AuthzServer;
  ads: AdsServer;
  api: HttpApi;
  envoy: ManagedEnvoy;
  audit: AuditRuntime;
  publisher: XdsPublisher;
  status(): Record<string, unknown>;
  stop(): Promise<void>;
}

/** A TCP bind to check up front; Unix sockets are claimed (stale ones removed) when they are bound. */
function tcpBind(component: string, address: string, override: string): PlannedBind[] {
  const a = parseDataPlaneAddress(address);
  return a.kind === 'tcp' ? [{ component, host: a.host, port: a.port, override }] : [];
}

export function plannedBinds(config: Config, envoy: GatewayOptions['envoy'] = 'managed'): PlannedBind[] {
  const api = splitHostPort(config.controlPlane.httpAddress);
  const envoyBinds: PlannedBind[] = [
    ...config.listeners.map((l) => ({
      component: `envoy listener ${l.name}`,
      host: l.address,
      port: l.port,
      override: `listeners[].port in the config`,
    })),
    ...tcpBind('envoy admin', config.envoy.adminAddress, 'envoy.admin_port'),
  ];
  return [
    ...(envoy === 'external' ? [] : envoyBinds),
    ...tcpBind('authz server', config.authz.addresses[0] ?? '', 'authz.address'),
    ...tcpBind('control plane (ADS + ALS)', config.controlPlane.xdsAddress, 'control_plane.xds_address'),
    { component: 'HTTP API', ...api, override: 'control_plane.http_address' },
    ...(config.telemetry.metrics
      ? [
          {
            component: 'metrics listener',
            ...splitHostPort(config.telemetry.metrics.address),
            override: 'telemetry.metrics.address',
          },
        ]
      : []),
  ];
}

export async function startGateway(o: GatewayOptions): Promise<Gateway> {
  // A previous run killed before it could stop its Envoy: that Envoy still holds the listener ports.
  if (o.envoy !== 'external') {
    const reaped = await reapRecordedEnvoy(envoyPaths(o).pidFile);
    if (reaped !== null) o.logger.warn({ pid: reaped }, "stopped the previous run's Envoy");
  }
  await assertPortsFree([...plannedBinds(o.config, o.envoy), ...(o.extraBinds ?? [])]);
  const ctx: GatewayContext = {
    options: o,
    config: o.config,
    logger: o.logger,
    say: o.onStatus ?? (() => undefined),
  };
  const { running, started } = runComponents(
    START_ORDER.map((make) => make()),
    ctx,
    o.logger,
  );
  ctx.running = running;
  await started;
  return {
    authz: need(ctx, 'authz'),
    ads: need(ctx, 'ads'),
    api: need(ctx, 'api'),
    envoy: need(ctx, 'envoy'),
    audit: need(ctx, 'audit'),
    publisher: need(ctx, 'publisher'),
    status: () => running.status(),
    stop: () => running.stop(),
  };
}
