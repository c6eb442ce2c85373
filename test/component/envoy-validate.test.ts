// The real Envoy accepts what the translator generates: each golden `.out.yaml` file (as committed,
// checked against the translator by test/unit/translate-golden.test.ts) and the documented example
// become a bootstrap with the resources inlined as static resources (test/support/static-bootstrap.ts:
// RDS → inline route_config, EDS → STATIC, the control-plane cluster from our own bootstrap), and
// `envoy --mode validate` must exit 0. A broken resource is stopped by the strict proto check before
// it could ever reach an Envoy; a control case shows Envoy's validation is not a rubber stamp.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { rootCertificates } from 'node:tls';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load-config.ts';
import { writeEnvoyTlsFiles } from '../../gateway/data-plane-tls.ts';
import { locateTool } from '../../lib/tools.ts';
import { CertificateAuthority, ROLE_URI } from '../../pki/certificate-authority.ts';
import { buildIr } from '../../xds/ir/build-ir.ts';
import type { IrDataPlaneTls } from '../../xds/ir/types.ts';
import { type EnvoyResourcesJson, type SnapshotError, XdsSnapshot } from '../../xds/server/snapshot.ts';
import { envoyTlsFiles } from '../../xds/translate/data-plane.ts';
import { translate } from '../../xds/translate/translate.ts';
import { GoldenDir } from '../support/golden.ts';
import { staticBootstrap as toStaticBootstrap } from '../support/static-bootstrap.ts';

let dir = '';
let caFile = '';
/** Envoy's data-plane certificate files (SDS), real ones from a CA made here. */
let dataPlaneFiles: IrDataPlaneTls;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chaperone-envoy-validate-'));
  // CA bundles are paths on the Envoy host and Envoy opens them while validating; Node's bundled
  // Mozilla roots make a bundle that exists on any machine.
  caFile = join(dir, 'ca.pem');
  await writeFile(caFile, `${rootCertificates.join('\n')}\n`);
  // The SDS files Envoy reads for mutual TLS to Chaperone's TCP services must exist too.
  const ca = await CertificateAuthority.open({ dir: join(dir, 'pki') });
  dataPlaneFiles = envoyTlsFiles(join(dir, 'pki'), ROLE_URI.server);
  await writeEnvoyTlsFiles(
    dataPlaneFiles,
    await ca.issue({ role: 'envoy', commonName: 'envoy validate', validitySec: 3600 }),
  );
});

/** Points a data-plane TLS context's SDS files at the ones made above. */
function useTestSdsFiles(context: Json | undefined): void {
  if (!context?.['combined_validation_context']) return;
  const certificate = context['tls_certificate_sds_secret_configs'][0].sds_config;
  const validation = context['combined_validation_context'].validation_context_sds_secret_config.sds_config;
  certificate.path_config_source.path = dataPlaneFiles.certificateSds;
  validation.path_config_source.path = dataPlaneFiles.validationSds;
}

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

type Json = Record<string, any>;

/** Resources as a static bootstrap, with the certificate files made above. */
function staticBootstrap(resources: EnvoyResourcesJson): Json {
  return toStaticBootstrap(resources, {
    adminPort: 19901,
    eachCluster: (copy) => {
      const validation = copy['transport_socket']?.typed_config?.common_tls_context?.validation_context;
      if (validation) validation.trusted_ca.filename = caFile;
      useTestSdsFiles(copy['transport_socket']?.typed_config?.common_tls_context);
    },
  });
}

let seq = 0;

async function envoyValidate(bootstrap: Json): Promise<{ code: number | null; output: string }> {
  const file = join(dir, `bootstrap-${seq++}.json`);
  await writeFile(file, JSON.stringify(bootstrap));
  const child = spawn(
    locateTool('envoy'),
    ['--mode', 'validate', '-c', file, '--disable-hot-restart', '-l', 'warn'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const code = await new Promise<number | null>((done, fail) => {
    child.on('error', fail);
    child.on('close', done);
  });
  return { code, output };
}

const golden = new GoldenDir(fileURLToPath(new URL('../../xds/translate/testdata', import.meta.url)), []);
const valid = golden
  .cases('.out.yaml')
  .map((name) => [name, yaml.load(golden.read(`${name}.out.yaml`)!) as EnvoyResourcesJson] as const);

/** What publication would refuse: the problems XdsSnapshot.build reports. */
function problems(resources: EnvoyResourcesJson): SnapshotError[] {
  const built = XdsSnapshot.build(resources);
  return built.ok ? [] : built.errors;
}

describe('envoy --mode validate accepts the generated resources', () => {
  it('has golden cases to check', () => {
    expect(valid.length).toBeGreaterThanOrEqual(6);
  });

  it.each(valid)('%s', async (_name, resources) => {
    const { code, output } = await envoyValidate(staticBootstrap(resources));
    expect(output).toContain('OK');
    expect(code, output).toBe(0);
  });

  it('examples/chaperone.yaml', async () => {
    const { resources } = translate(buildIr(await loadConfig(resolve('examples/chaperone.yaml'))));
    const { code, output } = await envoyValidate(staticBootstrap(resources));
    expect(code, output).toBe(0);
  });

  it('rejects a semantically broken bootstrap (the check is real)', async () => {
    const bootstrap = staticBootstrap(valid[0]![1]);
    const hcm = bootstrap['static_resources'].listeners[0].filter_chains[0].filters[0].typed_config;
    hcm.route_config.virtual_hosts[0].routes[0].route.cluster = 'no-such-cluster';
    const { code, output } = await envoyValidate(bootstrap);
    expect(code).not.toBe(0);
    expect(output).toContain('no-such-cluster');
  });
});

describe('a broken resource is stopped before it reaches Envoy', () => {
  it('reports an unknown field with its path', () => {
    const resources = structuredClone(valid[0]![1]);
    const hcm = (resources.listeners[0] as Json)['filter_chains'][0].filters[0].typed_config;
    hcm.normalise_path = true;
    expect(problems(resources)).toEqual([
      {
        resource: 'Listener[egress]',
        path: 'filter_chains[0].filters[0].typed_config.normalise_path',
        message:
          'unknown field "normalise_path" in envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
      },
    ]);
  });

  it('reports a bad enum value and a wrong type inside an Any', () => {
    const resources = structuredClone(valid[0]![1]);
    const hcm = (resources.listeners[0] as Json)['filter_chains'][0].filters[0].typed_config;
    hcm.path_with_escaped_slashes_action = 'ALLOW';
    hcm.http_filters[1].typed_config.with_request_body.max_request_bytes = '8 KiB';
    expect(problems(resources)).toEqual([
      {
        resource: 'Listener[egress]',
        path: 'filter_chains[0].filters[0].typed_config.path_with_escaped_slashes_action',
        message:
          'invalid value "ALLOW" for enum envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.PathWithEscapedSlashesAction',
      },
      {
        resource: 'Listener[egress]',
        path: 'filter_chains[0].filters[0].typed_config.http_filters[1].typed_config.with_request_body.max_request_bytes',
        message: 'expected an integer (uint32)',
      },
    ]);
  });

  it('reports a dangling EDS cluster', () => {
    const resources = structuredClone(valid.find(([name]) => name === 'minimal')![1]);
    resources.endpoints = [];
    expect(problems(resources)).toEqual([
      {
        resource: 'Cluster[target/demo]',
        path: 'type',
        message: 'EDS cluster has no ClusterLoadAssignment "target/demo"',
      },
    ]);
  });
});
