// Where audit verification gets what it trusts — never from the database: public keys from JWKS files
// (`--trust`) and from a node's key store (<state dir>/keys: its own keys and the operator's pins in
// keys/trusted.jwks), and checkpoints from files kept elsewhere (`--checkpoint`) and from a node's
// anchor (<state dir>/audit-checkpoint.json).
import { join } from 'node:path';
import { AgentKeys, readJwksFile } from '../fleet/agent-keys.ts';
import { ANCHOR_FILE, readCheckpointFile } from './anchor.ts';
import { type CheckpointFile, CheckpointFileError, TrustedKeys } from './checkpoints.ts';
import type { AuditStore } from './store.ts';
import { type TrailVerdict, verifyTrail } from './verify.ts';

export interface TrustSources {
  /** A node's state directory: its key store and its anchor. */
  stateDir?: string | null;
  /** JWKS files of keys to trust (`--trust`). */
  trustFiles?: string[];
  /** Exported checkpoint files (`--checkpoint`). */
  checkpointFiles?: string[];
}

export async function loadTrustedKeys(o: TrustSources): Promise<TrustedKeys> {
  const keys = [];
  for (const f of o.trustFiles ?? []) keys.push(...(await readJwksFile(f)));
  if (o.stateDir) keys.push(...((await AgentKeys.pinned(o.stateDir))?.keys ?? []));
  return new TrustedKeys({ keys });
}

export async function loadAnchors(o: TrustSources): Promise<{ source: string; file: CheckpointFile }[]> {
  const out: { source: string; file: CheckpointFile }[] = [];
  for (const f of o.checkpointFiles ?? []) {
    const file = await readCheckpointFile(f);
    if (!file) throw new CheckpointFileError(`${f}: no such file`);
    out.push({ source: f, file });
  }
  if (o.stateDir) {
    const path = join(o.stateDir, ANCHOR_FILE);
    const file = await readCheckpointFile(path);
    if (file) out.push({ source: `this node's anchor ${path}`, file });
  }
  return out;
}

/** The trail verified against the given sources of trust; refuses to run with no key to trust. */
export async function verifyWithTrust(store: AuditStore, o: TrustSources): Promise<TrailVerdict> {
  const trust = await loadTrustedKeys(o);
  if (trust.size === 0)
    return {
      ok: false,
      chain: 'decisions',
      firstBadSeq: 0,
      reason:
        'no trusted key: give --trust <jwks file> or a node state directory with its key store (--config, --state-dir)',
      count: 0,
    };
  return verifyTrail(store, { trust, anchors: await loadAnchors(o) });
}
