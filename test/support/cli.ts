// The `chaperone` CLI exactly as a user runs it (the bin wrapper in a child process).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../lib/tools.ts';
import { waitFor } from './wait.ts';

export const CHAPERONE_BIN = join(PROJECT_ROOT, 'cli/bin/chaperone.js');

/** Runs `chaperone …args`; resolves with the exit code and stdout + stderr, never rejects. */
export function runCli(
  args: string[],
  o: { cwd?: string; timeoutMs?: number } = {},
): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CHAPERONE_BIN, ...args],
      { timeout: o.timeoutMs ?? 60_000, ...(o.cwd ? { cwd: o.cwd } : {}) },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, out: `${stdout}${stderr}` }),
    );
  });
}

export interface AuthzServeProcess {
  child: ChildProcess;
  output(): string;
  /** Resolves once it listens; rejects with its output if it exits first or takes too long. */
  ready(timeoutMs?: number): Promise<void>;
  stop(): void;
}

/** `chaperone authz serve` on `addr` with the shipped policies, plus `args` (issuer, control plane…). */
export function startAuthzServe(addr: string, args: string[]): AuthzServeProcess {
  return startAuthzCommand([
    'authz',
    'serve',
    '--addr',
    addr,
    '--policy-dir',
    join(PROJECT_ROOT, 'policies'),
    '--log-level',
    'warn',
    ...args,
  ]);
}

/** `chaperone …args` for a command line that starts an authz server (a deployment's, as written). */
export function startAuthzCommand(
  args: string[],
  o: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): AuthzServeProcess {
  const child = spawn(process.execPath, [CHAPERONE_BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(o.cwd ? { cwd: o.cwd } : {}),
    ...(o.env ? { env: o.env } : {}),
  });
  let out = '';
  child.stdout?.on('data', (b: Buffer) => {
    out += b.toString();
  });
  child.stderr?.on('data', (b: Buffer) => {
    out += b.toString();
  });
  return {
    child,
    output: () => out,
    ready: async (timeoutMs = 120_000) => {
      // It compiles the policy directory at start; on a busy machine that takes a while.
      await waitFor(() => out.includes('listening on') || child.exitCode !== null, {
        what: 'chaperone authz serve',
        timeoutMs,
      });
      if (child.exitCode !== null) throw new Error(`chaperone authz serve exited:\n${out}`);
    },
    stop: () => {
      child.kill('SIGTERM');
    },
  };
}
