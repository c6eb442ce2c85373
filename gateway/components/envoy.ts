// Component `envoy`: a real Envoy whose bootstrap points at the control plane; everything else it
// learns over ADS. Up when its admin interface is ready and every listener accepts connections. It is
// supervised: an Envoy that exits is restarted with backoff, `/readyz` is false and the status line
// says so meanwhile — and no request passes, since Envoy is the only path to an upstream. With
// `--envoy external`, Envoy is run by systemd or Kubernetes from `chaperone envoy bootstrap`; this
// component then only says where it must connect.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDataPlaneAddress } from '../../lib/data-plane-address.ts';
import { claimSocketPath, releaseSocketPath } from '../../lib/unix-socket.ts';
import { envoyBootstrap } from '../../xds/bootstrap.ts';
import type { GatewayComponent } from '../component.ts';
import type { GatewayContext, GatewayOptions, ManagedEnvoy } from '../context.ts';
import { EnvoySupervisor } from '../envoy-supervisor.ts';

export const nodeIdOf = (o: GatewayOptions) => o.nodeId ?? 'chaperone-local';

/** Where `chaperone up` keeps its Envoy's bootstrap and pid record (the next start reaps from there). */
export function envoyPaths(o: GatewayOptions): { bootstrap: string; pidFile: string } {
  const base = join(o.stateDir, 'envoy', nodeIdOf(o));
  return { bootstrap: `${base}.bootstrap.json`, pidFile: `${base}.pid` };
}

/** `unix:/…` stays; a TCP admin address becomes the URL node:http asks. */
export function adminUrlOf(adminAddress: string): string {
  const a = parseDataPlaneAddress(adminAddress);
  return a.kind === 'unix'
    ? adminAddress
    : `http://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}

function externalEnvoy(ctx: GatewayContext): ManagedEnvoy {
  const { config, options } = ctx;
  const how = `chaperone envoy bootstrap --node-id <id>${options.configPath ? ` --config ${options.configPath}` : ''}`;
  ctx.say('envoy', `external: Envoys connect to ${config.controlPlane.xdsAddress} (bootstrap: ${how})`);
  return {
    mode: 'external',
    current: () => null,
    // Readiness of an external Envoy is its ADS stream (checked by /readyz); its admin is not ours.
    ready: async () => true,
    status: () => ({ mode: 'external', xds: config.controlPlane.xdsAddress }),
  };
}

export function envoyComponent(): GatewayComponent<GatewayContext> {
  let managed: EnvoySupervisor | null = null;
  let external: ManagedEnvoy | null = null;
  let adminSocket: string | null = null;
  return {
    name: 'envoy',
    async start(ctx) {
      const { config, options, logger } = ctx;
      if (options.envoy === 'external') {
        // The external Envoy binds its admin socket here when it runs as this user (the default).
        await mkdir(config.dataPlane.socketDir, { recursive: true, mode: 0o700 });
        external = externalEnvoy(ctx);
        ctx.envoy = external;
        return;
      }
      const adminUrl = adminUrlOf(config.envoy.adminAddress);
      const admin = parseDataPlaneAddress(config.envoy.adminAddress);
      // Envoy binds the admin socket itself (mode 0600, from the bootstrap) but needs the 0700 directory.
      if (admin.kind === 'unix') {
        await claimSocketPath(admin.path, 'envoy admin', 'data_plane.socket_dir');
        adminSocket = admin.path;
      }
      const paths = envoyPaths(options);
      managed = new EnvoySupervisor(
        {
          bootstrap: envoyBootstrap({
            nodeId: nodeIdOf(options),
            xdsAddress: config.controlPlane.xdsAddress,
            adminAddress: config.envoy.adminAddress,
            delta: config.envoy.deltaXds,
            tls: ctx.dataPlaneTls?.files ?? null,
          }),
          bootstrapPath: paths.bootstrap,
          pidFile: paths.pidFile,
          adminUrl,
          listenPorts: config.listeners.map((l) => l.port),
          onLog: (line) => logger.debug({ component: 'envoy' }, line),
        },
        logger.child({ component: 'envoy' }),
        ctx.say,
      );
      if (admin.kind === 'tcp')
        logger.warn(
          { admin: adminUrl },
          'envoy.admin_port: Envoy admin on loopback TCP — any local process can read its config and stop it',
        );
      const p = await managed.start();
      ctx.envoy = managed;
      ctx.say(
        'envoy',
        `${config.listeners.map((l) => `${l.address}:${l.port}`).join(', ')}  admin ${adminUrl}  pid ${p.pid}`,
      );
    },
    async stop() {
      await managed?.stop();
      // Envoy leaves its admin socket file behind; the next start would remove it anyway.
      if (adminSocket) await releaseSocketPath(adminSocket);
    },
    status: () => {
      const e = managed ?? external;
      return e ? { envoy: e.status() } : null;
    },
  };
}
