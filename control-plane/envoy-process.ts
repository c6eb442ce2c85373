// Runs a real Envoy as a child process: writes its bootstrap, starts it with a private base id (so
// several can run on one machine without sharing hot-restart memory), waits for the admin endpoint
// to report ready, and stops it with SIGTERM, then SIGKILL if it lingers.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { locateTool } from '../lib/tools.ts';

export interface EnvoyProcessOptions {
  /** Bootstrap as an object (written as JSON) or text (YAML/JSON). */
  bootstrap: Record<string, unknown> | string;
  bootstrapPath: string;
  adminUrl: string;
  logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  readyTimeoutMs?: number;
  /** Receives Envoy's own log lines. */
  onLog?: (line: string) => void;
}

export interface EnvoyProcess {
  pid: number;
  adminUrl: string;
  stop(): Promise<void>;
  /** The last lines Envoy printed, for diagnostics. */
  recentLog(): string;
  exited: Promise<number | null>;
}

export class EnvoyStartError extends Error {
  readonly code = 'ERR_ENVOY_START';
  constructor(message: string, readonly log: string) {
    super(message);
    this.name = 'EnvoyStartError';
  }
}

export async function startEnvoy(o: EnvoyProcessOptions): Promise<EnvoyProcess> {
  await mkdir(dirname(o.bootstrapPath), { recursive: true });
  await writeFile(o.bootstrapPath, typeof o.bootstrap === 'string' ? o.bootstrap : JSON.stringify(o.bootstrap, null, 2));
  const bin = locateTool('envoy');
  const child: ChildProcess = spawn(
    bin,
    ['-c', o.bootstrapPath, '--disable-hot-restart', '--base-id', String(randomInt(1000, 1_000_000)), '-l', o.logLevel ?? 'warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const lines: string[] = [];
  const onData = (buf: Buffer) => {
    for (const line of buf.toString('utf8').split('\n')) {
      if (!line) continue;
      lines.push(line);
      if (lines.length > 200) lines.shift();
      o.onLog?.(line);
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
  });

  const deadline = Date.now() + (o.readyTimeoutMs ?? 20_000);
  while (true) {
    if (hasExited) throw new EnvoyStartError(`envoy exited during start-up`, lines.join('\n'));
    try {
      const res = await fetch(`${o.adminUrl}/ready`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new EnvoyStartError(`envoy was not ready within ${o.readyTimeoutMs ?? 20_000} ms`, lines.join('\n'));
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    pid: child.pid ?? 0,
    adminUrl: o.adminUrl,
    exited,
    recentLog: () => lines.join('\n'),
    stop: async () => {
      if (hasExited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
