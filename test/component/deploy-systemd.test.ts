// The systemd units (deploy/systemd) as systemd reads them: `systemd-analyze verify` must print
// nothing (it exits 0 even on an unknown directive, so the output is what counts), and
// `systemd-analyze security --offline` must rate each unit's exposure low. The units' ExecStart names
// /usr/local/bin/chaperone, which this machine does not have: verify runs on copies pointing at a stub.
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../lib/tools.ts';

const UNITS = ['chaperone.service', 'chaperone-authz.service'];
const BIN = '/usr/local/bin/chaperone';
let dir: string;

function analyze(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('systemd-analyze', args, { timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, out: `${stdout}${stderr}` }),
    );
  });
}

/** A copy of the unit whose ExecStart points at an executable stub; returns its path. */
async function checkable(unit: string, edit: (text: string) => string = (t) => t): Promise<string> {
  const text = await readFile(join(PROJECT_ROOT, 'deploy', 'systemd', unit), 'utf8');
  expect(text).toContain(`ExecStart=${BIN} `);
  const path = join(dir, unit);
  await writeFile(path, edit(text.replaceAll(BIN, join(dir, 'chaperone'))));
  return path;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chaperone-systemd-'));
  await writeFile(join(dir, 'chaperone'), '#!/bin/sh\n');
  await chmod(join(dir, 'chaperone'), 0o755);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('systemd units', () => {
  it.each(UNITS)('%s passes systemd-analyze verify without a word', async (unit) => {
    const res = await analyze(['verify', await checkable(unit)]);
    expect(res).toEqual({ code: 0, out: '' });
  });

  it('verify does report a broken unit (the check above can fail)', async () => {
    const broken = await checkable('chaperone.service', (t) =>
      t.replace('NoNewPrivileges=yes', 'NoNewPrivileges=yes\nProtectSystems=strict'),
    );
    const res = await analyze(['verify', broken]);
    expect(res.out).toContain("Unknown key 'ProtectSystems'");
  });

  it.each(UNITS)('%s is hardened: exposure at most 2.0 of 10 (systemd-analyze security)', async (unit) => {
    const res = await analyze(['security', '--offline=yes', '--no-pager', await checkable(unit)]);
    const level = /Overall exposure level for \S+: ([\d.]+)/.exec(res.out)?.[1];
    expect(level, res.out).toBeDefined();
    expect(Number(level)).toBeLessThanOrEqual(2.0);
  });

  it.each(UNITS)('%s runs as a dynamic user with its own state directory and no privileges', async (unit) => {
    const text = await readFile(join(PROJECT_ROOT, 'deploy', 'systemd', unit), 'utf8');
    for (const directive of [
      'DynamicUser=yes',
      'ProtectSystem=strict',
      'NoNewPrivileges=yes',
      'CapabilityBoundingSet=\n',
      'PrivateTmp=yes',
    ]) {
      expect(text).toContain(directive);
    }
    expect(text).toMatch(/^StateDirectory=chaperone(-authz)?$/m);
  });
});
