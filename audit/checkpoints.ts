// Signed checkpoints over the audit chains. The hash chain shows a record was changed, deleted,
// inserted or reordered — unless someone rewrites every hash after it. A checkpoint signed with a
// node's key pins the chain: a rewrite has to forge the signature too, and the signature is checked
// against keys kept outside the database (verify.ts), so a key added to the database does not help.
//
// Every batch a node commits carries its checkpoint, signed in the same transaction: "after
// (prev_seq, prev_hash), I appended up to (seq, hash); signed batches of this chain begin at `since`".
// The signed ranges therefore tile the chain: a record no trusted range covers was not written by a
// node (appended through SQL), and a checkpoint deleted leaves a gap.
import { CompactSign, compactVerify, importJWK, type JWK } from 'jose';
import { ChaperoneError } from '../contracts/errors.ts';

export type ChainName = 'decisions' | 'access_log';
export const CHAINS: readonly ChainName[] = ['decisions', 'access_log'];

/** A checkpoint row (and an exported checkpoint): the signature is the truth, the rest a copy of it. */
export interface Checkpoint {
  seq: number;
  hash: string;
  signature: string;
  key_id: string;
  time: string;
  /** The head the signed batch extended; null on checkpoints from before batches were signed. */
  prev_seq?: number | null;
  prev_hash?: string | null;
}

/** What a checkpoint's signature says. Version 1: the periodic checkpoints of earlier versions. */
export interface SignedHead {
  v: 1 | 2;
  chain: ChainName;
  seq: number;
  hash: string;
  time: string;
  /** v2 only: where this chain's signed batches begin (records up to it predate them). */
  since: number | null;
  prev_seq: number | null;
  prev_hash: string | null;
}

export interface CheckpointSigner {
  kid: string;
  signingKey: Parameters<CompactSign['sign']>[0];
}

/** Distinguishes a checkpoint from the agent tokens the same key signs. */
const CHECKPOINT_TYP = 'chaperone-checkpoint';

export async function signBatch(
  signer: CheckpointSigner,
  head: { chain: ChainName; since: number; prevSeq: number; prevHash: string; seq: number; hash: string },
): Promise<Checkpoint> {
  const time = new Date().toISOString();
  const payload = {
    v: 2,
    chain: head.chain,
    since: head.since,
    prev_seq: head.prevSeq,
    prev_hash: head.prevHash,
    seq: head.seq,
    hash: head.hash,
    time,
  };
  const signature = await new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: 'ES256', kid: signer.kid, typ: CHECKPOINT_TYP })
    .sign(signer.signingKey);
  return {
    seq: head.seq,
    hash: head.hash,
    signature,
    key_id: signer.kid,
    time,
    prev_seq: head.prevSeq,
    prev_hash: head.prevHash,
  };
}

/** Public keys trusted to sign checkpoints, imported once each. */
export class TrustedKeys {
  private readonly byKid = new Map<string, JWK>();
  private readonly imported = new Map<string, Promise<Awaited<ReturnType<typeof importJWK>>>>();

  constructor(jwks: { keys: JWK[] }) {
    for (const k of jwks.keys) {
      // Public halves only: a private member in a trust file is ignored, never used.
      const { d: _d, ...pub } = k;
      if (typeof pub.kid === 'string' && !this.byKid.has(pub.kid)) this.byKid.set(pub.kid, pub);
    }
  }

  get size(): number {
    return this.byKid.size;
  }

  kids(): string[] {
    return [...this.byKid.keys()];
  }

  has(kid: string): boolean {
    return this.byKid.has(kid);
  }

  key(kid: string): Promise<Awaited<ReturnType<typeof importJWK>>> | null {
    const jwk = this.byKid.get(kid);
    if (!jwk) return null;
    let k = this.imported.get(kid);
    if (!k) {
      k = importJWK(jwk, 'ES256');
      this.imported.set(kid, k);
    }
    return k;
  }
}

export type Opened = { ok: true; signed: SignedHead } | { ok: false; untrusted: boolean; reason: string };

const isInt = (v: unknown): v is number => Number.isSafeInteger(v);
const isHash = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);

/**
 * Checks a checkpoint's signature against the trusted keys and returns what it signed — after checking
 * the copy beside it (row columns, exported fields) says the same. `label` names it in reasons.
 */
export async function openCheckpoint(
  cp: Checkpoint,
  chain: ChainName,
  trust: TrustedKeys,
  label: string,
): Promise<Opened> {
  let header: { kid?: unknown; typ?: unknown };
  try {
    header = JSON.parse(Buffer.from(String(cp.signature).split('.')[0] ?? '', 'base64url').toString('utf8'));
  } catch {
    return { ok: false, untrusted: false, reason: `${label} has no valid signature` };
  }
  const kid = typeof header.kid === 'string' ? header.kid : '';
  const key = trust.key(kid);
  if (!key)
    return {
      ok: false,
      untrusted: true,
      reason: `${label} is signed with key ${kid || '(none)'}, which is not trusted`,
    };
  let payload: Record<string, unknown>;
  try {
    const res = await compactVerify(cp.signature, await key, { algorithms: ['ES256'] });
    payload = JSON.parse(new TextDecoder().decode(res.payload)) as Record<string, unknown>;
  } catch {
    return { ok: false, untrusted: false, reason: `${label} has an invalid signature` };
  }
  const v2 = payload['v'] === 2;
  if (v2 !== (header.typ === CHECKPOINT_TYP) || !isInt(payload['seq']) || !isHash(payload['hash']))
    return { ok: false, untrusted: false, reason: `${label} is not a checkpoint` };
  const signed: SignedHead = {
    v: v2 ? 2 : 1,
    chain: v2 ? (payload['chain'] as ChainName) : 'decisions',
    seq: payload['seq'],
    hash: payload['hash'],
    time: String(payload['time'] ?? ''),
    since: v2 && isInt(payload['since']) ? payload['since'] : null,
    prev_seq: v2 && isInt(payload['prev_seq']) ? payload['prev_seq'] : null,
    prev_hash: v2 && isHash(payload['prev_hash']) ? payload['prev_hash'] : null,
  };
  if (v2 && (signed.since === null || signed.prev_seq === null || signed.prev_hash === null))
    return { ok: false, untrusted: false, reason: `${label} is not a checkpoint` };
  const copyDiffers =
    signed.chain !== chain ||
    Number(cp.seq) !== signed.seq ||
    cp.hash !== signed.hash ||
    cp.key_id !== kid ||
    (v2 && (Number(cp.prev_seq) !== signed.prev_seq || cp.prev_hash !== signed.prev_hash));
  if (copyDiffers) return { ok: false, untrusted: false, reason: `${label} does not match what was signed` };
  return { ok: true, signed };
}

/** The file `audit checkpoint export` writes and `audit verify --checkpoint` reads; also the node's anchor. */
export interface CheckpointFile {
  format: typeof CHECKPOINT_FORMAT;
  written_at: string;
  decisions?: Checkpoint | null;
  access_log?: Checkpoint | null;
}

export const CHECKPOINT_FORMAT = 'chaperone-audit-checkpoint/1';

export class CheckpointFileError extends ChaperoneError {
  constructor(message: string) {
    super('ERR_AUDIT_TRUST', message);
  }
}

export function parseCheckpointFile(text: string, source: string): CheckpointFile {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new CheckpointFileError(`${source} is not JSON`);
  }
  const o = v as Partial<CheckpointFile> | null;
  if (!o || typeof o !== 'object' || o.format !== CHECKPOINT_FORMAT)
    throw new CheckpointFileError(
      `${source} is not a Chaperone audit checkpoint (format ${CHECKPOINT_FORMAT})`,
    );
  for (const chain of CHAINS) {
    const cp = o[chain];
    if (cp === undefined || cp === null) continue;
    if (!isInt(cp.seq) || typeof cp.hash !== 'string' || typeof cp.signature !== 'string')
      throw new CheckpointFileError(`${source}: "${chain}" must have seq, hash and signature`);
  }
  if (!o.decisions && !o.access_log) throw new CheckpointFileError(`${source} holds no checkpoint`);
  return o as CheckpointFile;
}
