// Rate-limit and token-budget counters shared by every node of a fleet. Each node counts in memory —
// allowed requests at Check time, LLM tokens when the upstream's response reports them — and a Check
// reads the counts from memory only (input.usage). A timer adds this node's deltas to the store in one
// upsert (rows per window, scope and key: store/migrations/0010) whose RETURNING gives the fleet's new
// totals, and the same transaction announces those totals (NOTIFY `chaperone_usage`), so every other
// node applies them without a read. Totals only grow within a window, so a node keeps the larger of what
// it holds and what it hears: notices may arrive in any order, twice, or be replaced by a full read
// (at start, after a lost LISTEN connection, and every half minute as a safety net).
//
// Windows are fixed: the UTC minute and the UTC day an event falls in. A count is the fleet's as of the
// last notice plus this node's own unflushed deltas: another node's requests arrive within a flush
// interval and a notice (well under a second), which is how far a limit can be overshot across nodes.
import type { Logger } from 'pino';
import type { Sql } from '../store/sql.ts';

export const USAGE_CHANNEL = 'chaperone_usage';

export type UsageWindow = 'minute' | 'day';
export const WINDOW_SECONDS: Readonly<Record<UsageWindow, number>> = { minute: 60, day: 86_400 };
const WINDOWS = Object.keys(WINDOW_SECONDS) as UsageWindow[];

/** Who and where: a person (issuer + subject), their agent (null: the person's own token), a target. */
export interface UsageKey {
  target: string;
  issuer: string;
  subject: string;
  agent: string | null;
}

export interface Counts {
  requests: number;
  tokens: number;
}

export interface WindowCounts {
  minute: Counts;
  day: Counts;
}

/** What the policy sees as input.usage (without the limits, which the authz server adds). */
export interface UsageSnapshot {
  windows: Record<UsageWindow, { start: number; resets_in: number }>;
  /** This person on this target, with all their agents. */
  user: WindowCounts;
  /** This agent of this person on this target; null for the person's own token. */
  agent: WindowCounts | null;
  /** Everyone on this target. */
  target: WindowCounts;
}

type Scope = 'user' | 'agent' | 'target';

interface Row {
  window: UsageWindow;
  start: number;
  scope: Scope;
  target: string;
  issuer: string;
  subject: string;
  agent: string;
}

interface Entry {
  row: Row;
  /** The fleet's total as the store last answered or announced it. */
  fleet: Counts;
  /** Counted here, being added to the store right now. */
  inflight: Counts;
  /** Counted here since. */
  pending: Counts;
}

export interface UsageCountersOptions {
  logger: Logger;
  /** This node's name in notices. */
  node: string;
  /** How often dirty counts are added to the store. Default 200 ms. */
  flushIntervalMs?: number;
  /** Epoch milliseconds (tests pass a clock). */
  now?: () => number;
}

export interface UsageStatus {
  node: string;
  keys: number;
  pending: number;
  flushes: number;
  flush_errors: number;
  last_flush: string | null;
  last_error: string | null;
  notices: number;
  resyncs: number;
  /** Everyone's counts per target in the current windows, as this node holds them (fleet-wide). */
  targets: Record<string, WindowCounts>;
}

/** Per agent of a person today (UTC), summed over targets: what `chaperone agents` shows. */
export interface AgentUsageToday {
  issuer: string;
  subject: string;
  agent: string;
  requests: number;
  tokens: number;
}

const zero = (): Counts => ({ requests: 0, tokens: 0 });
const isZero = (c: Counts) => c.requests === 0 && c.tokens === 0;
const keyOf = (r: Row) =>
  JSON.stringify([r.window, r.start, r.scope, r.target, r.issuer, r.subject, r.agent]);
const windowStart = (w: UsageWindow, nowSec: number) => nowSec - (nowSec % WINDOW_SECONDS[w]);
/** Rows of past windows are kept this long in the store (a day's row is readable for the next day). */
const RETAIN_SECONDS = 2 * 86_400;
/** A NOTIFY payload must stay under PostgreSQL's 8000 bytes. */
const NOTICE_BYTES = 7000;
const RESYNC_EVERY_MS = 30_000;
const CLEANUP_EVERY_MS = 10 * 60_000;

const UPSERT = `
  INSERT INTO usage_counters AS u (window_kind, window_start, scope, target, issuer, subject, agent, requests, tokens)
  SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::bigint[], $9::bigint[])
  ON CONFLICT (window_kind, window_start, scope, target, issuer, subject, agent)
  DO UPDATE SET requests = u.requests + EXCLUDED.requests, tokens = u.tokens + EXCLUDED.tokens
  RETURNING window_kind, window_start, scope, target, issuer, subject, agent, requests, tokens`;

type DbRow = {
  window_kind: UsageWindow;
  window_start: string | number;
  scope: Scope;
  target: string;
  issuer: string;
  subject: string;
  agent: string;
  requests: string | number;
  tokens: string | number;
};

/** [window, start, scope, target, issuer, subject, agent, requests, tokens]: the notice's row form. */
type NoticeRow = [UsageWindow, number, Scope, string, string, string, string, number, number];

const rowOfDb = (r: DbRow): { row: Row; counts: Counts } => ({
  row: {
    window: r.window_kind,
    start: Number(r.window_start),
    scope: r.scope,
    target: r.target,
    issuer: r.issuer,
    subject: r.subject,
    agent: r.agent,
  },
  counts: { requests: Number(r.requests), tokens: Number(r.tokens) },
});

export class UsageCounters {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  private unlisten: (() => Promise<void>) | null = null;
  private flushing: Promise<void> = Promise.resolve();
  private lastResync = 0;
  private lastCleanup = 0;
  private readonly stats = {
    flushes: 0,
    flushErrors: 0,
    lastFlush: null as string | null,
    lastError: null as string | null,
    notices: 0,
    resyncs: 0,
  };

  private constructor(
    private readonly sql: Sql,
    private readonly o: UsageCountersOptions,
  ) {
    this.now = o.now ?? Date.now;
  }

  /** Subscribes, loads the current windows, and starts flushing. */
  static async open(sql: Sql, o: UsageCountersOptions): Promise<UsageCounters> {
    const counters = new UsageCounters(sql, o);
    counters.unlisten = await sql.listen(
      USAGE_CHANNEL,
      (payload) => counters.applyNotice(payload),
      () => void counters.resync().catch(() => undefined),
    );
    await counters.resync();
    counters.timer = setInterval(() => void counters.tick(), o.flushIntervalMs ?? 200);
    counters.timer.unref();
    return counters;
  }

  /** input.usage for this person/agent on this target: memory only, the Check path's read. */
  snapshot(key: UsageKey): UsageSnapshot {
    const nowSec = Math.floor(this.now() / 1000);
    const windows = {} as UsageSnapshot['windows'];
    for (const w of WINDOWS) {
      const start = windowStart(w, nowSec);
      windows[w] = { start, resets_in: start + WINDOW_SECONDS[w] - nowSec };
    }
    const counts = (scope: Scope): WindowCounts => ({
      minute: this.read(this.rowOf(key, scope, 'minute', windows.minute.start)),
      day: this.read(this.rowOf(key, scope, 'day', windows.day.start)),
    });
    return {
      windows,
      user: counts('user'),
      agent: key.agent === null ? null : counts('agent'),
      target: counts('target'),
    };
  }

  /** One allowed request. */
  countRequest(key: UsageKey): void {
    this.add(key, { requests: 1, tokens: 0 });
  }

  /** Tokens an upstream reported for a response to `key`. */
  countTokens(key: UsageKey, tokens: number): void {
    if (!Number.isFinite(tokens) || tokens <= 0) return;
    this.add(key, { requests: 0, tokens: Math.round(tokens) });
  }

  status(): UsageStatus {
    let pending = 0;
    const targets: Record<string, WindowCounts> = {};
    for (const e of this.entries.values()) {
      if (!isZero(e.pending) || !isZero(e.inflight)) pending++;
      if (e.row.scope === 'target' && !targets[e.row.target])
        targets[e.row.target] = this.snapshot({
          target: e.row.target,
          issuer: '',
          subject: '',
          agent: null,
        }).target;
    }
    return {
      node: this.o.node,
      keys: this.entries.size,
      pending,
      flushes: this.stats.flushes,
      flush_errors: this.stats.flushErrors,
      last_flush: this.stats.lastFlush,
      last_error: this.stats.lastError,
      notices: this.stats.notices,
      resyncs: this.stats.resyncs,
      targets,
    };
  }

  /** Each agent's use today (UTC), fleet-wide, from the store: for the inventory, not the Check path. */
  async agentsToday(filter: { issuer?: string; subject?: string } = {}): Promise<AgentUsageToday[]> {
    await this.flush();
    const day = windowStart('day', Math.floor(this.now() / 1000));
    const rows = await this.sql.query<{
      issuer: string;
      subject: string;
      agent: string;
      requests: string | number;
      tokens: string | number;
    }>(
      `SELECT issuer, subject, agent, sum(requests) AS requests, sum(tokens) AS tokens FROM usage_counters
       WHERE window_kind = 'day' AND window_start = $1 AND scope = 'agent'
         AND ($2::text IS NULL OR issuer = $2) AND ($3::text IS NULL OR subject = $3)
       GROUP BY issuer, subject, agent`,
      [day, filter.issuer ?? null, filter.subject ?? null],
    );
    return rows.map((r) => ({ ...r, requests: Number(r.requests), tokens: Number(r.tokens) }));
  }

  /** Adds this node's counts to the store; what fails is kept for the next try. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.flushOnce());
    return this.flushing;
  }

  /** Reads the current windows from the store (the larger count wins, per row). */
  async resync(): Promise<void> {
    this.lastResync = this.now();
    const nowSec = Math.floor(this.lastResync / 1000);
    const rows = await this.sql.query<DbRow>(
      `SELECT window_kind, window_start, scope, target, issuer, subject, agent, requests, tokens
       FROM usage_counters
       WHERE (window_kind = 'minute' AND window_start >= $1) OR (window_kind = 'day' AND window_start >= $2)`,
      [windowStart('minute', nowSec), windowStart('day', nowSec)],
    );
    for (const r of rows) this.merge(rowOfDb(r));
    this.stats.resyncs++;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flush().catch(() => undefined);
    await this.unlisten?.();
    this.unlisten = null;
  }

  private rowOf(key: UsageKey, scope: Scope, window: UsageWindow, start: number): Row {
    return {
      window,
      start,
      scope,
      target: key.target,
      issuer: scope === 'target' ? '' : key.issuer,
      subject: scope === 'target' ? '' : key.subject,
      agent: scope === 'agent' ? (key.agent ?? '') : '',
    };
  }

  private read(row: Row): Counts {
    const e = this.entries.get(keyOf(row));
    if (!e) return zero();
    return {
      requests: e.fleet.requests + e.inflight.requests + e.pending.requests,
      tokens: e.fleet.tokens + e.inflight.tokens + e.pending.tokens,
    };
  }

  private entry(row: Row): Entry {
    const k = keyOf(row);
    let e = this.entries.get(k);
    if (!e) {
      e = { row, fleet: zero(), inflight: zero(), pending: zero() };
      this.entries.set(k, e);
    }
    return e;
  }

  private add(key: UsageKey, delta: Counts): void {
    const nowSec = Math.floor(this.now() / 1000);
    const scopes: Scope[] = key.agent === null ? ['user', 'target'] : ['user', 'agent', 'target'];
    for (const w of WINDOWS)
      for (const scope of scopes) {
        const e = this.entry(this.rowOf(key, scope, w, windowStart(w, nowSec)));
        e.pending.requests += delta.requests;
        e.pending.tokens += delta.tokens;
      }
  }

  private merge({ row, counts }: { row: Row; counts: Counts }): void {
    if (row.start + WINDOW_SECONDS[row.window] <= Math.floor(this.now() / 1000)) return;
    const e = this.entry(row);
    e.fleet = {
      requests: Math.max(e.fleet.requests, counts.requests),
      tokens: Math.max(e.fleet.tokens, counts.tokens),
    };
  }

  private applyNotice(payload: string): void {
    let rows: NoticeRow[];
    try {
      rows = (JSON.parse(payload) as { r: NoticeRow[] }).r;
      if (!Array.isArray(rows)) return;
    } catch {
      this.o.logger.warn('ignored an unparsable usage notice');
      return;
    }
    this.stats.notices++;
    for (const [window, start, scope, target, issuer, subject, agent, requests, tokens] of rows)
      if (window in WINDOW_SECONDS)
        this.merge({
          row: { window, start, scope, target, issuer, subject, agent },
          counts: { requests, tokens },
        });
  }

  private async tick(): Promise<void> {
    try {
      await this.flush();
      const now = this.now();
      this.prune(Math.floor(now / 1000));
      if (now - this.lastResync >= RESYNC_EVERY_MS) await this.resync();
      if (now - this.lastCleanup >= CLEANUP_EVERY_MS) {
        this.lastCleanup = now;
        await this.sql.query('DELETE FROM usage_counters WHERE window_start < $1', [
          Math.floor(now / 1000) - RETAIN_SECONDS,
        ]);
      }
    } catch (err) {
      this.stats.lastError = err instanceof Error ? err.message : String(err);
    }
  }

  /** Past windows leave memory once nothing of theirs is waiting to be sent. */
  private prune(nowSec: number): void {
    for (const [k, e] of this.entries)
      if (e.row.start + WINDOW_SECONDS[e.row.window] <= nowSec && isZero(e.pending) && isZero(e.inflight))
        this.entries.delete(k);
  }

  private async flushOnce(): Promise<void> {
    const batch = [...this.entries]
      .filter(([, e]) => !isZero(e.pending))
      .sort(([a], [b]) => (a < b ? -1 : 1));
    if (batch.length === 0) return;
    for (const [, e] of batch) {
      e.inflight = e.pending;
      e.pending = zero();
    }
    const col = <T>(f: (e: Entry) => T) => batch.map(([, e]) => f(e));
    try {
      const returned = await this.sql.transaction(async (tx) => {
        const rows = await tx.query<DbRow>(UPSERT, [
          col((e) => e.row.window),
          col((e) => e.row.start),
          col((e) => e.row.scope),
          col((e) => e.row.target),
          col((e) => e.row.issuer),
          col((e) => e.row.subject),
          col((e) => e.row.agent),
          col((e) => e.inflight.requests),
          col((e) => e.inflight.tokens),
        ]);
        for (const payload of noticePayloads(rows, this.o.node))
          await tx.query('SELECT pg_notify($1, $2)', [USAGE_CHANNEL, payload]);
        return rows;
      });
      for (const [, e] of batch) e.inflight = zero();
      for (const r of returned) this.merge(rowOfDb(r));
      this.stats.flushes++;
      this.stats.lastFlush = new Date(this.now()).toISOString();
    } catch (err) {
      // Nothing was added: the counts go back to pending, for the next flush.
      for (const [, e] of batch) {
        e.pending = {
          requests: e.pending.requests + e.inflight.requests,
          tokens: e.pending.tokens + e.inflight.tokens,
        };
        e.inflight = zero();
      }
      this.stats.flushErrors++;
      this.stats.lastError = err instanceof Error ? err.message : String(err);
      this.o.logger.warn({ err: this.stats.lastError }, 'usage counts not stored; retried at the next flush');
    }
  }
}

/** The totals of one flush as NOTIFY payloads, each under PostgreSQL's limit. */
export function noticePayloads(rows: DbRow[], node: string): string[] {
  const out: string[] = [];
  let chunk: NoticeRow[] = [];
  let size = 0;
  const emit = () => {
    if (chunk.length > 0) out.push(JSON.stringify({ o: node, r: chunk }));
    chunk = [];
    size = 0;
  };
  for (const r of rows) {
    const { row, counts } = rowOfDb(r);
    const n: NoticeRow = [
      row.window,
      row.start,
      row.scope,
      row.target,
      row.issuer,
      row.subject,
      row.agent,
      counts.requests,
      counts.tokens,
    ];
    const bytes = Buffer.byteLength(JSON.stringify(n)) + 1;
    // A row too large for any notice (an absurd issuer URL) is left to the next full read.
    if (bytes > NOTICE_BYTES - 64) continue;
    if (size + bytes > NOTICE_BYTES - 64) emit();
    chunk.push(n);
    size += bytes;
  }
  emit();
  return out;
}
