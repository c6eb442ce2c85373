// What someone with write access to the audit database (and nothing else) can do to the trail, written
// as that attacker would: plain SQL, the published hash and checkpoint formats, and a signing key of
// their own, which they register in `signing_keys` like a node would. The suites then check each
// edit is caught by the verification that trusts keys and checkpoints from outside the database.
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { type ChainName, type CheckpointSigner, signBatch } from '../../audit/checkpoints.ts';
import {
  accessLogFromRow,
  accessLogHash,
  chainHash,
  type DecisionRecord,
  GENESIS_HASH,
  type StoredDecision,
} from '../../audit/records.ts';

export type Query = (text: string, params?: unknown[]) => Promise<Record<string, unknown>[]>;

export interface Attacker extends CheckpointSigner {
  jwk: JWK;
}

/** A key of the attacker's own, registered in the database's `signing_keys` as a node's would be. */
export async function foreignKey(q: Query): Promise<Attacker> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const kid = `attacker-${randomUUID()}`;
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  await q('INSERT INTO signing_keys (kid, node, public_jwk) VALUES ($1, $2, $3)', [
    kid,
    'attacker',
    JSON.stringify(jwk),
  ]);
  return { kid, signingKey: privateKey, jwk };
}

const CHECKPOINTS: Record<ChainName, string> = {
  decisions: 'checkpoints',
  access_log: 'access_log_checkpoints',
};

function asDecision(r: Record<string, unknown>): StoredDecision {
  const out: Record<string, unknown> = { ...r, seq: Number(r['seq']) };
  out['time'] = r['time'] instanceof Date ? r['time'].toISOString() : String(r['time']);
  for (const c of ['actor', 'input', 'result', 'shadow'])
    if (typeof out[c] === 'string') out[c] = JSON.parse(out[c] as string);
  return out as unknown as StoredDecision;
}

/**
 * Re-signs every checkpoint of `chain` from `fromSeq` on with the attacker's key, over the hashes the
 * rows hold now (each batch's prev head taken from the rewritten chain, `since` unchanged).
 */
export async function resignFrom(
  q: Query,
  chain: ChainName,
  fromSeq: number,
  attacker: Attacker,
): Promise<void> {
  const table = CHECKPOINTS[chain];
  const rowsTable = chain === 'decisions' ? 'decisions' : 'access_log';
  const [start] = await q('SELECT since FROM audit_chains WHERE chain = $1', [chain]);
  const since = Number(start?.['since'] ?? 0);
  const cps = await q(`SELECT seq, prev_seq FROM ${table} WHERE seq >= $1 ORDER BY seq`, [fromSeq]);
  for (const cp of cps) {
    const seq = Number(cp['seq']);
    const prevSeq = Number(cp['prev_seq']);
    const [row] = await q(`SELECT hash FROM ${rowsTable} WHERE seq = $1`, [seq]);
    const [prev] = prevSeq > 0 ? await q(`SELECT hash FROM ${rowsTable} WHERE seq = $1`, [prevSeq]) : [];
    const signed = await signBatch(attacker, {
      chain,
      since,
      prevSeq,
      prevHash: (prev?.['hash'] as string | null) ?? GENESIS_HASH,
      seq,
      hash: String(row?.['hash']),
    });
    await q(`UPDATE ${table} SET hash = $1, prev_hash = $2, signature = $3, key_id = $4 WHERE seq = $5`, [
      signed.hash,
      signed.prev_hash,
      signed.signature,
      signed.key_id,
      seq,
    ]);
  }
}

/**
 * Changes decision `seq` (`change` returns the new record), recomputes every hash from it on so the
 * links verify again, and re-signs the checkpoints from its batch on with the attacker's key.
 */
export async function rewriteDecision(
  q: Query,
  seq: number,
  change: (r: StoredDecision) => StoredDecision,
  attacker: Attacker,
): Promise<{ batchStart: number }> {
  const rows = (await q('SELECT * FROM decisions WHERE seq >= $1 ORDER BY seq', [seq - 1])).map(asDecision);
  let prev = seq === 1 ? GENESIS_HASH : rows[0]!.hash;
  for (const original of rows.filter((r) => r.seq >= seq)) {
    const r = original.seq === seq ? change(original) : original;
    const hash = chainHash(prev, r.seq, r);
    await q(
      `UPDATE decisions SET decision = $1, reason = $2, subject = $3, http_status = $4, prev_hash = $5, hash = $6
       WHERE seq = $7`,
      [r.decision, r.reason, r.subject, r.http_status, prev, hash, r.seq],
    );
    prev = hash;
  }
  const [batch] = await q('SELECT seq, prev_seq FROM checkpoints WHERE seq >= $1 ORDER BY seq LIMIT 1', [
    seq,
  ]);
  await resignFrom(q, 'decisions', Number(batch?.['seq']), attacker);
  return { batchStart: Number(batch?.['prev_seq']) + 1 };
}

/** Deletes the decisions after `seq`, and (when `checkpoints`) their checkpoints too. */
export async function truncateDecisions(q: Query, seq: number, o: { checkpoints: boolean }): Promise<void> {
  await q('DELETE FROM decisions WHERE seq > $1', [seq]);
  if (o.checkpoints) await q('DELETE FROM checkpoints WHERE seq > $1', [seq]);
}

/** Appends a decision through SQL with a correct link and hash: the chain's links verify. */
export async function appendDecision(q: Query, over: Partial<DecisionRecord> = {}): Promise<number> {
  const [last] = await q('SELECT seq, hash FROM decisions ORDER BY seq DESC LIMIT 1');
  const seq = Number(last?.['seq'] ?? 0) + 1;
  const prev = (last?.['hash'] as string | undefined) ?? GENESIS_HASH;
  const r: DecisionRecord = {
    decision_id: randomUUID(),
    request_id: randomUUID(),
    time: new Date().toISOString(),
    route_id: 'demo/0',
    target: 'demo',
    method: 'GET',
    host: 'demo.local',
    path: '/demo/items',
    subject: 'mallory',
    issuer: 'https://idp.example.test',
    actor: null,
    decision: 'allow',
    http_status: 200,
    reason: 'rule engineering-read',
    reason_code: 'ALLOWED',
    policy_revision: 'rev1',
    latency_us: 1,
    input: null,
    result: { allowed: true },
    ...over,
  };
  const hash = chainHash(prev, seq, r);
  await q(
    `INSERT INTO decisions (seq, decision_id, request_id, time, route_id, target, method, host, path, subject,
       issuer, actor, decision, http_status, reason, reason_code, policy_revision, latency_us, input, result,
       prev_hash, hash)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22)`,
    [
      seq,
      r.decision_id,
      r.request_id,
      r.time,
      r.route_id,
      r.target,
      r.method,
      r.host,
      r.path,
      r.subject,
      r.issuer,
      JSON.stringify(r.actor),
      r.decision,
      r.http_status,
      r.reason,
      r.reason_code,
      r.policy_revision,
      r.latency_us,
      JSON.stringify(r.input),
      JSON.stringify(r.result),
      prev,
      hash,
    ],
  );
  return seq;
}

const FORGED_ACCESS_LOG = {
  request_id: 'forged-request',
  decision_id: null,
  node_id: 'edge-1',
  route: 'demo/0',
  method: 'GET',
  authority: 'demo.local',
  path: '/demo/items',
  response_code: 200,
  response_code_details: 'via_upstream',
  bytes_sent: 10,
  bytes_received: 10,
  duration_ms: 1,
  upstream_host: '127.0.0.1:1',
  upstream_cluster: 'target/demo',
  policy_revision: 'rev1',
  metadata: {},
};

/**
 * Inserts a fake access-log row. `chained`: given its place at the head of the access-log chain with a
 * correct link and hash (what a careful attacker does); otherwise a bare row as an older version wrote.
 */
export async function forgeAccessLog(q: Query, o: { chained: boolean }): Promise<number | null> {
  const time = new Date().toISOString();
  const entryKey = `edge-1|forged-${randomUUID()}|${time}`;
  let seq: number | null = null;
  let prev: string | null = null;
  let hash: string | null = null;
  if (o.chained) {
    const [last] = await q(
      'SELECT seq, hash FROM access_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1',
    );
    seq = Number(last?.['seq'] ?? 0) + 1;
    prev = (last?.['hash'] as string | null) ?? GENESIS_HASH;
    const record = accessLogFromRow({ id: 0, seq, entry_key: entryKey, time, ...FORGED_ACCESS_LOG });
    hash = accessLogHash(prev, seq, record);
  }
  const f = FORGED_ACCESS_LOG;
  await q(
    `INSERT INTO access_log (entry_key, request_id, decision_id, node_id, time, route, method, authority, path,
       response_code, response_code_details, bytes_sent, bytes_received, duration_ms, upstream_host,
       upstream_cluster, policy_revision, metadata, seq, prev_hash, hash)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21)`,
    [
      entryKey,
      f.request_id,
      f.decision_id,
      f.node_id,
      time,
      f.route,
      f.method,
      f.authority,
      f.path,
      f.response_code,
      f.response_code_details,
      f.bytes_sent,
      f.bytes_received,
      f.duration_ms,
      f.upstream_host,
      f.upstream_cluster,
      f.policy_revision,
      JSON.stringify(f.metadata),
      seq,
      prev,
      hash,
    ],
  );
  return seq;
}
