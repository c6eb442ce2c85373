// The audit store: decisions (hash-chained) and access-log entries, on PostgreSQL or PGlite with the
// same SQL. Inserts are idempotent (decision id / entry key), so a shipper may resend after a crash.
import { ChaperoneError } from '../contracts/errors.ts';
import { migrate, openPglite, openPostgres, redactUrl, type Sql } from '../store/sql.ts';
import type { AccessLogEntry } from './access-log-service.ts';
import { type ChainName, type Checkpoint, type CheckpointSigner, signBatch } from './checkpoints.ts';
import {
  ACCESS_LOG_RECORD_COLUMNS,
  accessLogFromRow,
  accessLogHash,
  chainHash,
  chainTextAsStored,
  type DecisionRecord,
  GENESIS_HASH,
  linkHash,
  type StoredAccessLog,
  type StoredDecision,
  storable,
  toAccessLogRecord,
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
  /** The decisions of one trace (W3C trace id). */
  traceId?: string;
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
    signature: String(r['signature'] ?? ''),
    key_id: String(r['key_id'] ?? ''),
    time: r['time'] instanceof Date ? r['time'].toISOString() : String(r['time']),
    prev_seq: r['prev_seq'] === null || r['prev_seq'] === undefined ? null : Number(r['prev_seq']),
    prev_hash: r['prev_hash'] === null || r['prev_hash'] === undefined ? null : String(r['prev_hash']),
  };
}

/** Each chain's rows and checkpoints. */
const CHAIN_TABLES: Record<ChainName, { rows: string; checkpoints: string; lock: number }> = {
  // The advisory locks keep two writers (two nodes sharing one PostgreSQL) from forking a chain.
  decisions: { rows: 'decisions', checkpoints: 'checkpoints', lock: 7265846 },
  access_log: { rows: 'access_log', checkpoints: 'access_log_checkpoints', lock: 7265848 },
};

/** Signs every batch the store commits; told of each checkpoint once its transaction committed. */
export interface BatchSigning {
  signer: CheckpointSigner;
  onCheckpoint?: (chain: ChainName, cp: Checkpoint) => void;
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
  /** The decision chain's links only (no signatures): `verifyTrail` (verify.ts) checks everything. */
  verifyChain(): Promise<ChainVerdict>;
  /** From now on, every batch of decisions or access-log entries is committed with its signed checkpoint. */
  signBatches(signing: BatchSigning): void;
  lastCheckpoint(chain?: ChainName): Promise<Checkpoint | null>;
  /** Checkpoints of `chain` with seq > `after`, oldest first. */
  checkpointsAfter(chain: ChainName, after: number, limit?: number): Promise<Checkpoint[]>;
  /** Where the chain's signed batches begin (records up to it were stored before batches were signed). */
  chainStart(chain: ChainName): Promise<number>;
  /** The stored hash of record `seq` of `chain` (null when there is none, or it has no hash). */
  hashAt(chain: ChainName, seq: number): Promise<string | null>;
  /** The newest record of `chain`: its seq (0 when empty). */
  headOf(chain: ChainName): Promise<number>;
  /** Access-log rows with seq > `after`, in chain order. */
  accessLogsAfter(after: number, limit?: number): Promise<StoredAccessLog[]>;
  /** Ids of access-log rows outside the chain (no seq): none is ever written so. */
  unchainedAccessLogs(limit?: number): Promise<number[]>;
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
  'trace_id',
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

const ACCESS_LOG_TYPES: Record<string, string> = {
  time: 'timestamptz',
  response_code: 'integer',
  bytes_sent: 'bigint',
  bytes_received: 'bigint',
  duration_ms: 'float8',
  metadata: 'jsonb',
};

/** (column, SQL type) of an access-log row as inserted: seq, the covered columns, the chain links. */
const ACCESS_LOG_COLUMNS: [name: string, type: string][] = [
  ['seq', 'bigint'],
  ...ACCESS_LOG_RECORD_COLUMNS.map((c): [string, string] => [c, ACCESS_LOG_TYPES[c] ?? 'text']),
  ['prev_hash', 'text'],
  ['hash', 'text'],
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

/** Rows per INSERT when a batch is pipelined to PostgreSQL. */
const PIPELINE_ROWS = 128;

/**
 * Rows hashed between two turns of the event loop, and per INSERT to a PGlite thread. Hashing a record
 * (canonical JSON + SHA-256) takes ~45 µs on the thread that answers Checks, and a batch holds a few
 * hundred: in one go, the Checks arriving meanwhile waited ~10 ms. In bench:gateway at 1,000 rps this
 * halved the event loop's p99 delay (docs/performance.md).
 */
const YIELD_ROWS = 32;

/** Lets the I/O that arrived meanwhile (Checks) run before the caller goes on. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

const INSERT_DECISIONS = unnestInsert('decisions', DECISION_TYPED_COLUMNS, [])[0];
const INSERT_DECISIONS_UNLESS_STORED = `WITH inserted AS (${INSERT_DECISIONS}
     ON CONFLICT (decision_id) DO NOTHING RETURNING 1)
   SELECT count(*)::int AS n FROM inserted`;

// pushRow writes the columns in this order.
if (
  DECISION_TYPED_COLUMNS.map(([c]) => c).join() !==
    ['seq', ...DECISION_COLUMNS, 'prev_hash', 'hash'].join() ||
  DECISION_COLUMNS.join() !==
    'decision_id,request_id,time,route_id,target,method,host,path,subject,issuer,actor,decision,http_status,reason,reason_code,policy_revision,latency_us,input,result,shadow,trace_id'
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
  c[21]!.push(r.trace_id ?? null);
  c[22]!.push(prev);
  c[23]!.push(hash);
}

function rowToDecision(r: Record<string, unknown>): StoredDecision {
  const out: Record<string, unknown> = { ...r };
  out['seq'] = Number(r['seq']);
  out['time'] = r['time'] instanceof Date ? r['time'].toISOString() : String(r['time']);
  for (const c of JSON_COLUMNS) if (typeof out[c] === 'string') out[c] = JSON.parse(out[c] as string);
  return out as unknown as StoredDecision;
}

class SqlAuditStore implements AuditStore {
  private signing: BatchSigning | null = null;
  /** audit_chains.since per chain: fixed by the migration, read once. */
  private readonly since = new Map<ChainName, number>();

  constructor(
    readonly sql: Sql,
    readonly description: string,
  ) {}

  signBatches(signing: BatchSigning): void {
    this.signing = signing;
  }

  private async sinceOf(tx: Pick<Sql, 'query'>, chain: ChainName): Promise<number> {
    let since = this.since.get(chain);
    if (since === undefined) {
      const [row] = await tx.query<{ since: string | number }>(
        'SELECT since FROM audit_chains WHERE chain = $1',
        [chain],
      );
      since = Number(row?.since ?? 0);
      this.since.set(chain, since);
    }
    return since;
  }

  /** Signs the batch that moved `chain` from prev to head and stores its checkpoint, in `tx`. */
  private async checkpointIn(
    tx: Pick<Sql, 'query'>,
    chain: ChainName,
    prevSeq: number,
    prevHash: string,
    seq: number,
    hash: string,
  ): Promise<Checkpoint | null> {
    if (!this.signing || seq === prevSeq) return null;
    const cp = await signBatch(this.signing.signer, {
      chain,
      since: await this.sinceOf(tx, chain),
      prevSeq,
      prevHash,
      seq,
      hash,
    });
    await tx.query(
      `INSERT INTO ${CHAIN_TABLES[chain].checkpoints} (seq, hash, signature, key_id, time, prev_seq, prev_hash)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [cp.seq, cp.hash, cp.signature, cp.key_id, cp.time, cp.prev_seq, cp.prev_hash],
    );
    return cp;
  }

  private committed(chain: ChainName, cp: Checkpoint | null): void {
    if (cp) this.signing?.onCheckpoint?.(chain, cp);
  }

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
    let out: { total: number; cp: Checkpoint | null };
    try {
      out = await this.sql.transaction((tx) => this.extendChain(tx, batch, false));
    } catch (err) {
      if (!(err instanceof AlreadyStored)) throw err;
      out = await this.sql.transaction((tx) => this.extendChain(tx, batch, true));
    }
    this.committed('decisions', out.cp);
    return out.total;
  }

  private async extendChain(
    tx: Pick<Sql, 'query'>,
    batch: DecisionRecord[],
    lookUpStored: boolean,
  ): Promise<{ total: number; cp: Checkpoint | null }> {
    const postgres = this.sql.engine === 'postgres';
    // The chain is extended in one transaction; on PostgreSQL an advisory lock keeps two writers
    // (two gateways sharing a store) from forking it.
    if (postgres) await tx.query(`SELECT pg_advisory_xact_lock(${CHAIN_TABLES.decisions.lock})`);
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
    const headSeq = Number(last?.seq ?? 0);
    const headHash = last?.hash ?? GENESIS_HASH;
    let seq = headSeq;
    let prev = headHash;
    // The batch goes in pieces, each sent as soon as it is hashed: the database inserts one while the next
    // is being hashed. (PGlite on this thread: one statement is cheapest.)
    const piece = this.sql.sharesThread ? Number.POSITIVE_INFINITY : postgres ? PIPELINE_ROWS : YIELD_ROWS;
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
      if ((total + rows) % YIELD_ROWS === 0) await nextTurn();
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
    const cp = await this.checkpointIn(tx, 'decisions', headSeq, headHash, seq, prev);
    return { total, cp };
  }

  /**
   * Extends the access-log chain by the entries not stored yet (by entry key), in one transaction with
   * its signed checkpoint. Envoy's ALS may drop entries before they arrive; what arrives is chained.
   */
  async insertAccessLogs(batch: AccessLogEntry[]): Promise<number> {
    const records = new Map(batch.map((e) => toAccessLogRecord(e)).map((r) => [r.entry_key, r]));
    if (records.size === 0) return 0;
    const out = await this.sql.transaction(async (tx) => {
      if (this.sql.engine === 'postgres')
        await tx.query(`SELECT pg_advisory_xact_lock(${CHAIN_TABLES.access_log.lock})`);
      const stored = await tx.query<{ entry_key: string }>(
        'SELECT entry_key FROM access_log WHERE entry_key = ANY($1)',
        [[...records.keys()]],
      );
      for (const r of stored) records.delete(r.entry_key);
      if (records.size === 0) return { total: 0, cp: null };
      const [last] = await tx.query<{ seq: string | number; hash: string | null }>(
        'SELECT seq, hash FROM access_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1',
      );
      const headSeq = Number(last?.seq ?? 0);
      // Rows from before the chain (numbered, unhashed) are not linked to: the chain starts afresh.
      const headHash = last?.hash ?? GENESIS_HASH;
      let seq = headSeq;
      let prev = headHash;
      const rows: unknown[][] = [];
      for (const r of records.values()) {
        seq += 1;
        const hash = accessLogHash(prev, seq, r);
        rows.push([
          seq,
          ...ACCESS_LOG_RECORD_COLUMNS.map((c) => (c === 'metadata' ? JSON.stringify(r.metadata) : r[c])),
          prev,
          hash,
        ]);
        prev = hash;
      }
      const [text, params] = unnestInsert('access_log', ACCESS_LOG_COLUMNS, rows);
      await tx.query(text, params);
      const cp = await this.checkpointIn(tx, 'access_log', headSeq, headHash, seq, prev);
      return { total: rows.length, cp };
    });
    this.committed('access_log', out.cp);
    return out.total;
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
    if (q.traceId) add('trace_id = ?', q.traceId);
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

  async lastCheckpoint(chain: ChainName = 'decisions'): Promise<Checkpoint | null> {
    const [row] = await this.sql.query<Record<string, unknown>>(
      `SELECT * FROM ${CHAIN_TABLES[chain].checkpoints} ORDER BY seq DESC LIMIT 1`,
    );
    return row ? checkpointRow(row) : null;
  }

  async checkpointsAfter(chain: ChainName, after: number, limit = 1000): Promise<Checkpoint[]> {
    const rows = await this.sql.query<Record<string, unknown>>(
      `SELECT * FROM ${CHAIN_TABLES[chain].checkpoints} WHERE seq > $1 ORDER BY seq LIMIT $2`,
      [after, limit],
    );
    return rows.map(checkpointRow);
  }

  chainStart(chain: ChainName): Promise<number> {
    this.since.delete(chain); // a verifier reads what is stored now, not what this process cached
    return this.sinceOf(this.sql, chain);
  }

  async hashAt(chain: ChainName, seq: number): Promise<string | null> {
    const [row] = await this.sql.query<{ hash: string | null }>(
      `SELECT hash FROM ${CHAIN_TABLES[chain].rows} WHERE seq = $1`,
      [seq],
    );
    return row?.hash ?? null;
  }

  async headOf(chain: ChainName): Promise<number> {
    const [row] = await this.sql.query<{ seq: string | number | null }>(
      `SELECT max(seq) AS seq FROM ${CHAIN_TABLES[chain].rows}`,
    );
    return Number(row?.seq ?? 0);
  }

  async accessLogsAfter(after: number, limit = 1000): Promise<StoredAccessLog[]> {
    const rows = await this.sql.query<Record<string, unknown>>(
      'SELECT * FROM access_log WHERE seq > $1 ORDER BY seq LIMIT $2',
      [after, limit],
    );
    return rows.map(accessLogFromRow);
  }

  async unchainedAccessLogs(limit = 10): Promise<number[]> {
    const rows = await this.sql.query<{ id: string | number }>(
      'SELECT id FROM access_log WHERE seq IS NULL ORDER BY id LIMIT $1',
      [limit],
    );
    return rows.map((r) => Number(r.id));
  }

  verifyChain(): Promise<ChainVerdict> {
    return this.verifyLinks();
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

/**
 * `url` (postgres://…) → PostgreSQL; otherwise PGlite in `dataDir`, or in memory when neither is given.
 * `thread`: PGlite runs in a worker thread of its own (the gateway's choice: store/pglite-thread.ts).
 */
export async function openAuditStore(o: {
  url?: string | null;
  dataDir?: string | null;
  thread?: boolean;
}): Promise<AuditStore> {
  if (o.url) {
    const sql = await openPostgres(o.url);
    return new SqlAuditStore(sql, `postgres ${redactUrl(o.url)}`);
  }
  const sql = await openPglite(o.dataDir ?? null, { thread: o.thread === true });
  const where = o.dataDir ? `embedded (PGlite) ${o.dataDir}` : 'embedded (PGlite, in memory)';
  return new SqlAuditStore(sql, o.thread ? `${where}, own thread` : where);
}
