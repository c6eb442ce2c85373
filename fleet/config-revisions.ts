// The routing configuration — the `targets` every Envoy of the fleet serves — is kept in the store as
// numbered revisions. A control plane whose config file changes writes a revision; every control plane
// serves the newest one, so a change made through one reaches the Envoys of all. Listeners, addresses
// and ports stay node-local (each node's own file). The newest revision is held in a Mirror (one
// record), reloaded on each `config` notice and after a lost LISTEN connection.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { defaultTargetBody } from '../config/load-config.ts';
import type { Config, TargetConfig } from '../config/types.ts';
import { canonicalJson } from '../lib/content-hash.ts';
import { jsonColumn } from '../store/sql.ts';
import { Mirror } from './mirror.ts';
import type { SharedState } from './shared-state.ts';

export interface ConfigRevision {
  revision: number;
  sha256: string;
  origin: string;
  targets: TargetConfig[];
}

/**
 * A target as a node of an earlier version wrote it, before targets had a body setting: the default
 * its config would give it now (a fleet upgrades one node at a time).
 */
const withBodyDefault = (t: TargetConfig): TargetConfig =>
  t.body ? t : { ...t, body: defaultTargetBody(t.protocol) };

const shaOf = (targets: TargetConfig[]) => createHash('sha256').update(canonicalJson(targets)).digest('hex');

export class SharedTargets {
  /** The fleet's newest revision, as this node last read or wrote it. */
  private readonly newest: Mirror<'newest', ConfigRevision>;
  /** The revision this node serves: a newer one read from the store is served, an older one never. */
  private served = 0;
  /** The targets of this node's file when last read: only a change to them is proposed to the fleet. */
  private fileSha: string | null = null;

  private constructor(
    private readonly state: SharedState,
    private readonly logger: Logger,
    private readonly onRevision: (r: ConfigRevision) => void,
  ) {
    this.newest = new Mirror(
      {
        loadAll: async () => {
          const latest = await this.latest();
          return latest ? [['newest', latest]] : [];
        },
      },
      (_key, revision) => {
        if (revision && revision.revision > this.served) this.serve(revision);
      },
    );
  }

  private get current(): ConfigRevision | null {
    return this.newest.get('newest') ?? null;
  }

  /**
   * Joins the fleet's configuration with this node's file. The file's targets become a new revision
   * unless the store already has them — as the newest revision, or as an older one (a node restarted
   * with a stale file must not roll the fleet back; it serves the newest revision and says so).
   */
  static async open(
    state: SharedState,
    fileTargets: TargetConfig[],
    o: { logger: Logger; onRevision: (r: ConfigRevision) => void },
  ): Promise<{ shared: SharedTargets; revision: ConfigRevision }> {
    const shared = new SharedTargets(state, o.logger, o.onRevision);
    const sha = shaOf(fileTargets);
    const latest = await shared.latest();
    let revision: ConfigRevision;
    if (!latest || latest.sha256 === sha) {
      revision = latest ?? (await shared.write(fileTargets, sha));
    } else {
      const [older] = await state.sql.query<{ revision: string | number }>(
        'SELECT revision FROM config_revisions WHERE sha256 = $1 ORDER BY revision DESC LIMIT 1',
        [sha],
      );
      if (older) {
        o.logger.warn(
          { file_revision: Number(older.revision), serving: latest.revision, origin: latest.origin },
          "the config file's targets are an older revision of the fleet's; serving the newest",
        );
        revision = latest;
      } else revision = await shared.write(fileTargets, sha);
    }
    shared.served = revision.revision;
    shared.newest.set('newest', revision);
    shared.fileSha = sha;
    state.follow('config', shared.newest);
    return { shared, revision };
  }

  status(): { revision: number | null; origin: string | null; sha256: string | null } {
    return {
      revision: this.current?.revision ?? null,
      origin: this.current?.origin ?? null,
      sha256: this.current?.sha256.slice(0, 16) ?? null,
    };
  }

  /**
   * The config to serve after this node's file was read again: with the file's targets when they
   * changed (to be proposed once they translate), else with the fleet's — an edit of a listener on
   * one node must not roll back targets another node changed since.
   */
  merge(file: Config): Config {
    const sha = shaOf(file.targets);
    if (sha === this.fileSha && this.current) return { ...file, targets: this.current.targets };
    this.fileSha = sha;
    return file;
  }

  /** Targets this node serves from its file (they translated cleanly) become the fleet's newest revision. */
  async propose(targets: TargetConfig[]): Promise<void> {
    const sha = shaOf(targets);
    if (this.current?.sha256 === sha) return;
    const written = await this.write(targets, sha);
    // Served already (it came from this node's file): recorded, not announced to onRevision.
    this.served = Math.max(this.served, written.revision);
    this.newest.set('newest', written);
  }

  private async latest(): Promise<ConfigRevision | null> {
    const [row] = await this.state.sql.query<Record<string, unknown>>(
      'SELECT revision, sha256, origin, targets FROM config_revisions ORDER BY revision DESC LIMIT 1',
    );
    if (!row) return null;
    return {
      revision: Number(row['revision']),
      sha256: String(row['sha256']),
      origin: String(row['origin']),
      targets: jsonColumn<TargetConfig[]>(row['targets']).map(withBodyDefault),
    };
  }

  private write(targets: TargetConfig[], sha: string): Promise<ConfigRevision> {
    return this.state.sql.transaction(async (tx) => {
      const [row] = await tx.query<{ revision: string | number }>(
        'INSERT INTO config_revisions (sha256, targets, origin) VALUES ($1, $2, $3) RETURNING revision',
        [sha, JSON.stringify(targets), this.state.node],
      );
      await this.state.notify(tx, 'config');
      this.logger.info({ revision: Number(row!.revision) }, 'config revision written to the shared store');
      return { revision: Number(row!.revision), sha256: sha, origin: this.state.node, targets };
    });
  }

  private serve(revision: ConfigRevision): void {
    this.served = revision.revision;
    this.logger.info(
      { revision: revision.revision, origin: revision.origin },
      'serving the fleet config revision',
    );
    this.onRevision(revision);
  }
}
