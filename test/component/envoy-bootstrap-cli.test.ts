// `chaperone envoy bootstrap` prints a bootstrap the real Envoy accepts (`--mode validate`), pointing
// at the ADS + ALS address it was given.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { locateTool, PROJECT_ROOT } from '../../lib/tools.ts';
import { runCli } from '../support/cli.ts';

function run(cmd: string, args: string[]): Promise<{ code: number; out: string; stdout: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, out: `${stdout}${stderr}`, stdout }),
    );
  });
}

describe('chaperone envoy bootstrap', () => {
  it('prints YAML that envoy --mode validate accepts, with the node id and control plane address', async () => {
    const cli = join(PROJECT_ROOT, 'cli/bin/chaperone.js');
    const res = await run(process.execPath, [
      cli,
      'envoy',
      'bootstrap',
      '--node-id',
      'edge-7',
      '--xds',
      '10.1.2.3:18000',
      '--admin-port',
      '19901',
    ]);
    expect(res.code, res.out).toBe(0);
    expect(res.stdout).toContain('id: edge-7');
    expect(res.stdout).toContain('address: 10.1.2.3');
    const dir = await mkdtemp(join(tmpdir(), 'chaperone-bootstrap-'));
    try {
      const file = join(dir, 'bootstrap.yaml');
      await writeFile(file, res.stdout);
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
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
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

  it('rejects a bad admin port as a usage error', async () => {
    const cli = join(PROJECT_ROOT, 'cli/bin/chaperone.js');
    const res = await run(process.execPath, [
      cli,
      'envoy',
      'bootstrap',
      '--node-id',
      'x',
      '--admin-port',
      '70000',
    ]);
    expect(res.code).toBe(2);
    expect(res.out).toContain('--admin-port');
  });
});
