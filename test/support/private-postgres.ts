// A PostgreSQL server of a test's own, for tests that stop and restart it (an outage): the shared CI
// cluster (test/support/postgres.ts) serves other files in parallel and must never go down. Uses the
// Debian binaries in /usr/lib/postgresql/<newest>/bin; as root (CI) every command runs as the
// `postgres` OS user, since initdb and postgres refuse to run as root.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.ts';

const PG_ROOT = '/usr/lib/postgresql';
const ROLE = 'chaperone';

function findBinDir(): string | null {
  let versions: string[];
  try {
    versions = readdirSync(PG_ROOT).filter((v) => /^\d+(\.\d+)?$/.test(v));
  } catch {
    return null;
  }
  versions.sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const bin = join(PG_ROOT, v, 'bin');
    if (['initdb', 'pg_ctl', 'postgres'].every((b) => existsSync(join(bin, b)))) return bin;
  }
  return null;
}

const isRoot = process.getuid?.() === 0;

/** uid/gid of the `postgres` OS user, from /etc/passwd (root only needs it). */
function postgresUser(): { uid: number; gid: number } | null {
  try {
    const line = execFileSync('getent', ['passwd', 'postgres'], { encoding: 'utf8' }).trim();
    const [, , uid, gid] = line.split(':');
    return uid && gid ? { uid: Number(uid), gid: Number(gid) } : null;
  } catch {
    return null;
  }
}

export const PRIVATE_PG_BIN: string | null = findBinDir();
const PG_USER = isRoot ? postgresUser() : null;
const RUNUSER = ['/usr/sbin/runuser', '/sbin/runuser', '/usr/bin/runuser'].find((p) => existsSync(p));

/** Why a private server cannot be started here, or null when it can. */
export const NO_PRIVATE_POSTGRES_REASON: string | null = !PRIVATE_PG_BIN
  ? `no PostgreSQL binaries in ${PG_ROOT}/<version>/bin (install Debian's postgresql package; .ci/run does)`
  : isRoot && !PG_USER
    ? 'running as root but there is no `postgres` OS user to run initdb/postgres as'
    : isRoot && !RUNUSER
      ? 'running as root but runuser is missing (needed to run postgres as the postgres user)'
      : null;

export interface PrivatePostgres {
  /** postgres://chaperone@127.0.0.1:<port>/postgres (trust authentication, loopback only). */
  url: string;
  port: number;
  dataDir: string;
  /** Stops the server; `immediate` is a crash (no checkpoint, connections cut), `fast` a clean stop. */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts it again on the same port and data directory; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops it (if running) and deletes its directory. Safe to call twice. */
  destroy(): Promise<void>;
  /** The server log, for a failing test's message. */
  log(): Promise<string>;
}

function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const [file, argv] = isRoot ? [RUNUSER!, ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) => {
    execFile(file, argv, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

/** initdb + start on a free loopback port. Throws with NO_PRIVATE_POSTGRES_REASON when unavailable. */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  if (NO_PRIVATE_POSTGRES_REASON) throw new Error(NO_PRIVATE_POSTGRES_REASON);
  const bin = PRIVATE_PG_BIN!;
  const base = await mkdtemp(join(tmpdir(), 'chaperone-pg-'));
  if (PG_USER) await chown(base, PG_USER.uid, PG_USER.gid);
  const dataDir = join(base, 'data');
  const logFile = join(base, 'postgres.log');
  let port = 0;
  let running = false;
  let destroyed = false;

  const pgCtl = (...args: string[]) => run(join(bin, 'pg_ctl'), ['-D', dataDir, ...args]);
  const start = async () => {
    // The socket goes into our own directory (not /var/run/postgresql, which is the shared cluster's).
    // fsync=off: an immediate stop is a process crash, not a power cut; written WAL survives it.
    const opts = `-p ${port} -k ${base} -c listen_addresses=127.0.0.1 -c fsync=off`;
    await pgCtl('-l', logFile, '-o', opts, '-w', '-t', '30', 'start');
    running = true;
  };
  const stop = async (mode: 'fast' | 'immediate' = 'fast') => {
    await pgCtl('-m', mode, '-w', '-t', '30', 'stop');
    running = false;
  };
  // A crashed test file must not leave a postmaster behind.
  const onExit = () => {
    if (!running) return;
    try {
      const args = ['-D', dataDir, '-m', 'immediate', 'stop'];
      const ctl = join(bin, 'pg_ctl');
      if (isRoot) execFileSync(RUNUSER!, ['-u', 'postgres', '--', ctl, ...args], { stdio: 'ignore' });
      else execFileSync(ctl, args, { stdio: 'ignore' });
    } catch {
      // best effort
    }
  };
  process.once('exit', onExit);

  const destroy = async () => {
    if (destroyed) return;
    destroyed = true;
    process.removeListener('exit', onExit);
    if (running) await stop('immediate').catch(() => undefined);
    await rm(base, { recursive: true, force: true });
  };

  try {
    await run(join(bin, 'initdb'), ['-D', dataDir, '-A', 'trust', '-U', ROLE, '-E', 'UTF8', '--no-sync']);
    // A free port can be taken between the probe and the bind (suites run in parallel): try again.
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      try {
        await start();
        break;
      } catch (err) {
        if (attempt >= 3) throw err;
      }
    }
  } catch (err) {
    const log = await readFile(logFile, 'utf8').catch(() => '');
    await destroy();
    throw new Error(`private PostgreSQL did not start: ${(err as Error).message}\n${log}`);
  }

  return {
    url: `postgres://${ROLE}@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    stop,
    start,
    destroy,
    log: () => readFile(logFile, 'utf8').catch(() => ''),
  };
}
