// One small SQL surface over both engines, so the store's queries and the migrations are written once:
// PostgreSQL through `pg` (a pool) and PGlite (PostgreSQL compiled to WASM), either in the calling
// thread or in a worker thread of its own (store/pglite-thread.ts) so that its work never holds up the
// event loop that answers Envoy's Checks.
import { open, readdir, readFile, rm } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import { ChaperoneError } from '../contracts/errors.ts';
import { PROJECT_ROOT } from '../lib/tools.ts';
import type { ThreadError, ThreadReply, ThreadRequest } from './pglite-thread.ts';
import { securePrivateDir } from './state-dir.ts';

export interface Sql {
  readonly engine: 'postgres' | 'pglite';
  /**
   * The database executes on the caller's thread (PGlite in-process): a statement blocks the event loop
   * while it runs, so one statement per batch beats several. Otherwise a statement costs the caller
   * only the encoding of its parameters.
   */
  readonly sharesThread: boolean;
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  /** Runs `fn` in one transaction (serialised per connection). */
  transaction<T>(fn: (tx: Pick<Sql, 'query'>) => Promise<T>): Promise<T>;
  exec(text: string): Promise<void>;
  /**
   * Subscribes to NOTIFY on `channel`. `onResync` runs after the subscription was re-established
   * (notices sent while it was down are lost, so the subscriber reloads what it mirrors). Returns an
   * unsubscribe function.
   */
  listen(
    channel: string,
    onNotice: (payload: string) => void,
    onResync: () => void,
  ): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export const MIGRATIONS_DIR = join(PROJECT_ROOT, 'store', 'migrations');

// Reading columns the same way from both engines: they agree on most types, but a driver may hand a
// jsonb or timestamptz column over as text.

/** A jsonb column: parsed already, or its JSON text. */
export const jsonColumn = <T = unknown>(v: unknown): T => (typeof v === 'string' ? JSON.parse(v) : v) as T;

/** A timestamptz column as an ISO 8601 string (a Date, or text a Date can read). */
export const isoTime = (v: unknown): string => (v instanceof Date ? v : new Date(String(v))).toISOString();

/** A nullable timestamptz column: null stays null. */
export const isoTimeOrNull = (v: unknown): string | null =>
  v === null || v === undefined ? null : isoTime(v);

/** The store cannot be opened, migrated or written. Messages carry URLs only through redactUrl. */
export class AuditStoreError extends ChaperoneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_AUDIT_STORE', message, options);
  }
}

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'an unparsable database URL';
  }
}

/**
 * LISTEN on a connection of its own (a pooled one would be handed to other queries). When the
 * connection drops (server restart, network), it is re-established with backoff and `onResync` runs.
 */
async function listenPostgres(
  url: string,
  channel: string,
  onNotice: (payload: string) => void,
  onResync: () => void,
): Promise<() => Promise<void>> {
  let client: pg.Client | null = null;
  let stopped = false;
  let retryTimer: NodeJS.Timeout | null = null;
  const connect = async (): Promise<void> => {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
    c.on('error', () => undefined);
    c.on('notification', (n) => {
      if (n.channel === channel) onNotice(n.payload ?? '');
    });
    await c.connect();
    await c.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    c.on('end', () => {
      if (client === c) client = null;
      if (!stopped) retry(250);
    });
    client = c;
  };
  const retry = (delay: number) => {
    retryTimer = setTimeout(() => {
      connect().then(onResync, () => {
        if (!stopped) retry(Math.min(delay * 2, 5000));
      });
    }, delay);
    retryTimer.unref();
  };
  await connect();
  return async () => {
    stopped = true;
    if (retryTimer) clearTimeout(retryTimer);
    await client?.end().catch(() => undefined);
  };
}

export async function openPostgres(url: string): Promise<Sql> {
  const pool = new pg.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 5000 });
  // An idle client's error (the server restarted) must not crash the process; the next query retries.
  pool.on('error', () => undefined);
  return {
    engine: 'postgres',
    sharesThread: false,
    listen: (channel, onNotice, onResync) => listenPostgres(url, channel, onNotice, onResync),
    query: async (text, params) => (await pool.query(text, params as unknown[])).rows,
    exec: async (text) => {
      await pool.query(text);
    },
    transaction: async (fn) => {
      const client = await pool.connect();
      // A checked-out client has no pool listener: a connection lost mid-transaction (the server
      // stopped) would otherwise be an uncaught 'error' event and end the process.
      let broken: Error | undefined;
      const onError = (err: Error) => {
        broken = err;
      };
      client.on('error', onError);
      try {
        await client.query('BEGIN');
        const out = await fn({ query: async (t, p) => (await client.query(t, p as unknown[])).rows });
        await client.query('COMMIT');
        return out;
      } catch (err) {
        if (!broken) await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.removeListener('error', onError);
        // A broken client is discarded, not returned to the pool.
        client.release(broken);
      }
    },
    close: () => pool.end(),
  };
}

export interface PgliteOptions {
  /**
   * Run PGlite in a worker thread of its own (store/pglite-thread.ts) instead of the calling thread:
   * what the gateway does, so that a batch executing inside the database never delays a Check.
   */
  thread?: boolean;
}

/**
 * PGlite in `dataDir` (in memory when null). The directory is made private first, and again once the
 * database is open: PGlite's initdb writes its files world-readable and -writable (0666) whatever the
 * umask, and whoever can write them can approve requests, lift revocations or rewrite the trail. Files
 * it creates later follow the process umask, inside the 0700 directory.
 */
export async function openPglite(dataDir: string | null, o: PgliteOptions = {}): Promise<Sql> {
  if (dataDir) {
    await securePrivateDir(dataDir);
    await claimDataDir(dataDir);
  }
  let sql: Sql;
  try {
    sql = o.thread ? await pgliteThread(dataDir) : await pgliteHere(dataDir);
    if (dataDir) await securePrivateDir(dataDir);
  } catch (err) {
    if (dataDir) await releaseDataDir(dataDir);
    throw err;
  }
  return {
    ...sql,
    close: async () => {
      await sql.close();
      if (dataDir) await releaseDataDir(dataDir);
    },
  };
}

async function pgliteHere(dataDir: string | null): Promise<Sql> {
  const { PGlite } = await import('@electric-sql/pglite');
  const db = dataDir ? new PGlite(dataDir) : new PGlite();
  await db.waitReady;
  return {
    engine: 'pglite',
    sharesThread: true,
    // One in-process database: nothing to reconnect, so no resync.
    listen: (channel, onNotice) => db.listen(channel, onNotice).then((off) => () => off()),
    query: async (text, params) => (await db.query(text, params as unknown[])).rows as never[],
    exec: async (text) => {
      await db.exec(text);
    },
    transaction: (fn) =>
      db.transaction((tx) =>
        fn({ query: async (t, p) => (await tx.query(t, p as unknown[])).rows as never[] }),
      ),
    close: () => db.close(),
  };
}

/** The database's error as the calling thread sees it: message and SQLSTATE fields kept. */
function fromThread(e: ThreadError): Error {
  return Object.assign(new Error(e.message), e);
}

/** Requests without their id (the client numbers them). */
type Op = ThreadRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/**
 * PGlite in its own worker thread, behind the same Sql surface: each call is a message to the thread
 * and its reply; a transaction is held open there (BEGIN … COMMIT/ROLLBACK) while `fn` runs here, so the
 * store's code is the same on either side. The thread's file is `.ts` in the source tree and `.js` in
 * dist/: the one beside this module.
 */
async function pgliteThread(dataDir: string | null): Promise<Sql> {
  const file = new URL(`./pglite-thread${extname(fileURLToPath(import.meta.url))}`, import.meta.url);
  const worker = new Worker(file, { workerData: { dataDir } });
  const calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const notices = new Map<number, (payload: string) => void>();
  let nextId = 1;
  let gone: Error | null = null;
  const ready = new Promise<void>((resolve, reject) => {
    worker.on('message', (m: ThreadReply) => {
      if ('ready' in m) resolve();
      else if ('failed' in m) reject(fromThread(m.failed));
      else if ('notice' in m) notices.get(m.notice)?.(m.payload);
      else {
        const call = calls.get(m.id);
        calls.delete(m.id);
        if (m.ok) call?.resolve(m.value);
        else call?.reject(fromThread(m.error));
      }
    });
    const lost = (err: Error) => {
      gone = err;
      reject(err);
      for (const c of calls.values()) c.reject(err);
      calls.clear();
    };
    worker.on('error', (err) =>
      lost(new AuditStoreError(`the embedded database's thread failed: ${err.message}`, { cause: err })),
    );
    worker.on('exit', (code) => lost(new AuditStoreError(`the embedded database's thread exited (${code})`)));
  });
  const call = <T>(op: Op): Promise<T> => {
    if (gone) return Promise.reject(gone);
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      calls.set(id, { resolve: resolve as (v: unknown) => void, reject });
      worker.postMessage({ ...op, id });
    });
  };
  try {
    await ready;
  } catch (err) {
    await worker.terminate();
    throw err;
  }
  const query = <T>(text: string, params: unknown[] | undefined, tx: number | null) =>
    call<T[]>({ op: 'query', text, params, tx });
  return {
    engine: 'pglite',
    sharesThread: false,
    listen: async (channel, onNotice) => {
      const sub = await call<number>({ op: 'listen', channel });
      notices.set(sub, onNotice);
      return async () => {
        notices.delete(sub);
        await call({ op: 'unlisten', sub }).catch(() => undefined);
      };
    },
    query: (text, params) => query(text, params, null),
    exec: async (text) => {
      await call({ op: 'exec', text });
    },
    transaction: async (fn) => {
      const tx = await call<number>({ op: 'begin' });
      let out: Awaited<ReturnType<typeof fn>>;
      try {
        out = await fn({ query: (t, p) => query(t, p, tx) });
      } catch (err) {
        await call({ op: 'end', tx, commit: false }).catch(() => undefined);
        throw err;
      }
      await call({ op: 'end', tx, commit: true });
      return out;
    },
    close: async () => {
      if (!gone) await call({ op: 'close' }).catch(() => undefined);
      // `exit` marks the thread gone for any call that comes after.
      await worker.terminate();
    },
  };
}

/** Held while a process has the embedded database open: PGlite itself does not stop a second opener. */
const OWNER_FILE = 'chaperone.pid';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Two processes with one PGlite directory open corrupt it. The opener writes its pid beside the data
 * files; another live process's pid there refuses the open (a stale one, left by a crash, is taken over).
 */
async function claimDataDir(dataDir: string): Promise<void> {
  const file = join(dataDir, OWNER_FILE);
  const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
  if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid))
    throw new AuditStoreError(
      `the embedded database ${dataDir} is open in process ${pid} (a running gateway?): stop it first, or use its HTTP API; if no such process is Chaperone, remove ${file}`,
    );
  const fh = await open(file, 'w', 0o600);
  try {
    await fh.writeFile(`${process.pid}\n`);
  } finally {
    await fh.close();
  }
}

async function releaseDataDir(dataDir: string): Promise<void> {
  const file = join(dataDir, OWNER_FILE);
  const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
  if (pid === process.pid) await rm(file, { force: true });
}

/** Serialises migrations of every process on one PostgreSQL database (nodes of a fleet starting at once). */
const MIGRATION_LOCK = 7265847;

/**
 * Applies `NNNN_name.sql` files in order, each once, each in a transaction. Returns the versions applied
 * now. On PostgreSQL each step holds an advisory lock and re-reads what is applied, so several nodes
 * starting together on an empty database apply each migration exactly once.
 */
export async function migrate(sql: Sql, dir = MIGRATIONS_DIR): Promise<string[]> {
  const lock = async (tx: Pick<Sql, 'query'>) => {
    if (sql.engine === 'postgres') await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
  };
  await sql.transaction(async (tx) => {
    await lock(tx);
    await tx.query(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())',
    );
  });
  const files = (await readdir(dir)).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort();
  const now: string[] = [];
  for (const file of files) {
    const version = file.slice(0, 4);
    const text = await readFile(join(dir, file), 'utf8');
    const applied = await sql.transaction(async (tx) => {
      await lock(tx);
      const done = await tx.query('SELECT 1 FROM schema_migrations WHERE version = $1', [version]);
      if (done.length > 0) return false;
      // Statements one by one: the extended protocol (used for parameters) takes one statement at a time.
      for (const stmt of text
        .split(/;\s*(?:\n|$)/)
        .map((s) => s.replace(/^\s*--.*$/gm, '').trim())
        .filter(Boolean)) {
        await tx.query(stmt);
      }
      await tx.query('INSERT INTO schema_migrations (version) VALUES ($1)', [version]);
      return true;
    });
    if (applied) now.push(version);
  }
  return now;
}
