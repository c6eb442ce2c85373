// Child processes of the benchmark (the two servers under test and ghz). Every child is tracked so
// that a normal end, an error or Ctrl-C stops all of them: nothing is left listening after a run.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readSync, statSync } from 'node:fs';

export interface Child {
  name: string;
  proc: ChildProcess;
  /** The last lines the process wrote (stdout + stderr), for error messages. */
  tail(): string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>;
}

const running = new Set<Child>();
const TAIL_LINES = 20;

export interface SpawnOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Pin the process to these CPUs with taskset (e.g. "0" or "1"). */
  cpus?: string;
  /** Append the process's stdout and stderr to this file instead of piping them (e.g. decision logs). */
  outputFile?: string;
}

export function spawnChild(name: string, cmd: string, args: string[], opts: SpawnOptions = {}): Child {
  const [file, argv] = opts.cpus ? ['taskset', ['-c', opts.cpus, cmd, ...args]] : [cmd, args];
  const outFd = opts.outputFile ? openSync(opts.outputFile, 'a') : null;
  const proc = spawn(file, argv, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', outFd ?? 'pipe', outFd ?? 'pipe'],
  });
  // The child holds its own copy of the descriptor.
  if (outFd !== null) closeSync(outFd);
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line) continue;
      lines.push(line);
      if (lines.length > TAIL_LINES) lines.shift();
    }
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  const exited = new Promise<number | string>((resolve) => {
    proc.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
    proc.once('error', (err) => {
      lines.push(`spawn failed: ${err.message}`);
      resolve('spawn-error');
    });
  });
  const tail = opts.outputFile ? () => fileTail(opts.outputFile as string) : () => lines.join('\n');
  const child: Child = { name, proc, tail, exited };
  running.add(child);
  void exited.then(() => running.delete(child));
  return child;
}

/** The last few KiB of an output file (for error messages only). */
function fileTail(path: string, bytes = 4096): string {
  try {
    const size = statSync(path).size;
    const fd = openSync(path, 'r');
    const buf = Buffer.alloc(Math.min(bytes, size));
    readSync(fd, buf, 0, buf.length, size - buf.length);
    closeSync(fd);
    return buf.toString('utf8');
  } catch {
    return `(no output in ${path})`;
  }
}

/** Stops one child: SIGTERM, then SIGKILL if it is still there after `graceMs`. */
export async function stopChild(child: Child, graceMs = 3000): Promise<void> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return;
  child.proc.kill('SIGTERM');
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), graceMs);
  await child.exited;
  clearTimeout(timer);
}

/** The children running now (to stop only those a failed start added: `stopChildrenSince`). */
export function runningChildren(): ReadonlySet<Child> {
  return new Set(running);
}

export async function stopChildrenSince(before: ReadonlySet<Child>): Promise<void> {
  await Promise.all([...running].filter((c) => !before.has(c)).map((c) => stopChild(c)));
}

export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((c) => stopChild(c)));
}

/** Last-resort cleanup when the event loop cannot run any more (process 'exit'). */
export function killAllNow(): void {
  for (const c of running) c.proc.kill('SIGKILL');
}

export { freePort } from '../../lib/ports.ts';

/** Polls `cond` until it holds, the child dies, or the deadline passes. */
export async function waitUntil(
  what: string,
  cond: () => Promise<boolean>,
  opts: { timeoutMs: number; child?: Child },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let last: unknown;
  for (;;) {
    if (opts.child && opts.child.proc.exitCode !== null) {
      throw new Error(
        `${opts.child.name} exited (${opts.child.proc.exitCode}) before ${what}:\n${opts.child.tail()}`,
      );
    }
    try {
      if (await cond()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      const detail = last instanceof Error ? ` (last error: ${last.message})` : '';
      const tail = opts.child ? `\n${opts.child.name} output:\n${opts.child.tail()}` : '';
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what}${detail}${tail}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
