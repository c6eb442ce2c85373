// `chaperone up`: the whole gateway in one process tree — audit pipeline, fleet state, the HTTP API,
// authz server, control plane (ADS + access-log service) and a real Envoy — as a list of components
// (gateway/components/) started in START_ORDER by one runner, each with a status line, and stopped in
// reverse order (the audit spool flushed last). /status is composed from the components' status().
import type { HttpApi } from '../api/http-api.ts';
import type { AuthzServer } from '../authz-server/server.ts';
import type { Config } from '../config/types.ts';
import { assertPortsFree, type PlannedBind, splitHostPort } from '../lib/ports.ts';
import type { AdsServer } from '../xds/server/ads-server.ts';
import { type GatewayComponent, runComponents } from './component.ts';
import { auditComponent } from './components/audit.ts';
import { authzComponent } from './components/authz.ts';
import { controlPlaneComponent } from './components/control-plane.ts';
import { envoyComponent } from './components/envoy.ts';
import { fleetStateComponent } from './components/fleet-state.ts';
import { httpApiComponent } from './components/http-api.ts';
import { notificationsComponent } from './components/notifications.ts';
import { type AuditRuntime, type GatewayContext, type GatewayOptions, need } from './context.ts';
import type { EnvoyProcess } from './envoy-process.ts';
import type { XdsPublisher } from './xds-publisher.ts';

export type { AuditRuntime, DevTokens, GatewayOptions } from './context.ts';

/**
 * The components of `chaperone up`, in start order (stopped in reverse). Each needs what the earlier
 * ones made: the HTTP API serves the agent issuer's keys the authz server fetches at start; the control
 * plane's publisher updates the authz server's credentials; Envoy connects to the control plane.
 */
export const START_ORDER: readonly (() => GatewayComponent<GatewayContext>)[] = [
  auditComponent,
  fleetStateComponent,
  notificationsComponent,
  httpApiComponent,
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
  envoy: EnvoyProcess;
  audit: AuditRuntime;
  publisher: XdsPublisher;
  status(): Record<string, unknown>;
  stop(): Promise<void>;
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

export async function startGateway(o: GatewayOptions): Promise<Gateway> {
  await assertPortsFree([...plannedBinds(o.config), ...(o.extraBinds ?? [])]);
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
