// Verifies the audit trail against trust kept outside the database: public keys pinned in files
// (`--trust`, each node's key store) and checkpoints kept elsewhere (`--checkpoint` files, each node's
// anchor). What the database says about keys is never consulted, so whoever can write to it can
// neither add a key that verifies nor rewrite, append or truncate unnoticed — within the limits
// docs/audit.md tabulates.
//
// One walk per chain (decisions, access log), in seq order, with the chain's checkpoints merged in:
// - links: consecutive seqs, each prev_hash the previous record's hash, each hash recomputed;
// - each checkpoint: signed by a trusted key, its copy in the row equal to what was signed, its record
//   still holding the signed hash;
// - coverage: the signed batches (v2 checkpoints) tile the chain from where signing began (`since`,
//   signed into every one) to its head — a record outside them was not written by a trusted node;
// - anchors: each exported checkpoint's record is still there with the signed hash (else the chain
//   was truncated or rewritten after the export).
import { ChaperoneError } from '../contracts/errors.ts';
import {
  type ChainName,
  type Checkpoint,
  type CheckpointFile,
  openCheckpoint,
  type TrustedKeys,
} from './checkpoints.ts';
import { accessLogHash, chainHash, GENESIS_HASH } from './records.ts';
import type { AuditStore } from './store.ts';

export interface ChainSummary {
  /** Records in the chain. */
  count: number;
  /** Checkpoints verified. */
  checkpoints: number;
  /** Records stored before batches were signed (covered by links and older checkpoints only). */
  legacy: number;
}

export type TrailVerdict =
  | {
      ok: true;
      /** The decision chain (kept at the top level for readers of the earlier verdict). */
      count: number;
      checkpoints: number;
      access_log: ChainSummary;
      legacy: number;
      /** Exported checkpoints (and node anchors) checked. */
      anchors: number;
      trusted_keys: string[];
    }
  | { ok: false; chain: ChainName; firstBadSeq: number; reason: string; count: number };

export interface TrailOptions {
  trust: TrustedKeys;
  /** Checkpoints kept outside the database, with where they came from (for messages). */
  anchors?: { source: string; file: CheckpointFile }[];
}

/** The first record the walk found broken; caught in this module and turned into the verdict. */
class Broken extends ChaperoneError {
  constructor(
    readonly chain: ChainName,
    readonly firstBadSeq: number,
    message: string,
  ) {
    super('ERR_AUDIT_TRUST', message);
  }
}

const PAGE = 1000;

interface LinkRow {
  seq: number | null;
  prev_hash: string | null;
  hash: string | null;
  /** The hash recomputed from the row's content after `prev`. */
  recompute(prev: string): string;
}

async function* rowsOf(store: AuditStore, chain: ChainName): AsyncGenerator<LinkRow> {
  let after = 0;
  for (;;) {
    const page: LinkRow[] =
      chain === 'decisions'
        ? (await store.decisionsAfter(after, PAGE)).map((r) => ({
            ...r,
            recompute: (prev: string) => chainHash(prev, r.seq, r),
          }))
        : (await store.accessLogsAfter(after, PAGE)).map((r) => ({
            ...r,
            recompute: (prev: string) => accessLogHash(prev, r.seq as number, r),
          }));
    if (page.length === 0) return;
    yield* page;
    after = page.at(-1)!.seq as number;
  }
}

async function* checkpointsOf(store: AuditStore, chain: ChainName): AsyncGenerator<Checkpoint> {
  let after = Number.MIN_SAFE_INTEGER;
  for (;;) {
    const page = await store.checkpointsAfter(chain, after, PAGE);
    if (page.length === 0) return;
    yield* page;
    after = page.at(-1)!.seq;
  }
}

const label = (chain: ChainName) => (chain === 'decisions' ? 'record' : 'access-log record');

async function verifyOne(store: AuditStore, chain: ChainName, trust: TrustedKeys): Promise<ChainSummary> {
  const rec = label(chain);
  const since = await store.chainStart(chain);
  if (chain === 'access_log') {
    const stray = await store.unchainedAccessLogs(5);
    if (stray.length > 0)
      throw new Broken(
        chain,
        0,
        `access-log rows outside the chain (id ${stray.join(', ')}): no node writes a row without its place in the chain`,
      );
  }
  const cps = checkpointsOf(store, chain);
  let nextCp = (await cps.next()).value as Checkpoint | undefined;
  let checkpoints = 0;
  let legacy = 0;
  let count = 0;
  let expected = 1;
  let prev: string | null = GENESIS_HASH;
  // The end of the signed ranges so far: where the next signed batch must begin.
  let covered = { seq: since, hash: since === 0 ? GENESIS_HASH : (null as string | null) };

  const checkpointAt = async (cp: Checkpoint, recordHash: string | null): Promise<void> => {
    const name = `checkpoint ${cp.seq}`;
    const opened = await openCheckpoint(cp, chain, trust, name);
    if (!opened.ok) {
      // Name the first record the bad checkpoint would vouch for.
      const from = cp.prev_seq !== null && cp.prev_seq !== undefined ? Number(cp.prev_seq) + 1 : cp.seq;
      throw new Broken(chain, Math.max(1, Math.min(from, cp.seq)), opened.reason);
    }
    const s = opened.signed;
    if (recordHash === null)
      throw new Broken(chain, s.seq, `${rec} ${s.seq} named by a signed checkpoint is missing (deleted)`);
    if (recordHash !== s.hash) {
      // The checkpoint before vouches for everything up to its record: the change is in this batch.
      const from = s.v === 2 ? (s.prev_seq as number) + 1 : s.seq;
      throw new Broken(
        chain,
        from,
        `the chain was rewritten: ${from === s.seq ? `${rec} ${s.seq}` : `${rec}s ${from}..${s.seq}`} no longer match the checkpoint signed over them (${rec} ${s.seq} differs)`,
      );
    }
    if (s.v === 2) {
      if (s.since !== since)
        throw new Broken(
          chain,
          Math.min(since, s.since ?? since) + 1,
          `where signed batches begin was moved: the store says after ${rec} ${since}, checkpoint ${s.seq} signed ${s.since}`,
        );
      if ((s.prev_seq as number) > covered.seq)
        throw new Broken(
          chain,
          covered.seq + 1,
          `${rec}s ${covered.seq + 1}..${s.prev_seq} are not covered by a signed checkpoint (written without a node's key, or a checkpoint was deleted)`,
        );
      if ((s.prev_seq as number) < covered.seq || (covered.hash !== null && s.prev_hash !== covered.hash))
        throw new Broken(
          chain,
          (s.prev_seq as number) + 1,
          `checkpoint ${s.seq} does not continue the signed batch before it`,
        );
      covered = { seq: s.seq, hash: s.hash };
    }
    checkpoints++;
  };

  for await (const r of rowsOf(store, chain)) {
    const seq = r.seq as number;
    count++;
    if (seq !== expected) throw new Broken(chain, expected, `${rec} ${expected} is missing (next is ${seq})`);
    const unhashed = chain === 'access_log' && seq <= since; // numbered, never hashed (before the chain)
    if (unhashed) {
      prev = GENESIS_HASH;
    } else {
      if (r.prev_hash !== prev)
        throw new Broken(chain, seq, `prev_hash of ${rec} ${seq} does not match the previous record`);
      if (r.recompute(prev) !== r.hash)
        throw new Broken(chain, seq, `${rec} ${seq} content does not match its hash`);
      prev = r.hash;
    }
    if (seq <= since) legacy++;
    if (seq === since) covered = { seq: since, hash: unhashed ? GENESIS_HASH : r.hash };
    while (nextCp && nextCp.seq <= seq) {
      if (nextCp.seq < seq) await checkpointAt(nextCp, null);
      else await checkpointAt(nextCp, unhashed ? null : r.hash);
      nextCp = (await cps.next()).value as Checkpoint | undefined;
    }
    expected++;
  }
  // Checkpoints beyond the head name records that are gone.
  while (nextCp) {
    await checkpointAt(nextCp, null);
    nextCp = (await cps.next()).value as Checkpoint | undefined;
  }
  const head = expected - 1;
  if (covered.seq < head)
    throw new Broken(
      chain,
      covered.seq + 1,
      `${rec}s ${covered.seq + 1}..${head} are not covered by a signed checkpoint (appended without a node's key, or their checkpoints were deleted)`,
    );
  return { count, checkpoints, legacy };
}

async function checkAnchor(
  store: AuditStore,
  chain: ChainName,
  cp: Checkpoint,
  source: string,
  trust: TrustedKeys,
): Promise<void> {
  const rec = label(chain);
  const opened = await openCheckpoint(cp, chain, trust, `the ${chain} checkpoint in ${source}`);
  if (!opened.ok) throw new Broken(chain, cp.seq, opened.reason);
  const s = opened.signed;
  if (s.v === 2 && s.since !== (await store.chainStart(chain)))
    throw new Broken(
      chain,
      (s.since ?? 0) + 1,
      `where signed batches begin was moved since ${source} was written (it signed after ${rec} ${s.since})`,
    );
  const head = await store.headOf(chain);
  if (head < s.seq)
    throw new Broken(
      chain,
      head + 1,
      `the chain was truncated: ${source} names ${rec} ${s.seq}, the store ends at ${head}`,
    );
  const hash = await store.hashAt(chain, s.seq);
  if (hash !== s.hash)
    throw new Broken(
      chain,
      s.seq,
      `the chain was rewritten: ${rec} ${s.seq} differs from the checkpoint in ${source}`,
    );
}

/** The whole trail against the trusted keys and the anchors; names the first bad record. */
export async function verifyTrail(store: AuditStore, o: TrailOptions): Promise<TrailVerdict> {
  let decisions: ChainSummary = { count: 0, checkpoints: 0, legacy: 0 };
  try {
    decisions = await verifyOne(store, 'decisions', o.trust);
    const accessLog = await verifyOne(store, 'access_log', o.trust);
    let anchors = 0;
    for (const a of o.anchors ?? []) {
      for (const chain of ['decisions', 'access_log'] as const) {
        const cp = a.file[chain];
        if (!cp) continue;
        await checkAnchor(store, chain, cp, a.source, o.trust);
        anchors++;
      }
    }
    return {
      ok: true,
      count: decisions.count,
      checkpoints: decisions.checkpoints,
      legacy: decisions.legacy,
      access_log: accessLog,
      anchors,
      trusted_keys: o.trust.kids(),
    };
  } catch (err) {
    if (!(err instanceof Broken)) throw err;
    return {
      ok: false,
      chain: err.chain,
      firstBadSeq: err.firstBadSeq,
      reason: err.message,
      count: decisions.count,
    };
  }
}
