// Component `data plane`: how Envoy reaches the data-plane services. On Unix sockets (the single-node
// default) nothing to start: the servers bind 0600 sockets in a 0700 directory. On TCP (a fleet): the
// data-plane CA, this node's server certificate and Envoy's client certificate files, renewed while
// the gateway runs (gateway/data-plane-tls.ts).
import type { GatewayComponent } from '../component.ts';
import type { GatewayContext } from '../context.ts';
import { type DataPlaneTls, openDataPlaneTls, tcpDataPlaneAddresses } from '../data-plane-tls.ts';

export function dataPlaneComponent(): GatewayComponent<GatewayContext> {
  let tls: DataPlaneTls | null = null;
  let socketDir = '';
  return {
    name: 'data plane',
    async start(ctx) {
      const { config, logger } = ctx;
      socketDir = config.dataPlane.socketDir;
      const tcp = tcpDataPlaneAddresses(config);
      ctx.dataPlaneTls = null;
      if (tcp.length === 0) {
        ctx.say('data plane', `unix sockets in ${socketDir} (0700; sockets 0600: this user only)`);
        return;
      }
      const log = logger.child({ component: 'pki' });
      tls = await openDataPlaneTls(config, {
        nodeId: ctx.options.nodeId ?? 'chaperone-local',
        warn: (m) => log.warn(m),
        onError: (what, err) =>
          log.error({ err: err instanceof Error ? err.message : String(err) }, `${what} failed; retrying`),
      });
      tls.server.subscribe((c) =>
        log.info({ serial: c.serial, not_after: c.notAfter }, 'server certificate renewed'),
      );
      tls.envoy.subscribe((c) =>
        log.info({ serial: c.serial, not_after: c.notAfter }, 'Envoy certificate renewed'),
      );
      ctx.dataPlaneTls = tls;
      ctx.say('data plane', `mutual TLS on ${tcp.join(', ')}  CA ${tls.ca.source}`);
    },
    async stop() {
      tls?.close();
    },
    status: () => ({ data_plane: { socket_dir: socketDir, tls: tls ? tls.status() : null } }),
  };
}
