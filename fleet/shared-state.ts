// The fleet's shared state travels through the store itself: writers change rows and NOTIFY in the
// same transaction (PostgreSQL delivers the notice on commit, to every listener, the writer included);
// each process keeps what its hot path reads in a Mirror (mirror.ts) and reloads it on the notice. No
// cluster protocol of our own: a node that lost its LISTEN connection reloads everything once it is back.
import type { Logger } from 'pino';
import type { Sql } from '../store/sql.ts';
import type { Mirror } from './mirror.ts';

export const STATE_CHANNEL = 'chaperone_state';

export type StateKind = 'approval' | 'revocations' | 'config' | 'keys' | 'policy';

export interface StateNotice {
  kind: StateKind;
  /** The node that made the change. */
  origin: string;
  /** What changed, when the kind has several things (an approval id). */
  id?: string;
}

type Handler = (n: StateNotice) => void | Promise<void>;

export class SharedState {
  private readonly handlers = new Map<StateKind, Handler[]>();
  private readonly resyncs: (() => void | Promise<void>)[] = [];
  private unlisten: (() => Promise<void>) | null = null;
  private noticesSeen = 0;
  private resynced = 0;

  private constructor(
    readonly sql: Sql,
    /** This process's name in `origin` (host:port of its API, or a random id). */
    readonly node: string,
    private readonly logger: Logger,
  ) {}

  static async open(sql: Sql, node: string, logger: Logger): Promise<SharedState> {
    const state = new SharedState(sql, node, logger);
    state.unlisten = await sql.listen(
      STATE_CHANNEL,
      (payload) => state.dispatch(payload),
      () => void state.resyncAll(),
    );
    return state;
  }

  /** Runs `handler` for every notice of `kind` (its own ones included). */
  on(kind: StateKind, handler: Handler): void {
    this.handlers.set(kind, [...(this.handlers.get(kind) ?? []), handler]);
  }

  /** Runs after a lost subscription came back: reload everything mirrored. */
  onResync(fn: () => void | Promise<void>): void {
    this.resyncs.push(fn);
  }

  /**
   * Keeps `mirror` current with the notices of `kind`: one naming a record reloads that record, any
   * other reloads everything, and so does every resync (notices sent while LISTEN was down are lost).
   */
  follow<K extends string>(kind: StateKind, mirror: Pick<Mirror<K, unknown>, 'reload' | 'reloadAll'>): void {
    this.on(kind, (n) => (n.id ? mirror.reload([n.id as K]) : mirror.reloadAll()));
    this.onResync(() => mirror.reloadAll());
  }

  /** Announces a change; call inside the transaction that made it, so the notice follows the commit. */
  async notify(tx: Pick<Sql, 'query'>, kind: StateKind, id?: string): Promise<void> {
    const notice: StateNotice = { kind, origin: this.node, ...(id ? { id } : {}) };
    await tx.query('SELECT pg_notify($1, $2)', [STATE_CHANNEL, JSON.stringify(notice)]);
  }

  status(): { node: string; engine: string; notices: number; resyncs: number } {
    return { node: this.node, engine: this.sql.engine, notices: this.noticesSeen, resyncs: this.resynced };
  }

  private dispatch(payload: string): void {
    let n: StateNotice;
    try {
      n = JSON.parse(payload) as StateNotice;
    } catch {
      this.logger.warn('ignored an unparsable state notice');
      return;
    }
    this.noticesSeen++;
    for (const h of this.handlers.get(n.kind) ?? []) {
      Promise.resolve()
        .then(() => h(n))
        .catch((err: unknown) =>
          this.logger.error(
            { kind: n.kind, err: err instanceof Error ? err.message : String(err) },
            'applying a shared-state change failed; the next change or resync retries',
          ),
        );
    }
  }

  private async resyncAll(): Promise<void> {
    this.resynced++;
    this.logger.info('shared-state subscription re-established; reloading');
    for (const fn of this.resyncs) {
      try {
        await fn();
      } catch (err) {
        this.logger.error({ err: err instanceof Error ? err.message : String(err) }, 'resync failed');
      }
    }
  }

  async close(): Promise<void> {
    await this.unlisten?.();
    this.unlisten = null;
  }
}
