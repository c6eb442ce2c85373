// Config file → IR → Envoy resources → validated snapshot → ADS. Reloads are coalesced; a config or
// translation error keeps the last good snapshot serving and is reported with file, line and field.
// The file is watched through symlink swaps (a Kubernetes ConfigMap's `..data`); an edit to a section
// applied only at start-up (identity, audit, access, addresses…) is reported in the log and /status,
// and the running value stays in force until a restart (config/reload-plan.ts).
import type { Logger } from 'pino';
import { ConfigError } from '../config/errors.ts';
import { loadConfig } from '../config/load-config.ts';
import { describeRestartNeeded, type RestartNeeded, reloadPlan } from '../config/reload-plan.ts';
import type { Config } from '../config/types.ts';
import type { ConfigRevision, SharedTargets } from '../fleet/config-revisions.ts';
import { SourceWatch } from '../lib/source-watch.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { buildIr } from '../xds/ir/build-ir.ts';
import type { AdsServer } from '../xds/server/ads-server.ts';
import type { XdsSnapshot } from '../xds/server/snapshot.ts';
import { TranslateError } from '../xds/translate/errors.ts';
import { translate } from '../xds/translate/translate.ts';

export interface PublishOutcome {
  ok: boolean;
  version: string | null;
  /** Human-readable problems (`file:line: path: message`), empty on success. */
  errors: string[];
}

/** Builds the snapshot for a config; pure apart from the strict proto encoding it runs. */
export function snapshotFor(
  config: Config,
): { ok: true; snapshot: XdsSnapshot } | { ok: false; errors: string[] } {
  try {
    return { ok: true, snapshot: translate(buildIr(config)).snapshot };
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, errors: [err.message] };
    if (err instanceof TranslateError) return { ok: false, errors: [err.message] };
    throw err;
  }
}

/** What /status shows of the config: the last publish, and edits that wait for a restart. */
export interface PublisherStatus extends PublishOutcome {
  restart_needed: RestartNeeded[];
}

export class XdsPublisher {
  /** The last config published: a fleet revision replaces its targets, keeping this node's own parts. */
  private base: Config | null = null;
  /** The config this process started with: its restart-only sections stay in force. */
  private running: Config | null = null;
  private fleet: SharedTargets | null = null;
  private watcher: SourceWatch | null = null;
  private closed = false;
  private last: PublishOutcome = { ok: false, version: null, errors: ['nothing published yet'] };
  private restartNeeded: RestartNeeded[] = [];

  constructor(
    private readonly ads: AdsServer,
    private readonly logger: Logger,
    /** Runs with each config published (the authz server follows its targets' credentials). */
    private readonly onConfig?: (config: Config) => void,
    private readonly metrics?: Pick<Metrics, 'configReload'>,
  ) {}

  status(): PublisherStatus {
    return { ...this.last, restart_needed: this.restartNeeded };
  }

  publish(config: Config): PublishOutcome {
    const built = snapshotFor(config);
    if (!built.ok) {
      this.last = { ok: false, version: this.ads.status().version, errors: built.errors };
      return this.last;
    }
    this.ads.setSnapshot(built.snapshot);
    this.base = config;
    this.running ??= config;
    // Also when the Envoy resources are unchanged: credential references never reach Envoy.
    this.onConfig?.(config);
    this.last = { ok: true, version: built.snapshot.version, errors: [] };
    return this.last;
  }

  /** Shares targets with the fleet: file changes are proposed, newer fleet revisions served. */
  joinFleet(fleet: SharedTargets): void {
    this.fleet = fleet;
  }

  /** Serves a fleet revision's targets with this node's listeners and addresses. */
  publishRevision(r: ConfigRevision): PublishOutcome {
    if (!this.base) return this.last;
    const outcome = this.publish({ ...this.base, targets: r.targets });
    if (outcome.ok)
      this.logger.info({ revision: r.revision, version: outcome.version }, 'fleet config published');
    else
      this.logger.error(
        { revision: r.revision, errors: outcome.errors },
        'fleet config revision rejected here; the last good config keeps serving',
      );
    return outcome;
  }

  async reloadFrom(path: string): Promise<PublishOutcome> {
    let config: Config;
    try {
      config = await loadConfig(path);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.last = { ok: false, version: this.ads.status().version, errors: [message] };
      this.logger.error(
        { file: path, errors: this.last.errors },
        'config rejected; the last good config keeps serving',
      );
      this.metrics?.configReload(false);
      return this.last;
    }
    if (this.running) config = this.planRestart(path, config);
    if (this.fleet) config = this.fleet.merge(config);
    const before = this.ads.status().version;
    const outcome = this.publish(config);
    this.metrics?.configReload(outcome.ok);
    if (!outcome.ok) {
      this.logger.error(
        { file: path, errors: outcome.errors },
        'config rejected; the last good config keeps serving',
      );
    } else {
      await this.fleet
        ?.propose(config.targets)
        .catch((err: unknown) =>
          this.logger.error(
            { err: err instanceof Error ? err.message : String(err) },
            'config served here but not written to the shared store; other nodes keep the previous revision',
          ),
        );
      if (outcome.version !== before)
        this.logger.info({ file: path, version: outcome.version }, 'config published');
    }
    return outcome;
  }

  /** The edit with restart-only sections as running; what waits for a restart is reported once. */
  private planRestart(path: string, edited: Config): Config {
    const plan = reloadPlan(this.running!, edited);
    const was = describeRestartNeeded(this.restartNeeded);
    this.restartNeeded = plan.restartNeeded;
    const now = describeRestartNeeded(plan.restartNeeded);
    if (now && now !== was)
      this.logger.warn(
        { file: path, restart_needed: plan.restartNeeded },
        `config: ${now} changed; applied at the next restart, the running values stay in force until then`,
      );
    return plan.apply;
  }

  /**
   * Watches the config file (through symlinks and ConfigMap `..data` swaps); a change of its content
   * reloads it. Bursts of writes (editors save in several steps) become one reload.
   */
  async watchFile(path: string, debounceMs = 200): Promise<void> {
    const watcher = await SourceWatch.start({
      path,
      kind: 'file',
      debounceMs,
      onChange: () => void this.reloadFrom(path),
      onError: (err) => this.logger.error({ file: path, err: err.message }, 'config watch failed'),
    });
    if (this.closed) watcher.close();
    else this.watcher = watcher;
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
  }
}
