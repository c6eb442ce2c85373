// `chaperone envoy bootstrap --node-id X`: the bootstrap an Envoy needs to take its listeners, routes
// and clusters from Chaperone's ADS server and send access logs to its ALS (both on one gRPC port).
import type { Command } from 'commander';
import yaml from 'js-yaml';
import { CONFIG_DEFAULTS } from '../../config/defaults.ts';
import { envoyBootstrap } from '../../xds/bootstrap.ts';
import { action, usage } from '../exit.ts';

export function registerEnvoyCommands(program: Command): void {
  const envoy = program.command('envoy').description('Envoy helpers');
  envoy
    .command('bootstrap')
    .description('print an Envoy bootstrap pointing at the ADS server and the access-log service')
    .requiredOption('--node-id <id>', "this Envoy's node id (snapshots can be per node)")
    .option('--xds <host:port>', 'the control plane (ADS + ALS)', CONFIG_DEFAULTS.xdsAddress)
    .option(
      '--admin-port <port>',
      'Envoy admin port (bound on 127.0.0.1)',
      String(CONFIG_DEFAULTS.envoyAdminPort),
    )
    .option('--cluster <name>', 'node cluster (fleet grouping)', 'chaperone-egress')
    .option('--format <fmt>', 'yaml or json', 'yaml')
    .option('--delta', 'incremental xDS (DELTA_GRPC) instead of state of the world', false)
    .action(
      action(
        'envoy bootstrap',
        (o: {
          nodeId: string;
          xds: string;
          adminPort: string;
          cluster: string;
          format: string;
          delta: boolean;
        }) => {
          const adminPort = Number(o.adminPort);
          if (!Number.isInteger(adminPort) || adminPort < 1 || adminPort > 65535)
            throw usage('--admin-port must be 1-65535');
          let bootstrap: Record<string, unknown>;
          try {
            bootstrap = envoyBootstrap({
              nodeId: o.nodeId,
              nodeCluster: o.cluster,
              xdsAddress: o.xds,
              adminPort,
              delta: o.delta,
            });
          } catch (err) {
            throw usage(err instanceof Error ? err.message : String(err));
          }
          process.stdout.write(
            o.format === 'json'
              ? `${JSON.stringify(bootstrap, null, 2)}\n`
              : yaml.dump(bootstrap, { lineWidth: 120 }),
          );
        },
      ),
    );
}
