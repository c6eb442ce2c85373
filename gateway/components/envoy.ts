// Component `envoy`: a real Envoy whose bootstrap points at the control plane; everything else it
// learns over ADS. Up when its admin endpoint is ready and every listener accepts connections.
import { join } from 'node:path';
import { envoyBootstrap } from '../../xds/bootstrap.ts';
import type { GatewayComponent } from '../component.ts';
import type { GatewayContext } from '../context.ts';
import { type EnvoyProcess, startEnvoy } from '../envoy-process.ts';

export function envoyComponent(): GatewayComponent<GatewayContext> {
  let envoy: EnvoyProcess | null = null;
  return {
    name: 'envoy',
    async start(ctx) {
      const { config, options, logger } = ctx;
      const nodeId = options.nodeId ?? 'chaperone-local';
      const adminUrl = `http://127.0.0.1:${config.envoy.adminPort}`;
      envoy = await startEnvoy({
        bootstrap: envoyBootstrap({
          nodeId,
          xdsAddress: config.controlPlane.xdsAddress,
          adminPort: config.envoy.adminPort,
          delta: config.envoy.deltaXds,
        }),
        bootstrapPath: join(options.stateDir, 'envoy', `${nodeId}.bootstrap.json`),
        adminUrl,
        listenPorts: config.listeners.map((l) => l.port),
        onLog: (line) => logger.debug({ component: 'envoy' }, line),
      });
      ctx.envoy = envoy;
      ctx.say(
        'envoy',
        `${config.listeners.map((l) => `${l.address}:${l.port}`).join(', ')}  admin ${adminUrl}`,
      );
    },
    async stop() {
      await envoy?.stop();
    },
    status: () => (envoy ? { envoy: { admin: envoy.adminUrl, pid: envoy.pid } } : null),
  };
}
