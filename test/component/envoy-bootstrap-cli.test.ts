// `chaperone envoy bootstrap` prints a bootstrap the real Envoy accepts (`--mode validate`), pointing
// at the control plane it was given: by default the gateway's Unix sockets, and with a TCP control
// plane the mutual-TLS certificate files, which `--config` issues from the data-plane CA when the
// gateway has not written them yet.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { locateTool, PROJECT_ROOT } from '../../lib/tools.ts';
import { runCli } from '../support/cli.ts';

function run(
  cmd: string,
  args: string[],
  cwd?: string,
): Promise<{ code: number; out: string; stdout: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 60_000, ...(cwd ? { cwd } : {}) }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, out: `${stdout}${stderr}`, stdout }),
    );
  });
}

const cli = join(PROJECT_ROOT, 'cli/bin/chaperone.js');
let dir = '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chaperone-bootstrap-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function envoyAccepts(text: string, name: string): Promise<void> {
  const file = join(dir, name);
  await writeFile(file, text);
  const validate = await run(locateTool('envoy'), [
    '--mode',
    'validate',
    '--disable-hot-restart',
    '-c',
    file,
    '-l',
    'error',
  ]);
  expect(validate.code, validate.out).toBe(0);
}

describe('chaperone envoy bootstrap', () => {
  it('defaults to the Unix sockets of a gateway started in this directory (admin socket 0600)', async () => {
    const res = await run(process.execPath, [cli, 'envoy', 'bootstrap', '--node-id', 'edge-6'], dir);
    expect(res.code, res.out).toBe(0);
    expect(res.stdout).toContain('id: edge-6');
    expect(res.stdout).toContain(`path: ${join(dir, '.chaperone/sockets/xds.sock')}`);
    expect(res.stdout).toContain(`path: ${join(dir, '.chaperone/sockets/envoy-admin.sock')}`);
    expect(res.stdout).toMatch(/mode: 384/); // 0600
    expect(res.stdout).not.toContain('transport_socket');
    await envoyAccepts(res.stdout, 'sockets.yaml');
  });

  it('--config with a TCP control plane: issues Envoy’s certificate from the data-plane CA and points at it', async () => {
    const config = join(dir, 'chaperone.yaml');
    await writeFile(
      config,
      'authz:\n  address: 10.1.2.4:9191\ncontrol_plane:\n  xds_address: 10.1.2.3:18000\nenvoy:\n  admin_port: 19901\n',
    );
    const res = await run(process.execPath, [
      cli,
      'envoy',
      'bootstrap',
      '--node-id',
      'edge-7',
      '--config',
      config,
    ]);
    expect(res.code, res.out).toBe(0);
    expect(res.stdout).toContain('address: 10.1.2.3');
    expect(res.stdout).toContain('port_value: 19901');
    const files = join(dir, '.chaperone/pki/envoy');
    expect(res.stdout).toContain(`path: ${files}/client-certificate.sds.json`);
    expect(res.stdout).toContain(`path: ${files}/ca.sds.json`);
    expect(res.stdout).toContain('exact: urn:chaperone:data-plane:server');
    // The CA's key and Envoy's key are the gateway user's alone.
    expect((await stat(join(dir, '.chaperone/pki/ca-key.pem'))).mode & 0o777).toBe(0o600);
    expect((await stat(`${files}/client-certificate.sds.json`)).mode & 0o777).toBe(0o600);
    const sds = JSON.parse(await readFile(`${files}/client-certificate.sds.json`, 'utf8')) as {
      resources: { name: string; tls_certificate: { certificate_chain: { inline_string: string } } }[];
    };
    expect(sds.resources[0]!.name).toBe('chaperone_data_plane_client');
    expect(sds.resources[0]!.tls_certificate.certificate_chain.inline_string).toContain('BEGIN CERTIFICATE');
    await envoyAccepts(res.stdout, 'tls.yaml');
  });

  it('--delta asks for incremental xDS', async () => {
    const res = await runCli(['envoy', 'bootstrap', '--node-id', 'edge-8', '--delta', '--format', 'json']);
    expect(res.code, res.out).toBe(0);
    const b = JSON.parse(res.out) as { dynamic_resources: { ads_config: { api_type: string } } };
    expect(b.dynamic_resources.ads_config.api_type).toBe('DELTA_GRPC');
    const plain = await runCli(['envoy', 'bootstrap', '--node-id', 'edge-8', '--format', 'json']);
    expect(
      (JSON.parse(plain.out) as { dynamic_resources: { ads_config: { api_type: string } } }).dynamic_resources
        .ads_config.api_type,
    ).toBe('GRPC');
  });

  it('rejects a bad admin port and a bad address as usage errors', async () => {
    const port = await run(process.execPath, [
      cli,
      'envoy',
      'bootstrap',
      '--node-id',
      'x',
      '--admin-port',
      '70000',
    ]);
    expect(port.code).toBe(2);
    expect(port.out).toContain('--admin-port');
    const xds = await run(process.execPath, [
      cli,
      'envoy',
      'bootstrap',
      '--node-id',
      'x',
      '--xds',
      'unix:relative',
    ]);
    expect(xds.code).toBe(2);
    expect(xds.out).toContain('invalid address');
  });
});
