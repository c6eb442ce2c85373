// The `chaperone` CLI exactly as a user runs it (the bin wrapper in a child process).
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../lib/tools.ts';

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
