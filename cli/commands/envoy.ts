// `chaperone envoy bootstrap --node-id X`: the bootstrap an Envoy needs to take its listeners, routes
// and clusters from Chaperone's control plane (ADS, access logs and ext_proc on one gRPC server) — for
// an Envoy that systemd or Kubernetes runs (`chaperone up --envoy external`), or more Envoys of a fleet.
// With `--config` it takes every address from chaperone.yaml: Unix sockets (the same user must run
// Envoy), or TCP with mutual TLS, whose certificate files it issues from the data-plane CA if the
// gateway has not written them yet. It prints those file paths inside the bootstrap.
import { access, mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import yaml from 'js-yaml';
import { loadConfig, parseConfig } from '../../config/load-config.ts';
import type { Config } from '../../config/types.ts';
import { envoyFilesOf, issueEnvoyFiles } from '../../gateway/data-plane-tls.ts';
import { parseDataPlaneAddress } from '../../lib/data-plane-address.ts';
import { envoyBootstrap } from '../../xds/bootstrap.ts';
import { action, usage } from '../exit.ts';

interface BootstrapCliOptions {
  nodeId: string;
  config?: string;
  xds?: string;
  admin?: string;
  adminPort?: string;
  tlsDir?: string;
  cluster: string;
  format: string;
  delta: boolean;
}

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

/** The config the addresses come from: the file given, or the defaults relative to this directory. */
async function configOf(o: BootstrapCliOptions): Promise<Config> {
  const base = o.config ? await loadConfig(resolve(o.config)) : parseConfig('', resolve('chaperone.yaml'));
  if (!o.tlsDir) return base;
  return {
    ...base,
    dataPlane: { ...base.dataPlane, tls: { ...base.dataPlane.tls, dir: resolve(o.tlsDir) } },
  };
}

function adminAddressOf(o: BootstrapCliOptions, config: Config): string {
  if (o.admin) return o.admin;
  if (o.adminPort === undefined) return config.envoy.adminAddress;
  const port = Number(o.adminPort);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw usage('--admin-port must be 1-65535');
  return `127.0.0.1:${port}`;
}

async function bootstrapOf(o: BootstrapCliOptions): Promise<Record<string, unknown>> {
  const config = await configOf(o);
  const xdsAddress = o.xds ?? config.controlPlane.xdsAddress;
  const adminAddress = adminAddressOf(o, config);
  let tcp: boolean;
  let admin: ReturnType<typeof parseDataPlaneAddress>;
  try {
    admin = parseDataPlaneAddress(adminAddress);
    tcp = parseDataPlaneAddress(xdsAddress).kind === 'tcp';
  } catch (err) {
    throw usage(err instanceof Error ? err.message : String(err));
  }
  // Envoy binds its admin socket (0600) but needs the directory; it is the gateway user's alone.
  if (admin.kind === 'unix') await mkdir(dirname(admin.path), { recursive: true, mode: 0o700 });
  const files = envoyFilesOf(config);
  if (tcp && !(await exists(files.certificateSds))) {
    // The control plane requires Envoy's client certificate on TCP: issue it now from the CA (the
    // gateway renews it in the same files once it runs), or say where it will be.
    if (o.config) await issueEnvoyFiles(config, o.nodeId, (m) => process.stderr.write(`warning: ${m}\n`));
    else
      process.stderr.write(
        `warning: ${files.certificateSds} does not exist yet: start the gateway (or pass --config) before Envoy\n`,
      );
  }
  return envoyBootstrap({
    nodeId: o.nodeId,
    nodeCluster: o.cluster,
    xdsAddress,
    adminAddress,
    delta: o.delta || (!!o.config && config.envoy.deltaXds),
    tls: tcp ? files : null,
  });
}

export function registerEnvoyCommands(program: Command): void {
  const envoy = program.command('envoy').description('Envoy helpers');
  envoy
    .command('bootstrap')
    .description('print an Envoy bootstrap pointing at the control plane (ADS, access logs, ext_proc)')
    .requiredOption('--node-id <id>', "this Envoy's node id (snapshots can be per node)")
    .option(
      '-c, --config <file>',
      "take the addresses and certificate files from the gateway's chaperone.yaml",
    )
    .option(
      '--xds <unix:/path|host:port>',
      'the control plane (default: from --config, else ./.chaperone/sockets/xds.sock)',
    )
    .option(
      '--admin <unix:/path|host:port>',
      "Envoy's admin interface (default: a 0600 socket beside the control plane's)",
    )
    .option(
      '--admin-port <port>',
      'shorthand for --admin 127.0.0.1:<port> (any local process can then use it)',
    )
    .option(
      '--tls-dir <dir>',
      "with a TCP control plane: the gateway's data_plane.tls.dir (Envoy's certificate files)",
    )
    .option('--cluster <name>', 'node cluster (fleet grouping)', 'chaperone-egress')
    .option('--format <fmt>', 'yaml or json', 'yaml')
    .option('--delta', 'incremental xDS (DELTA_GRPC) instead of state of the world', false)
    .action(
      action('envoy bootstrap', async (o: BootstrapCliOptions) => {
        const bootstrap = await bootstrapOf(o);
        process.stdout.write(
          o.format === 'json'
            ? `${JSON.stringify(bootstrap, null, 2)}\n`
            : yaml.dump(bootstrap, { lineWidth: 120 }),
        );
      }),
    );
}
