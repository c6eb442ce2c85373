// The node's own copy of the newest checkpoint it signed for each chain, kept in its state directory
// (<state dir>/audit-checkpoint.json, 0600) — outside the database. Whoever can write to the database
// but not to this node's files cannot truncate the trail behind it: `audit verify` on the node (and
// `audit verify --config`) finds the anchored record gone or changed. It is also what `audit
// checkpoint export` hands to a system that keeps it elsewhere.
//
// The anchor only moves forward along the chain: a checkpoint replaces it only when its chain still
// holds the anchored record (directly after it, or checked in the store). One that does not is the
// store having lost or changed records: the anchor stays, and the alarm is logged and shown in status.
import { open, readFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { AgentKeys } from '../fleet/agent-keys.ts';
import {
  CHAINS,
  CHECKPOINT_FORMAT,
  type ChainName,
  type Checkpoint,
  type CheckpointFile,
  parseCheckpointFile,
} from './checkpoints.ts';
import { syncDirectory } from './spool.ts';
import type { AuditStore } from './store.ts';

export const ANCHOR_FILE = 'audit-checkpoint.json';

/** Reads a checkpoint file; null when there is none. */
export async function readCheckpointFile(path: string): Promise<CheckpointFile | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return parseCheckpointFile(text, path);
}

/** Writes a checkpoint file whole (temporary file 0600, fsync, rename, directory fsync). */
export async function writeCheckpointFile(path: string, file: CheckpointFile): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(`${JSON.stringify(file, null, 2)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await syncDirectory(dirname(path));
}

export interface AnchorStatus {
  file: string;
  decisions: number | null;
  access_log: number | null;
  /** Set when the store no longer holds an anchored record: records were deleted or changed. */
  alarm: string | null;
}

export class CheckpointAnchor {
  private incoming: [ChainName, Checkpoint][] = [];
  private running: Promise<void> | null = null;
  private alarm: string | null = null;

  private constructor(
    private readonly path: string,
    private current: CheckpointFile,
    /** The stored hash of a record (to follow the chain past other nodes' batches). */
    private readonly hashAt: (chain: ChainName, seq: number) => Promise<string | null>,
    private readonly logger: Logger,
  ) {}

  /** Reads the anchor and checks the store still holds what it names (an alarm otherwise). */
  static async open(o: {
    path: string;
    hashAt: (chain: ChainName, seq: number) => Promise<string | null>;
    logger: Logger;
  }): Promise<CheckpointAnchor> {
    const current = (await readCheckpointFile(o.path)) ?? {
      format: CHECKPOINT_FORMAT,
      written_at: new Date().toISOString(),
    };
    const anchor = new CheckpointAnchor(o.path, current, o.hashAt, o.logger);
    for (const chain of CHAINS) {
      const cp = current[chain];
      if (cp && (await o.hashAt(chain, cp.seq)) !== cp.hash)
        anchor.raise(
          `the audit store no longer holds ${chain} record ${cp.seq} as this node signed it (${o.path}): records were deleted or rewritten; run chaperone audit verify`,
        );
    }
    return anchor;
  }

  /** What the anchor holds now. */
  file(): CheckpointFile {
    return this.current;
  }

  status(): AnchorStatus {
    return {
      file: this.path,
      decisions: this.current.decisions?.seq ?? null,
      access_log: this.current.access_log?.seq ?? null,
      alarm: this.alarm,
    };
  }

  /** A checkpoint this node committed (AuditStore.signBatches' onCheckpoint). Written in the background. */
  readonly onCheckpoint = (chain: ChainName, cp: Checkpoint): void => {
    this.incoming.push([chain, cp]);
    if (!this.running)
      this.running = this.drain()
        .catch((err: unknown) =>
          this.logger.error(
            { err: err instanceof Error ? err.message : String(err), file: this.path },
            'audit anchor not written',
          ),
        )
        .finally(() => {
          this.running = null;
          if (this.incoming.length > 0) this.onCheckpoint(...this.incoming.shift()!);
        });
  };

  /** Resolves once every checkpoint handed in so far is written. */
  async flush(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    while (this.incoming.length > 0) {
      let moved = false;
      for (const [chain, cp] of this.incoming.splice(0)) moved = (await this.advance(chain, cp)) || moved;
      if (moved) {
        this.current = { ...this.current, written_at: new Date().toISOString() };
        await writeCheckpointFile(this.path, this.current);
      }
    }
  }

  private async advance(chain: ChainName, cp: Checkpoint): Promise<boolean> {
    const held = this.current[chain];
    if (held && cp.seq <= held.seq) {
      if (cp.seq < held.seq)
        this.raise(
          `the audit store's ${chain} chain is behind this node's anchor (a batch ending at ${cp.seq} was signed after one ending at ${held.seq}): records were deleted`,
        );
      return false;
    }
    const extends_ =
      !held ||
      (cp.prev_seq === held.seq && cp.prev_hash === held.hash) ||
      (await this.hashAt(chain, held.seq)) === held.hash;
    if (!extends_) {
      this.raise(
        `the audit store no longer holds ${chain} record ${held!.seq} as this node signed it: records were deleted or rewritten; the anchor keeps it`,
      );
      return false;
    }
    this.current = { ...this.current, [chain]: cp };
    return true;
  }

  private raise(alarm: string): void {
    if (this.alarm === alarm) return;
    this.alarm = alarm;
    this.logger.error({ file: this.path }, alarm);
  }
}

/**
 * Makes `store` sign every batch it commits with this node's key (kept in `stateDir`) and anchor the
 * newest checkpoint in `stateDir`: what every process that ships into the trail does.
 */
export async function signAndAnchor(
  store: AuditStore,
  stateDir: string,
  logger: Logger,
): Promise<CheckpointAnchor> {
  const signer = await AgentKeys.open(stateDir);
  const anchor = await CheckpointAnchor.open({
    path: join(stateDir, ANCHOR_FILE),
    hashAt: (chain, seq) => store.hashAt(chain, seq),
    logger,
  });
  store.signBatches({ signer, onCheckpoint: anchor.onCheckpoint });
  return anchor;
}
