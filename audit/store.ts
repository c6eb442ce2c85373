// The audit store: decisions (hash-chained) and access-log entries, on PostgreSQL or PGlite with the
// same SQL. Inserts are idempotent (decision id / entry key), so a shipper may resend after a crash.
import type { JWK } from 'jose';
import { ChaperoneError } from '../contracts/errors.ts';
import { migrate, openPglite, openPostgres, redactUrl, type Sql } from '../store/sql.ts';
import type { AccessLogEntry } from './access-log-service.ts';
import { type Checkpoint, checkCheckpoint } from './checkpoints.ts';
import {
  accessLogKey,
  chainHash,
  chainTextAsStored,
  type DecisionRecord,
  GENESIS_HASH,
  linkHash,
  type StoredDecision,
  storable,
} from './records.ts';

export interface DecisionQuery {
  subject?: string;
  agent?: string;
  target?: string;
  decision?: string;
  reasonCode?: string;
  decisionId?: string;
  /** Only decisions a shadow policy would have decided otherwise. */
  shadowDiffers?: boolean;
  since?: Date;
  until?: Date;
  limit?: number;
  /** Opaque keyset cursor from a previous page. */
  cursor?: string;
}

export type ChainVerdict =
  | { ok: true; count: number; checkpoints?: number }
  | { ok: false; firstBadSeq: number; reason: string; count: number };

function checkpointRow(r: Record<string, unknown>): Checkpoint {
  return {
    seq: Number(r['seq']),
    hash: String(r['hash']),
    signature: String(r['signature']),
    key_id: String(r['key_id']),
    time: r['time'] instanceof Date ? r['time'].toISOString() : String(r['time']),
  };
}

export interface AuditStore {
  readonly engine: 'postgres' | 'pglite';
  readonly description: string;
  /** The connection, shared with the fleet state (approvals, revocations, config) kept in the same database. */
  readonly sql: Sql;
  migrate(): Promise<string[]>;
  insertDecisions(batch: DecisionRecord[]): Promise<number>;
  insertAccessLogs(batch: AccessLogEntry[]): Promise<number>;
  queryDecisions(q: DecisionQuery): Promise<{ rows: StoredDecision[]; nextCursor: string | null }>;
  decisionsAfter(seq: number, limit?: number): Promise<StoredDecision[]>;
  lastSeq(): Promise<number>;
  accessLogsFor(requestId: string): Promise<Record<string, unknown>[]>;
  verifyChain(opts?: { jwks?: { keys: JWK[] } }): Promise<ChainVerdict>;
  insertCheckpoint(cp: Checkpoint): Promise<void>;
  lastCheckpoint(): Promise<Checkpoint | null>;
  close(): Promise<void>;
}

/** The decision record's stored columns, in insert order. */
export const DECISION_COLUMNS = [
  'decision_id',
  'request_id',
  'time',
  'route_id',
  'target',
  'method',
  'host',
  'path',
  'subject',
  'issuer',
  'actor',
  'decision',
  'http_status',
  'reason',
  'reason_code',
  'policy_revision',
  'latency_us',
  'input',
  'result',
  'shadow',
] as const;

/** The columns stored as jsonb. */
export const DECISION_JSON_COLUMNS = ['actor', 'input', 'result', 'shadow'] as const;

const JSON_COLUMNS = new Set<string>(DECISION_JSON_COLUMNS);

const SQL_TYPE: Record<string, string> = {
  time: 'timestamptz',
  http_status: 'integer',
  latency_us: 'float8',
};

/** (column, SQL type) of a decision row as inserted: seq, the record's columns, then the chain links. */
const DECISION_TYPED_COLUMNS: [string, string][] = [
  ['seq', 'bigint'],
  ...DECISION_COLUMNS.map((c): [string, string] => [
    c,
    JSON_COLUMNS.has(c) ? 'jsonb' : (SQL_TYPE[c] ?? 'text'),
  ]),
  ['prev_hash', 'text'],
  ['hash', 'text'],
];

const ACCESS_LOG_COLUMNS: [name: string, type: string][] = [
  ['entry_key', 'text'],
  ['request_id', 'text'],
  ['decision_id', 'text'],
  ['node_id', 'text'],
  ['time', 'timestamptz'],
  ['route', 'text'],
  ['method', 'text'],
  ['authority', 'text'],
  ['path', 'text'],
  ['response_code', 'integer'],
  ['response_code_details', 'text'],
  ['bytes_sent', 'bigint'],
  ['bytes_received', 'bigint'],
  ['duration_ms', 'float8'],
  ['upstream_host', 'text'],
  ['upstream_cluster', 'text'],
  ['policy_revision', 'text'],
  ['metadata', 'jsonb'],
];

/**
 * `INSERT … SELECT * FROM unnest($1::t1[], …)` and its parameters: one array per column, so a batch of
 * any size is one statement and one round trip, with far less for the server to parse than VALUES.
 */
function unnestInsert(table: string, columns: [string, string][], rows: unknown[][]): [string, unknown[]] {
  return [
    `INSERT INTO ${table} (${columns.map(([c]) => c).join(', ')})
     SELECT * FROM unnest(${columns.map(([, t], i) => `$${i + 1}::${t}[]`).join(', ')})`,
    columns.map((_, c) => rows.map((row) => row[c])),
  ];
}

/**
 * Thrown inside the optimistic insert when one of the batch's decisions was stored already (a retry
 * after a commit whose answer was lost); caught by the caller, which then looks up what is stored.
 */
class AlreadyStored extends ChaperoneError {
  constructor() {
    super('ERR_AUDIT_STORE', 'a decision of the batch is stored already');
  }
}

/** Rows per INSERT when the batch is pipelined (PostgreSQL). */
const PIPELINE_ROWS = 128;

const INSERT_DECISIONS = unnestInsert('decisions', DECISION_TYPED_COLUMNS, [])[0];
const INSERT_DECISIONS_UNLESS_STORED = `WITH inserted AS (${INSERT_DECISIONS}
     ON CONFLICT (decision_id) DO NOTHING RETURNING 1)
   SELECT count(*)::int AS n FROM inserted`;

// pushRow writes the columns in this order.
if (
  DECISION_TYPED_COLUMNS.map(([c]) => c).join() !==
    ['seq', ...DECISION_COLUMNS, 'prev_hash', 'hash'].join() ||
  DECISION_COLUMNS.join() !==
    'decision_id,request_id,time,route_id,target,method,host,path,subject,issuer,actor,decision,http_status,reason,reason_code,policy_revision,latency_us,input,result,shadow'
) {
  throw new Error('pushRow is out of step with DECISION_COLUMNS');
}

/** One array per DECISION_TYPED_COLUMNS entry: the parameters of INSERT_DECISIONS. */
const emptyColumns = (): unknown[][] => DECISION_TYPED_COLUMNS.map(() => []);

/** Appends a row to the column arrays, in DECISION_TYPED_COLUMNS order; JSON columns as JSON text. */
function pushRow(
  c: unknown[][],
  seq: number,
  r: DecisionRecord,
  actor: string,
  input: string,
  result: string,
  shadow: string,
  prev: string,
  hash: string,
): void {
  c[0]!.push(seq);
  c[1]!.push(r.decision_id);
  c[2]!.push(r.request_id);
  c[3]!.push(r.time);
  c[4]!.push(r.route_id);
  c[5]!.push(r.target);
  c[6]!.push(r.method);
  c[7]!.push(r.host);
  c[8]!.push(r.path);
  c[9]!.push(r.subject);
  c[10]!.push(r.issuer);
  c[11]!.push(actor);
  c[12]!.push(r.decision);
  c[13]!.push(r.http_status);
  c[14]!.push(r.reason);
  c[15]!.push(r.reason_code);
  c[16]!.push(r.policy_revision);
  c[17]!.push(r.latency_us);
  c[18]!.push(input);
  c[19]!.push(result);
  c[20]!.push(shadow);
  c[21]!.push(prev);
  c[22]!.push(hash);
}

function rowToDecision(r: Record<string, unknown>): StoredDecision {
  const out: Record<string, unknown> = { ...r };
  out['seq'] = Number(r['seq']);
  out['time'] = r['time'] instanceof Date ? r['time'].toISOString() : String(r['time']);
  for (const c of JSON_COLUMNS) if (typeof out[c] === 'string') out[c] = JSON.parse(out[c] as string);
  return out as unknown as StoredDecision;
}

class SqlAuditStore implements AuditStore {
  constructor(
    readonly sql: Sql,
    readonly description: string,
  ) {}

  get engine() {
    return this.sql.engine;
  }

  migrate(): Promise<string[]> {
    return migrate(this.sql);
  }

  async lastSeq(): Promise<number> {
    const [row] = await this.sql.query<{ seq: string | number | null }>(
      'SELECT max(seq) AS seq FROM decisions',
    );
    return Number(row?.seq ?? 0);
  }

  /**
   * Extends the chain by the records not stored yet. Optimistic first: no look-up of the batch's
   * decision ids, the insert itself notices one already stored (ON CONFLICT … DO NOTHING inserts fewer
   * rows than sent); then the transaction is rolled back and the batch redone knowing which are stored.
   * Only a resend after a crash pays twice.
   */
  async insertDecisions(batch: DecisionRecord[]): Promise<number> {
    if (batch.length === 0) return 0;
    try {
      return await this.sql.transaction((tx) => this.extendChain(tx, batch, false));
    } catch (err) {
      if (!(err instanceof AlreadyStored)) throw err;
    }
    return this.sql.transaction((tx) => this.extendChain(tx, batch, true));
  }

  private async extendChain(
    tx: Pick<Sql, 'query'>,
    batch: DecisionRecord[],
    lookUpStored: boolean,
  ): Promise<number> {
    const postgres = this.sql.engine === 'postgres';
    // The chain is extended in one transaction; on PostgreSQL an advisory lock keeps two writers
    // (two gateways sharing a store) from forking it.
    if (postgres) await tx.query('SELECT pg_advisory_xact_lock(7265846)');
    const seen = lookUpStored
      ? new Set(
          (
            await tx.query<{ decision_id: string }>(
              'SELECT decision_id FROM decisions WHERE decision_id = ANY($1)',
              [batch.map((r) => r.decision_id)],
            )
          ).map((r) => r.decision_id),
        )
      : new Set<string>();
    const [last] = await tx.query<{ seq: string | number; hash: string }>(
      'SELECT seq, hash FROM decisions ORDER BY seq DESC LIMIT 1',
    );
    let seq = Number(last?.seq ?? 0);
    let prev = last?.hash ?? GENESIS_HASH;
    // On PostgreSQL the batch goes in pieces, each sent as soon as it is hashed: the server inserts one
    // while the next is being hashed. (PGlite runs in this thread: one statement is cheapest there.)
    const piece = postgres ? PIPELINE_ROWS : Number.POSITIVE_INFINITY;
    const text = lookUpStored ? INSERT_DECISIONS : INSERT_DECISIONS_UNLESS_STORED;
    let inFlight: Promise<void> | null = null;
    const send = (columns: unknown[][], rows: number) => {
      const sent = tx.query<{ n: number }>(text, columns).then((res) => {
        if (!lookUpStored && Number(res[0]?.n) !== rows) throw new AlreadyStored();
      });
      sent.catch(() => undefined); // awaited below; this only keeps an early failure from going unhandled
      return sent;
    };
    let columns = emptyColumns();
    let rows = 0;
    let total = 0;
    for (const raw of batch) {
      if (seen.has(raw.decision_id)) continue;
      seen.add(raw.decision_id);
      seq += 1;
      // Hashed exactly as stored, so what verify reads back hashes the same.
      const c = chainTextAsStored(seq, raw);
      let hash: string;
      if (c) {
        hash = linkHash(prev, c.text);
        pushRow(columns, seq, raw, c.actor, c.input, c.result, c.shadow, prev, hash);
      } else {
        // The long way: a value storable changes (NUL, a lone surrogate), or one chainText refuses.
        const r = storable(raw);
        hash = chainHash(prev, seq, r);
        const json = (v: unknown) => JSON.stringify(v ?? null);
        pushRow(columns, seq, r, json(r.actor), json(r.input), json(r.result), json(r.shadow), prev, hash);
      }
      prev = hash;
      rows += 1;
      if (rows >= piece) {
        if (inFlight) await inFlight;
        inFlight = send(columns, rows);
        total += rows;
        columns = emptyColumns();
        rows = 0;
      }
    }
    if (inFlight) await inFlight;
    if (rows > 0) {
      await send(columns, rows);
      total += rows;
    }
    return total;
  }

  async insertAccessLogs(batch: AccessLogEntry[]): Promise<number> {
    const seen = new Set<string>();
    const rows: unknown[][] = [];
    for (const e of batch) {
      const key = storable(accessLogKey(e));
      if (seen.has(key)) continue;
      seen.add(key);
      rows.push([
        key,
        ...storable([e.requestId, e.decisionId, e.nodeId]),
        e.time.toISOString(),
        ...storable([e.route, e.method, e.authority, e.path]),
        e.responseCode,
        storable(e.responseCodeDetails),
        e.bytesSent,
        e.bytesReceived,
        e.durationMs,
        ...storable([e.upstreamHost, e.upstreamCluster, e.policyRevision]),
        JSON.stringify(storable(e.metadata ?? {})),
      ]);
    }
    if (rows.length === 0) return 0;
    const [text, params] = unnestInsert('access_log', ACCESS_LOG_COLUMNS, rows);
    const inserted = await this.sql.query(`${text} ON CONFLICT (entry_key) DO NOTHING RETURNING id`, params);
    return inserted.length;
  }

  async queryDecisions(q: DecisionQuery): Promise<{ rows: StoredDecision[]; nextCursor: string | null }> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, v: unknown) => {
      params.push(v);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (q.subject) add('subject = ?', q.subject);
    if (q.agent) add("actor->>'agent' = ?", q.agent);
    if (q.target) add('target = ?', q.target);
    if (q.decision) add('decision = ?', q.decision);
    if (q.reasonCode) add('reason_code = ?', q.reasonCode);
    if (q.decisionId) add('decision_id = ?', q.decisionId);
    if (q.shadowDiffers) where.push("shadow->>'differs' = 'true'");
    if (q.since) add('time >= ?', q.since.toISOString());
    if (q.until) add('time < ?', q.until.toISOString());
    if (q.cursor) {
      const seq = Number(Buffer.from(q.cursor, 'base64url').toString('utf8'));
      if (!Number.isInteger(seq)) throw new Error('invalid cursor');
      add('seq < ?', seq);
    }
    const limit = Math.min(Math.max(q.limit ?? 50, 1), 1000);
    params.push(limit + 1);
    const rows = await this.sql.query(
      `SELECT * FROM decisions ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT $${params.length}`,
      params,
    );
    const page = rows.slice(0, limit).map(rowToDecision);
    const more = rows.length > limit;
    return {
      rows: page,
      nextCursor: more ? Buffer.from(String(page.at(-1)!.seq)).toString('base64url') : null,
    };
  }

  async decisionsAfter(seq: number, limit = 200): Promise<StoredDecision[]> {
    const rows = await this.sql.query('SELECT * FROM decisions WHERE seq > $1 ORDER BY seq LIMIT $2', [
      seq,
      limit,
    ]);
    return rows.map(rowToDecision);
  }

  accessLogsFor(requestId: string): Promise<Record<string, unknown>[]> {
    return this.sql.query('SELECT * FROM access_log WHERE request_id = $1 ORDER BY id', [requestId]);
  }

  async insertCheckpoint(cp: Checkpoint): Promise<void> {
    await this.sql.query(
      'INSERT INTO checkpoints (seq, hash, signature, key_id, time) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING',
      [cp.seq, cp.hash, cp.signature, cp.key_id, cp.time],
    );
  }

  async lastCheckpoint(): Promise<Checkpoint | null> {
    const [row] = await this.sql.query<Record<string, unknown>>(
      'SELECT * FROM checkpoints ORDER BY seq DESC LIMIT 1',
    );
    return row ? checkpointRow(row) : null;
  }

  async verifyChain(opts: { jwks?: { keys: JWK[] } } = {}): Promise<ChainVerdict> {
    const chain = await this.verifyLinks();
    if (!chain.ok || !opts.jwks) return chain;
    const cps = (await this.sql.query<Record<string, unknown>>('SELECT * FROM checkpoints ORDER BY seq')).map(
      checkpointRow,
    );
    for (const cp of cps) {
      const bad = await checkCheckpoint(cp, opts.jwks);
      if (bad) return { ok: false, firstBadSeq: cp.seq, reason: bad, count: chain.count };
      const [row] = await this.sql.query<{ hash: string }>('SELECT hash FROM decisions WHERE seq = $1', [
        cp.seq,
      ]);
      if (!row)
        return {
          ok: false,
          firstBadSeq: cp.seq,
          reason: `record ${cp.seq} named by a signed checkpoint is missing`,
          count: chain.count,
        };
      if (row.hash !== cp.hash) {
        return {
          ok: false,
          firstBadSeq: cp.seq,
          reason: `the chain was rewritten: record ${cp.seq} differs from its signed checkpoint`,
          count: chain.count,
        };
      }
    }
    return { ...chain, checkpoints: cps.length };
  }

  private async verifyLinks(): Promise<ChainVerdict> {
    let prev = GENESIS_HASH;
    let expectedSeq = 1;
    let count = 0;
    let after = 0;
    for (;;) {
      const rows = await this.decisionsAfter(after, 1000);
      if (rows.length === 0) break;
      for (const r of rows) {
        count++;
        if (r.seq !== expectedSeq) {
          return {
            ok: false,
            firstBadSeq: expectedSeq,
            reason: `record ${expectedSeq} is missing (next is ${r.seq})`,
            count,
          };
        }
        if (r.prev_hash !== prev)
          return {
            ok: false,
            firstBadSeq: r.seq,
            reason: 'prev_hash does not match the previous record',
            count,
          };
        if (chainHash(prev, r.seq, r) !== r.hash)
          return { ok: false, firstBadSeq: r.seq, reason: 'record content does not match its hash', count };
        prev = r.hash;
        expectedSeq++;
        after = r.seq;
      }
    }
    return { ok: true, count };
  }

  close(): Promise<void> {
    return this.sql.close();
  }
}

/** `url` (postgres://…) → PostgreSQL; otherwise PGlite in `dataDir`, or in memory when neither is given. */
export async function openAuditStore(o: {
  url?: string | null;
  dataDir?: string | null;
}): Promise<AuditStore> {
  if (o.url) {
    const sql = await openPostgres(o.url);
    return new SqlAuditStore(sql, `postgres ${redactUrl(o.url)}`);
  }
  const sql = await openPglite(o.dataDir ?? null);
  return new SqlAuditStore(
    sql,
    o.dataDir ? `embedded (PGlite) ${o.dataDir}` : 'embedded (PGlite, in memory)',
  );
}
