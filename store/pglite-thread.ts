// The embedded database's own thread: PGlite (PostgreSQL compiled to WebAssembly) runs here, so a batch
// of audit rows executing inside it never holds up the event loop that answers Envoy's Checks. The
// other side is `openPgliteThread` in sql.ts, which speaks to this file over the worker's port:
// requests carry an id and get one reply each; LISTEN notices are pushed as they come.
//
// Why not PGlite's own worker mode (`@electric-sql/pglite/worker`): it is built for browser Web Workers
// (leader election over navigator.locks and BroadcastChannel between tabs) and has no transaction
// callback across the boundary; what one Node process needs here is a small request/reply loop.
//
// Node runs this file as is (type stripping): erasable TypeScript only, and no import of the project's
// own modules, so the same file works from source, from dist/ and under test runners.
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite, type Transaction } from '@electric-sql/pglite';

export type ThreadRequest =
  | { id: number; op: 'query'; text: string; params: unknown[] | undefined; tx: number | null }
  | { id: number; op: 'exec'; text: string }
  | { id: number; op: 'begin' }
  | { id: number; op: 'end'; tx: number; commit: boolean }
  | { id: number; op: 'listen'; channel: string }
  | { id: number; op: 'unlisten'; sub: number }
  | { id: number; op: 'close' };

/** The fields of a database error worth carrying back (SQLSTATE `code` decides retry vs. set aside). */
export interface ThreadError {
  message: string;
  name?: string;
  code?: string;
  detail?: string;
  hint?: string;
  constraint?: string;
  table?: string;
  column?: string;
  severity?: string;
}

export type ThreadReply =
  | { id: number; ok: true; value?: unknown }
  | { id: number; ok: false; error: ThreadError }
  | { notice: number; payload: string }
  | { ready: true }
  | { failed: ThreadError };

const ERROR_FIELDS = ['name', 'code', 'detail', 'hint', 'constraint', 'table', 'column', 'severity'] as const;

function threadError(err: unknown): ThreadError {
  if (!(err instanceof Error)) return { message: String(err) };
  const out: ThreadError = { message: err.message };
  const e = err as unknown as Record<string, unknown>;
  for (const k of ERROR_FIELDS) if (typeof e[k] === 'string') out[k] = e[k] as string;
  return out;
}

interface OpenTx {
  tx: Transaction;
  /** Lets the held transaction end: COMMIT (true) or ROLLBACK (false). */
  finish: (commit: boolean) => void;
  /** Settles when PGlite has ended the transaction (rejects when COMMIT failed). */
  done: Promise<void>;
}

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('pglite-thread.ts runs as a worker thread');
  const { dataDir } = workerData as { dataDir: string | null };
  let db: PGlite;
  try {
    db = dataDir ? new PGlite(dataDir) : new PGlite();
    await db.waitReady;
  } catch (err) {
    port.postMessage({ failed: threadError(err) } satisfies ThreadReply);
    return;
  }
  const txs = new Map<number, OpenTx>();
  const subs = new Map<number, () => Promise<void>>();
  let nextTx = 1;
  let nextSub = 1;

  /** Opens a PGlite transaction held until `end`: its callback waits on the decision `end` delivers. */
  const begin = (): Promise<number> =>
    new Promise((resolveBegin, rejectBegin) => {
      const id = nextTx++;
      let finish: (commit: boolean) => void = () => undefined;
      const decided = new Promise<boolean>((r) => {
        finish = r;
      });
      let started = false;
      // PGlite calls back only after BEGIN ran (after an await), so `done` is assigned by then.
      const done: Promise<void> = db
        .transaction(async (tx) => {
          started = true;
          txs.set(id, { tx, finish, done });
          resolveBegin(id);
          if (!(await decided)) await tx.rollback();
        })
        .then(
          () => undefined,
          (err: unknown) => {
            if (started) throw err;
            rejectBegin(err);
          },
        );
      done.catch(() => undefined); // read by `end`; a failed BEGIN was handed to rejectBegin
    });

  const handle = async (m: ThreadRequest): Promise<unknown> => {
    switch (m.op) {
      case 'query': {
        const target = m.tx === null ? db : txs.get(m.tx)?.tx;
        if (!target) throw new Error(`transaction ${m.tx} is not open`);
        return (await target.query(m.text, m.params)).rows;
      }
      case 'exec':
        await db.exec(m.text);
        return undefined;
      case 'begin':
        return begin();
      case 'end': {
        const open = txs.get(m.tx);
        if (!open) throw new Error(`transaction ${m.tx} is not open`);
        txs.delete(m.tx);
        open.finish(m.commit);
        await open.done;
        return undefined;
      }
      case 'listen': {
        const sub = nextSub++;
        const off = await db.listen(m.channel, (payload) =>
          port.postMessage({ notice: sub, payload } satisfies ThreadReply),
        );
        subs.set(sub, off);
        return sub;
      }
      case 'unlisten': {
        const off = subs.get(m.sub);
        subs.delete(m.sub);
        await off?.();
        return undefined;
      }
      case 'close':
        await db.close();
        return undefined;
    }
  };

  port.on('message', (m: ThreadRequest) => {
    handle(m).then(
      (value) => port.postMessage({ id: m.id, ok: true, value } satisfies ThreadReply),
      (err: unknown) =>
        port.postMessage({ id: m.id, ok: false, error: threadError(err) } satisfies ThreadReply),
    );
  });
  port.postMessage({ ready: true } satisfies ThreadReply);
}

await main();
