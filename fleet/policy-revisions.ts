// The fleet's policy: bundles published to the shared store as numbered revisions (`r1`, `r2`, …),
// and which one is active (the newest activation: a publish activates its revision, a rollback an
// older one). Every authz server follows the active revision with a Mirror of one record, reloaded on
// each `policy` notice and after a lost LISTEN connection, so a publish reaches the fleet in the time
// NOTIFY takes plus one bundle load. The bundle bytes are read only when the active revision changes;
// the Check path never touches the store. Whether a bundle may be served (its signature) is the
// authz server's decision, not the store's: whoever can write these tables cannot forge a signature.
import { ChaperoneError } from '../contracts/errors.ts';
import { isoTime, jsonColumn, type Sql } from '../store/sql.ts';
import { Mirror } from './mirror.ts';
import type { SharedState } from './shared-state.ts';

/** A revision that does not exist was named (rollback, replay, shadow). */
export class PolicyRevisionError extends ChaperoneError {
  constructor(message: string) {
    super('ERR_POLICY_REVISION', message);
  }
}

export interface PolicyRevision {
  revision: number;
  /** What decisions record: `r<revision>`. */
  id: string;
  sha256: string;
  sizeBytes: number;
  entrypoints: string[];
  /** The key id the bundle's signature names (as claimed; each node verifies), or null: unsigned. */
  signedBy: string | null;
  manifestRevision: string | null;
  /** What was published: a directory or a bundle file, as the publisher named it. */
  source: string;
  publishedBy: string;
  note: string | null;
  createdAt: string;
}

export interface PolicyActivation {
  /** Increases with every activation, fleet-wide. */
  seq: number;
  revision: number;
  id: string;
  reason: 'publish' | 'rollback';
  activatedBy: string;
  activatedAt: string;
}

/** `r7`, `7` → 7; anything else → null. */
export function parseRevisionId(text: string): number | null {
  const m = /^r?([1-9][0-9]{0,15})$/.exec(text.trim());
  return m ? Number(m[1]) : null;
}

export const revisionId = (n: number) => `r${n}`;

function revisionOf(row: Record<string, unknown>): PolicyRevision {
  const revision = Number(row['revision']);
  return {
    revision,
    id: revisionId(revision),
    sha256: String(row['sha256']),
    sizeBytes: Number(row['size_bytes']),
    entrypoints: jsonColumn<string[]>(row['entrypoints']),
    signedBy: (row['signed_by'] as string | null) ?? null,
    manifestRevision: (row['manifest_rev'] as string | null) ?? null,
    source: String(row['source']),
    publishedBy: String(row['published_by']),
    note: (row['note'] as string | null) ?? null,
    createdAt: isoTime(row['created_at']),
  };
}

function activationOf(row: Record<string, unknown>): PolicyActivation {
  const revision = Number(row['revision']);
  return {
    seq: Number(row['seq']),
    revision,
    id: revisionId(revision),
    reason: row['reason'] === 'rollback' ? 'rollback' : 'publish',
    activatedBy: String(row['activated_by']),
    activatedAt: isoTime(row['activated_at']),
  };
}

const REVISION_COLUMNS =
  'revision, sha256, size_bytes, entrypoints, signed_by, manifest_rev, source, published_by, note, created_at';

export interface PublishInput {
  bundle: Buffer;
  sha256: string;
  entrypoints: string[];
  signedBy: string | null;
  manifestRevision: string | null;
  source: string;
  note?: string | null;
}

/** Reading and writing revisions: what `chaperone policy publish|revisions|rollback` use. */
export class PolicyRevisionStore {
  constructor(private readonly state: SharedState) {}

  async active(): Promise<PolicyActivation | null> {
    const [row] = await this.state.sql.query(
      'SELECT seq, revision, reason, activated_by, activated_at FROM policy_activations ORDER BY seq DESC LIMIT 1',
    );
    return row ? activationOf(row) : null;
  }

  async get(revision: number): Promise<PolicyRevision | null> {
    const [row] = await this.state.sql.query(
      `SELECT ${REVISION_COLUMNS} FROM policy_revisions WHERE revision = $1`,
      [revision],
    );
    return row ? revisionOf(row) : null;
  }

  /** The bundle of a revision, or null when there is no such revision. */
  async bundle(revision: number): Promise<Buffer | null> {
    const [row] = await this.state.sql.query<{ bundle: Uint8Array }>(
      'SELECT bundle FROM policy_revisions WHERE revision = $1',
      [revision],
    );
    return row ? Buffer.from(row.bundle) : null;
  }

  /** Newest first. */
  async list(limit = 50): Promise<PolicyRevision[]> {
    const rows = await this.state.sql.query(
      `SELECT ${REVISION_COLUMNS} FROM policy_revisions ORDER BY revision DESC LIMIT $1`,
      [limit],
    );
    return rows.map(revisionOf);
  }

  /** Every activation, newest first (the history `policy revisions` shows). */
  async activations(limit = 50): Promise<PolicyActivation[]> {
    const rows = await this.state.sql.query(
      'SELECT seq, revision, reason, activated_by, activated_at FROM policy_activations ORDER BY seq DESC LIMIT $1',
      [limit],
    );
    return rows.map(activationOf);
  }

  /** Stores the bundle as a new revision and activates it; the fleet is told on commit. */
  publish(p: PublishInput): Promise<{ revision: PolicyRevision; activation: PolicyActivation }> {
    return this.state.sql.transaction(async (tx) => {
      const [row] = await tx.query(
        `INSERT INTO policy_revisions (sha256, bundle, size_bytes, entrypoints, signed_by, manifest_rev, source, published_by, note)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ${REVISION_COLUMNS}`,
        [
          p.sha256,
          p.bundle,
          p.bundle.length,
          JSON.stringify(p.entrypoints),
          p.signedBy,
          p.manifestRevision,
          p.source,
          this.state.node,
          p.note ?? null,
        ],
      );
      const revision = revisionOf(row!);
      const activation = await this.activate(tx, revision.revision, 'publish');
      return { revision, activation };
    });
  }

  /** Makes an existing revision the fleet's policy again. */
  rollback(revision: number): Promise<PolicyActivation> {
    return this.state.sql.transaction(async (tx) => {
      const [exists] = await tx.query('SELECT 1 FROM policy_revisions WHERE revision = $1', [revision]);
      if (!exists) throw new PolicyRevisionError(`there is no policy revision ${revisionId(revision)}`);
      return this.activate(tx, revision, 'rollback');
    });
  }

  private async activate(
    tx: Pick<Sql, 'query'>,
    revision: number,
    reason: PolicyActivation['reason'],
  ): Promise<PolicyActivation> {
    const [row] = await tx.query(
      `INSERT INTO policy_activations (revision, reason, activated_by) VALUES ($1, $2, $3)
       RETURNING seq, revision, reason, activated_by, activated_at`,
      [revision, reason, this.state.node],
    );
    await this.state.notify(tx, 'policy');
    return activationOf(row!);
  }
}

/**
 * The active revision as this node last read it, kept current by notices. `onActive` runs for every
 * read that finds an activation newer than the last one it was told of (never for an older one: reads
 * do not overlap, but a resync could in principle answer with what a notice already delivered).
 */
export class PolicyRevisionFollower {
  private readonly mirror: Mirror<'active', PolicyActivation>;
  private toldSeq = 0;

  private constructor(
    readonly store: PolicyRevisionStore,
    onActive: (a: PolicyActivation) => void,
  ) {
    this.mirror = new Mirror(
      {
        loadAll: async () => {
          const a = await this.store.active();
          return a ? [['active', a]] : [];
        },
      },
      (_key, a) => {
        if (!a || a.seq <= this.toldSeq) return;
        this.toldSeq = a.seq;
        onActive(a);
      },
    );
  }

  /** Reads the active revision (resolves once read, `onActive` called if there is one) and follows it. */
  static async open(
    state: SharedState,
    onActive: (a: PolicyActivation) => void,
  ): Promise<PolicyRevisionFollower> {
    const follower = new PolicyRevisionFollower(new PolicyRevisionStore(state), onActive);
    state.follow('policy', follower.mirror);
    await follower.mirror.reloadAll();
    return follower;
  }

  active(): PolicyActivation | null {
    return this.mirror.get('active') ?? null;
  }
}
