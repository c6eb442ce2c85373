// Runs a real Envoy for end-to-end tests: renders a bootstrap template, starts the binary found by
// locateTool('envoy'), waits until the admin interface says it is ready (and, when asked, until its
// listeners accept connections), and stops it again. Envoy's output is kept for diagnostics so a
// failing test can show why Envoy refused a config or a request.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { locateTool } from '../../lib/tools.ts';
import { waitFor } from './wait.ts';

export interface StartEnvoyOptions {
  /** A complete, rendered bootstrap (YAML). */
  bootstrapYaml: string;
  /** The admin port the bootstrap binds on 127.0.0.1 (used to poll /ready). */
  adminPort: number;
  /** Envoy's -l level. Default warn. */
  logLevel?: string;
  /** Listener ports on 127.0.0.1 that must accept TCP connections before start resolves. */
  listenPorts?: number[];
  /** Start-up deadline. Default 15 s. */
  timeoutMs?: number;
}

export interface RunningEnvoy {
  adminUrl: string;
  /** SIGTERM, then SIGKILL if Envoy has not exited within 5 s; removes the temp config. */
  close(): Promise<void>;
  /** Everything Envoy wrote to stdout (access log) and stderr so far. */
  logs(): string;
}

export class EnvoyStartError extends Error {
  readonly code = 'ERR_ENVOY_START';
  constructor(
    message: string,
    readonly output: string,
  ) {
    super(`${message}\n--- envoy output (last 4 KiB) ---\n${output.slice(-4096)}`);
    this.name = 'EnvoyStartError';
  }
}

/** Replaces every `{{NAME}}` with vars[NAME]; a placeholder without a value is an error. */
export function renderTemplate(text: string, vars: Record<string, string | number>): string {
  const missing = new Set<string>();
  const out = text.replace(/\{\{\s*([A-Z0-9_]+)\s*\}\}/g, (_m, name: string) => {
    const value = vars[name];
    if (value === undefined) {
      missing.add(name);
      return '';
    }
    return String(value);
  });
  if (missing.size > 0) throw new Error(`template placeholders without a value: ${[...missing].join(', ')}`);
  return out;
}

function tcpAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

export async function startEnvoy(opts: StartEnvoyOptions): Promise<RunningEnvoy> {
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-envoy-'));
  const configPath = join(dir, 'bootstrap.yaml');
  await writeFile(configPath, opts.bootstrapYaml);

  const args = [
    '-c',
    configPath,
    '--disable-hot-restart',
    // Distinct base ids keep parallel Envoys from colliding on shared-memory/domain-socket names.
    '--base-id',
    String(randomInt(1, 2 ** 30)),
    '-l',
    opts.logLevel ?? 'warn',
  ];
  const child = spawn(locateTool('envoy'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const append = (chunk: Buffer) => {
    output += chunk.toString('utf8');
    // Keep memory bounded for long suites; diagnostics only need the tail.
    if (output.length > 1_000_000) output = output.slice(-500_000);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  let spawnError: Error | null = null;
  child.once('error', (err) => {
    spawnError = err;
  });
  const exitedPromise = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const adminUrl = `http://127.0.0.1:${opts.adminPort}`;
  const close = async () => {
    if (!exited(child) && !spawnError) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exitedPromise;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };

  // Early exit (bad config, port taken) ends the wait at once instead of running out the deadline.
  let died = false;
  try {
    await waitFor(
      async () => {
        if (spawnError || exited(child)) {
          died = true;
          return true;
        }
        const res = await fetch(`${adminUrl}/ready`);
        await res.arrayBuffer();
        if (res.status !== 200) return false;
        for (const port of opts.listenPorts ?? []) if (!(await tcpAccepts(port))) return false;
        return true;
      },
      { timeoutMs: opts.timeoutMs ?? 15_000, intervalMs: 50, what: `envoy ready on ${adminUrl}` },
    );
  } catch (err) {
    await close();
    throw new EnvoyStartError(err instanceof Error ? err.message : String(err), output);
  }
  if (died) {
    await close();
    const why = spawnError
      ? `envoy could not be started: ${String(spawnError)}`
      : `envoy exited during start-up (code ${child.exitCode}, signal ${child.signalCode})`;
    throw new EnvoyStartError(why, output);
  }
  return { adminUrl, close, logs: () => output };
}
