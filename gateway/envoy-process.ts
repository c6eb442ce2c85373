// Runs a real Envoy as a child process: writes its bootstrap, starts it with a private base id (so
// several can run on one machine without sharing hot-restart memory) and, where util-linux's `setpriv`
// exists, with a parent-death signal, so Envoy dies with the process that started it even when that
// process is SIGKILLed; records it in a pid file (gateway/envoy-pid-file.ts) for the next start to
// reap otherwise. Waits until the admin interface reports ready (and, when asked, until its listeners
// accept connections), and stops it with SIGTERM, then SIGKILL if it lingers. `chaperone up` and the
// e2e suites share this one implementation.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { ChaperoneError } from '../contracts/errors.ts';
import { adminReady } from '../lib/envoy-admin.ts';
import { locateTool } from '../lib/tools.ts';
import { recordOf, removeEnvoyRecord, writeEnvoyRecord } from './envoy-pid-file.ts';

export interface EnvoyProcessOptions {
  /** Bootstrap as an object (written as JSON) or text (YAML/JSON). */
  bootstrap: Record<string, unknown> | string;
  /** Where the bootstrap is written; use a `.yaml` name for YAML text, `.json` for objects. */
  bootstrapPath: string;
  /** The admin interface: `unix:/path/admin.sock` or `http://127.0.0.1:<port>`. */
  adminUrl: string;
  logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  readyTimeoutMs?: number;
  /** Listener ports on 127.0.0.1 that must accept TCP connections before start resolves. */
  listenPorts?: number[];
  /** Receives Envoy's own log lines (and access-log lines it prints to stdout). */
  onLog?: (line: string) => void;
  /** Where to record the running Envoy for the next start to reap (see gateway/envoy-pid-file.ts). */
  pidFile?: string;
}

export interface EnvoyProcess {
  pid: number;
  adminUrl: string;
  stop(): Promise<void>;
  /** The last lines Envoy printed, for diagnostics. */
  recentLog(): string;
  /** Resolves with the exit code (null when a signal ended it) once Envoy has exited. */
  exited: Promise<number | null>;
  /** How it ended ("exit code 1", "signal SIGKILL"), or null while it runs. */
  exitReason(): string | null;
}

export class EnvoyStartError extends ChaperoneError {
  constructor(
    message: string,
    readonly log: string,
  ) {
    super('ERR_ENVOY_START', message, { detail: `\n--- envoy output (last lines) ---\n${log.slice(-4096)}` });
  }
}

const KEPT_LINES = 400;

/** util-linux's setpriv sets PR_SET_PDEATHSIG and execs Envoy (same pid); absent elsewhere. */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p)) ?? null;

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

/** Polls until the admin endpoint is ready and the listeners accept; throws (stopping Envoy) otherwise. */
async function untilReady(
  o: EnvoyProcessOptions,
  envoy: { exited(): Error | boolean; log(): string; stop(): Promise<void> },
): Promise<void> {
  const timeoutMs = o.readyTimeoutMs ?? 20_000;
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const exited = envoy.exited();
    if (exited !== false) {
      const why =
        exited instanceof Error
          ? `envoy could not be started: ${String(exited)}`
          : 'envoy exited during start-up';
      throw new EnvoyStartError(why, envoy.log());
    }
    if (await adminReady(o.adminUrl)) {
      let listening = true;
      for (const port of o.listenPorts ?? []) if (!(await tcpAccepts(port))) listening = false;
      if (listening) return;
    }
    if (Date.now() > deadline) {
      await envoy.stop();
      throw new EnvoyStartError(`envoy was not ready within ${timeoutMs} ms`, envoy.log());
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Envoy's command line, wrapped in setpriv so that it receives SIGKILL when its parent dies. */
function command(o: EnvoyProcessOptions, baseId: number): { file: string; args: string[] } {
  const envoy = locateTool('envoy');
  const args = ['-c', o.bootstrapPath, '--disable-hot-restart', '--base-id', String(baseId)];
  args.push('-l', o.logLevel ?? 'warn');
  if (SETPRIV) return { file: SETPRIV, args: ['--pdeathsig', 'SIGKILL', '--', envoy, ...args] };
  return { file: envoy, args };
}

export async function startEnvoy(o: EnvoyProcessOptions): Promise<EnvoyProcess> {
  await mkdir(dirname(o.bootstrapPath), { recursive: true, mode: 0o700 });
  await writeFile(
    o.bootstrapPath,
    typeof o.bootstrap === 'string' ? o.bootstrap : JSON.stringify(o.bootstrap, null, 2),
    { mode: 0o600 },
  );
  const baseId = randomInt(1000, 2 ** 30);
  const { file, args } = command(o, baseId);
  const child: ChildProcess = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const onData = (buf: Buffer) => {
    for (const line of buf.toString('utf8').split('\n')) {
      if (!line) continue;
      lines.push(line);
      if (lines.length > KEPT_LINES) lines.shift();
      o.onLog?.(line);
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  let spawnError: Error | null = null;
  let hasExited = false;
  let reason: string | null = null;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, signal) => {
      hasExited = true;
      reason = signal ? `signal ${signal}` : `exit code ${code}`;
      if (o.pidFile) void removeEnvoyRecord(o.pidFile);
      resolve(code);
    });
    child.once('error', (err) => {
      spawnError = err;
      hasExited = true;
      reason = `spawn failed: ${err.message}`;
      resolve(null);
    });
  });
  if (o.pidFile && child.pid) {
    // Once setpriv has exec'd Envoy the pid's command line is Envoy's; the record names that.
    const record = await recordOf(child.pid, o.bootstrapPath, baseId);
    if (record && !hasExited) await writeEnvoyRecord(o.pidFile, record);
  }
  const stop = async () => {
    if (hasExited) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };

  await untilReady(o, {
    exited: () => (hasExited ? (spawnError ?? true) : false),
    log: () => lines.join('\n'),
    stop,
  });
  return {
    pid: child.pid ?? 0,
    adminUrl: o.adminUrl,
    exited,
    exitReason: () => reason,
    recentLog: () => lines.join('\n'),
    stop,
  };
}
