// A real Envoy running exactly what the translator makes of a `chaperone.yaml` (config → IR → resources,
// inlined as a static bootstrap), without a control plane: listener `egress` on a free port, the authz
// server expected at `unix:<dir>/authz.sock`, access logs and ext_proc pointed at `unix:<dir>/xds.sock`.
import { join } from 'node:path';
import { parseConfig } from '../../config/load-config.ts';
import { buildIr } from '../../xds/ir/build-ir.ts';
import { translate } from '../../xds/translate/translate.ts';
import { type RunningEnvoy, startEnvoy } from './envoy.ts';
import { freePort } from './ports.ts';
import { staticBootstrap } from './static-bootstrap.ts';

export interface TranslatedEnvoy {
  envoy: RunningEnvoy;
  /** `http://127.0.0.1:<listener port>` */
  base: string;
  /** Where Envoy looks for the authz server. */
  authzAddress: string;
}

/**
 * `targets`: the `targets:` list as YAML, each line indented by two spaces; `authz`: more keys of the
 * `authz:` section, indented the same (e.g. `  max_outstanding: 16`).
 */
export async function startTranslatedEnvoy(
  dir: string,
  sections: { targets: string; authz?: string },
): Promise<TranslatedEnvoy> {
  const listenPort = await freePort();
  const adminPort = await freePort();
  const authzAddress = `unix:${join(dir, 'authz.sock')}`;
  const xdsAddress = `unix:${join(dir, 'xds.sock')}`;
  const config = parseConfig(
    `listeners: [{ name: egress, address: 127.0.0.1, port: ${listenPort} }]
targets:
${sections.targets}
authz:
  address: ${authzAddress}
${sections.authz ?? ''}
control_plane:
  xds_address: ${xdsAddress}
data_plane:
  socket_dir: ${dir}
`,
    join(dir, 'chaperone.yaml'),
  );
  const { resources } = translate(buildIr(config));
  const envoy = await startEnvoy({
    bootstrapYaml: staticBootstrap(resources, { adminPort, xdsAddress }),
    adminPort,
    listenPorts: [listenPort],
  });
  return { envoy, base: `http://127.0.0.1:${listenPort}`, authzAddress };
}
