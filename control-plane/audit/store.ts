// The audit store: decisions (hash-chained) and access-log entries, on PostgreSQL or PGlite with the
// same SQL. Inserts are idempotent (decision id / entry key), so a shipper may resend after a crash.
import type { JWK } from 'jose';
import type { AccessLogEntry } from '../als/access-log-service.ts';
import { type Checkpoint, checkCheckpoint } from './checkpoints.ts';
import {
  accessLogKey,
  chainHash,
  type DecisionRecord,
  GENESIS_HASH,
  type StoredDecision,
  storable,
} from './records.ts';
import { migrate, openPglite, openPostgres, redactUrl, type Sql } from './sql.ts';

export interface DecisionQuery {
  subject?: string;
  agent?: string;
  target?: string;
  decision?: string;
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

const DECISION_COLUMNS = [
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

const JSON_COLUMNS = new Set(['actor', 'input', 'result', 'shadow']);

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

  async insertDecisions(batch: DecisionRecord[]): Promise<number> {
    if (batch.length === 0) return 0;
    return this.sql.transaction(async (tx) => {
      // The chain is extended in one transaction; on PostgreSQL an advisory lock keeps two writers
      // (two gateways sharing a store) from forking it.
      if (this.sql.engine === 'postgres') await tx.query('SELECT pg_advisory_xact_lock(7265846)');
      const existing = new Set(
        (
          await tx.query<{ decision_id: string }>(
            'SELECT decision_id FROM decisions WHERE decision_id = ANY($1)',
            [batch.map((r) => r.decision_id)],
          )
        ).map((r) => r.decision_id),
      );
      const [last] = await tx.query<{ seq: string | number; hash: string }>(
        'SELECT seq, hash FROM decisions ORDER BY seq DESC LIMIT 1',
      );
      let seq = Number(last?.seq ?? 0);
      let prev = last?.hash ?? GENESIS_HASH;
      const rows: unknown[][] = [];
      for (const raw of batch) {
        if (existing.has(raw.decision_id)) continue;
        existing.add(raw.decision_id);
        // Hashed exactly as stored, so what verify reads back hashes the same.
        const r = storable(raw);
        seq += 1;
        const hash = chainHash(prev, seq, r);
        const values = DECISION_COLUMNS.map((c) =>
          JSON_COLUMNS.has(c) ? JSON.stringify(r[c] ?? null) : r[c],
        );
        rows.push([seq, ...values, prev, hash]);
        prev = hash;
      }
      if (rows.length > 0) await tx.query(...unnestInsert('decisions', DECISION_TYPED_COLUMNS, rows));
      return rows.length;
    });
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
