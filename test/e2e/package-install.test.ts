// The npm package as an operator gets it: `npm pack` (prepack builds dist/ with tsc), installed with
// `--omit=dev` into a temporary global prefix, then the README's quick start walked from that install
// with Node.js 22 LTS and Envoy/OPA found on PATH: alice 200, bob 403, no token 401, and `audit query`
// shows the three. A missing Envoy or OPA stops `up` with a message that says what to install.
// Dependencies come from npm's own cache (`--prefer-offline`), filled by `npm ci`, so the install
// needs no network once the checkout is set up.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { locateTool, PROJECT_ROOT } from '../../lib/tools.ts';
import { type GatewayPorts, gatewayPorts } from '../support/gateway-process.ts';
import { waitFor } from '../support/wait.ts';

let work: string;
let prefix: string;
let packageDir: string;
let bin: string;

function run(
  cmd: string,
  args: string[],
  o: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<{ code: number; out: string; stdout: string }> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { cwd: o.cwd, env: o.env ?? process.env, timeout: o.timeoutMs ?? 120_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number(err.code ?? 1) : 0, out: `${stdout}${stderr}`, stdout }),
    );
  });
}

/** What an operator's shell has: Node 22 and the given tool folders on PATH, nothing of the checkout. */
function operatorEnv(toolDirs: string[]): NodeJS.ProcessEnv {
  return {
    PATH: [dirname(process.execPath), ...toolDirs, '/usr/local/bin', '/usr/bin', '/bin'].join(delimiter),
    HOME: process.env['HOME'] ?? tmpdir(),
  };
}

const opaDir = () => dirname(locateTool('opa'));
const envoyDir = () => dirname(locateTool('envoy'));

function configYaml(p: GatewayPorts): string {
  return `listeners:
  - name: egress
    address: 127.0.0.1
    port: ${p.listener}
identity:
  issuers:
    - issuer: http://127.0.0.1:${p.idp}
      audiences: [chaperone]
targets:
  - name: demo
    upstream: http://127.0.0.1:${p.demo}
    match:
      path_prefix: /demo
policy:
  dir: ${join(packageDir, 'policies')}
audit:
  store: embedded
  spool_dir: state/spool
# The dev users' security group holds the roles, as in the --dev set-up (carol reads the trail).
access:
  admins: [security]
  auditors: [security]
  reviewers: [security]
# The data-plane services and Envoy's admin on their default Unix sockets (state/sockets).
control_plane:
  http_address: 127.0.0.1:${p.api}
`;
}

interface Up {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

function startUp(args: string[], env: NodeJS.ProcessEnv, cwd: string): Up {
  const child = spawn(bin, ['up', ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (b: Buffer) => {
    out += b.toString('utf8');
  });
  child.stderr?.on('data', (b: Buffer) => {
    out += b.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function stopUp(up: Up): Promise<void> {
  if (up.child.exitCode !== null || up.child.signalCode !== null) return;
  up.child.kill('SIGTERM');
  const timer = setTimeout(() => up.child.kill('SIGKILL'), 15_000);
  await up.exited;
  clearTimeout(timer);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'chaperone-package-'));
  prefix = join(work, 'prefix');
  const packed = await run('npm', ['pack', '--silent', '--pack-destination', work], {
    cwd: PROJECT_ROOT,
    timeoutMs: 180_000,
  });
  expect(packed.code, packed.out).toBe(0);
  const tarball = join(work, packed.stdout.trim().split('\n').at(-1)!);
  const installed = await run(
    'npm',
    [
      'install',
      '--global',
      '--prefix',
      prefix,
      '--omit=dev',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      tarball,
    ],
    { cwd: work, timeoutMs: 240_000 },
  );
  expect(installed.code, installed.out).toBe(0);
  packageDir = join(prefix, 'lib', 'node_modules', 'chaperone');
  bin = join(prefix, 'bin', 'chaperone');
}, 420_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the npm package, installed with --omit=dev', () => {
  it('runs on Node.js 22 LTS or newer, with a sound JSON.parse', () => {
    console.log(`node ${process.version}`);
    expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(22);
  });

  it('ships compiled JavaScript and the runtime files, without the development tool chain', async () => {
    for (const f of [
      'dist/cli/main.js',
      'policies/capabilities.json',
      'schemas/config.schema.json',
      'store/migrations',
      'scripts/install-tools.mjs',
    ]) {
      expect(existsSync(join(packageDir, f)), f).toBe(true);
    }
    expect(existsSync(join(packageDir, 'cli', 'main.ts'))).toBe(false);
    for (const devOnly of ['tsx', 'typescript', 'vitest', '@biomejs/biome']) {
      expect(existsSync(join(packageDir, 'node_modules', devOnly)), devOnly).toBe(false);
    }
    // The dev IdP of the quick start is a product feature: it ships.
    expect(existsSync(join(packageDir, 'node_modules', 'oidc-provider'))).toBe(true);
    const pkg = JSON.parse(await readFile(join(packageDir, 'package.json'), 'utf8')) as {
      version: string;
    };
    const version = await run(bin, ['--version'], { env: operatorEnv([]) });
    expect({ code: version.code, out: version.out }).toEqual({ code: 0, out: `${pkg.version}\n` });
  });

  it('walks the quick start: alice 200, bob 403, no token 401, and the audit trail shows them', async () => {
    const ports = await gatewayPorts();
    const dir = await mkdtemp(join(work, 'quick-start-'));
    const configPath = join(dir, 'chaperone.yaml');
    await writeFile(configPath, configYaml(ports));
    const env = operatorEnv([opaDir(), envoyDir()]);
    const up = startUp(
      [
        '--dev',
        '--config',
        configPath,
        '--dev-idp-port',
        String(ports.idp),
        '--demo-port',
        String(ports.demo),
      ],
      env,
      dir,
    );
    try {
      await waitFor(() => up.output().includes('chaperone is up') || up.child.exitCode !== null, {
        what: 'chaperone up from the installed package',
        timeoutMs: 120_000,
        intervalMs: 100,
      });
      expect(up.child.exitCode, up.output()).toBeNull();
      const api = `http://127.0.0.1:${ports.api}`;
      const egress = `http://127.0.0.1:${ports.listener}/demo/items`;
      const token = async (user: string) => {
        const res = await run(bin, ['dev', 'token', user, '--api', api], { env, cwd: dir });
        expect(res.code, res.out).toBe(0);
        return res.stdout.trim();
      };
      const alice = await fetch(egress, { headers: { authorization: `Bearer ${await token('alice')}` } });
      expect(alice.status).toBe(200);
      const bob = await fetch(egress, { headers: { authorization: `Bearer ${await token('bob')}` } });
      expect(bob.status).toBe(403);
      const anonymous = await fetch(egress);
      expect(anonymous.status).toBe(401);
      expect(((await anonymous.json()) as { code: string }).code).toBe('ERR_TOKEN_MISSING');

      let rows: { subject?: string | null; decision?: string; http_status?: number }[] = [];
      // The README's way: the auditor's token (carol) in CHAPERONE_TOKEN.
      const auditor = { ...env, CHAPERONE_TOKEN: await token('carol') };
      await waitFor(
        async () => {
          const q = await run(bin, ['audit', 'query', '--since', '10m', '--json', '--api', api], {
            env: auditor,
            cwd: dir,
          });
          if (q.code !== 0) throw new Error(q.out);
          rows = q.stdout
            .trim()
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l));
          return rows.length >= 3;
        },
        { what: 'three decisions in `chaperone audit query`', timeoutMs: 20_000, intervalMs: 200 },
      );
      const summary = rows.map((r) => `${r.subject ?? '-'} ${r.decision} ${r.http_status}`).sort();
      expect(summary).toEqual(['- deny 401', 'alice allow 200', 'bob deny 403']);
    } finally {
      await stopUp(up);
    }
    expect(await up.exited, up.output()).toBe(0);
  });

  it.each([
    { missing: 'envoy', path: () => [opaDir()], install: 'Envoy 1.40' },
    { missing: 'opa', path: () => [envoyDir()], install: 'OPA v1.22.2' },
  ])('says exactly what is missing when $missing is not installed', async ({ missing, path, install }) => {
    const ports = await gatewayPorts();
    const dir = await mkdtemp(join(work, `no-${missing}-`));
    const configPath = join(dir, 'chaperone.yaml');
    await writeFile(configPath, configYaml(ports));
    const up = startUp(['--config', configPath], operatorEnv(path()), dir);
    try {
      await waitFor(() => up.child.exitCode !== null, {
        what: `chaperone up without ${missing} to give up`,
        timeoutMs: 90_000,
        intervalMs: 100,
      });
      expect(up.child.exitCode, up.output()).not.toBe(0);
      const out = up.output();
      expect(out).toContain(`${missing} not found`);
      expect(out).toContain(`$CHAPERONE_${missing.toUpperCase()} (not set)`);
      expect(out).toContain(install);
      expect(out).toContain(`node ${join(packageDir, 'scripts', 'install-tools.mjs')} --runtime`);
    } finally {
      await stopUp(up);
    }
  });
});
