// Holds the policy the server enforces and swaps it atomically. A policy comes from the node's own
// source — a built bundle (.tar.gz) or a directory of Rego compiled to WASM with the OPA CLI — or is
// offered by a fleet source (a revision published to the shared store, a bundle server). A load that
// fails (bad Rego, bad bundle, missing entrypoint, a signature that does not verify) is reported with
// its code and position, and the last good policy keeps serving; there is never a moment without a
// policy once one has loaded. Loads run one at a time, in the order they were asked for.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BundleError, BundleSignatureError, describeThrown } from '../../contracts/errors.ts';
import { SourceWatch } from '../../lib/source-watch.ts';
import { readBundleArchive } from './bundle-archive.ts';
import type { BundleVerification } from './bundle-keys.ts';
import { bundleFromFiles } from './bundle-reader.ts';
import { verifyBundleSignature } from './bundle-signing.ts';
import { buildWasmBundle } from './opa-runner.ts';
import { PolicyEngine } from './policy-engine.ts';

export type PolicySource =
  | { kind: 'bundle'; path: string; entrypoint: string }
  | { kind: 'dir'; path: string; entrypoint: string; capabilities?: string; ignore?: string[] }
  /** No source of its own: only what is offered (a shadow revision from the store); `path` names it. */
  | { kind: 'offered'; path: string; entrypoint: string };

export type PolicyLoadCode = 'ERR_BUNDLE_INVALID' | 'ERR_BUNDLE_SIGNATURE' | 'ERR_BUNDLE_SOURCE';

export interface PolicyLoadError {
  code: PolicyLoadCode;
  message: string;
  errors: { file?: string; line?: number; column?: number; message: string }[];
  /** Where the refused policy came from (`dir policies`, `store r7`, `url https://…`). */
  origin: string;
  at: Date;
}

export interface PolicySnapshot {
  engine: PolicyEngine;
  /** What decisions record: the bundle's hash prefix, or the fleet revision id (`r7`). */
  revision: string;
  origin: string;
  loadedAt: Date;
  /** The key that verified the bundle's signature, if one was checked. */
  verifiedBy: string | null;
}

export interface PolicyStoreEvents {
  onLoaded?(snapshot: PolicySnapshot): void;
  onError?(error: PolicyLoadError): void;
}

export interface PolicyStoreOptions {
  /** With keys configured, every bundle (not a directory built here) must carry a valid signature. */
  verification?: BundleVerification | null;
}

/** A bundle from outside this node's own source. */
export interface OfferedBundle {
  bytes: Buffer;
  /** Recorded on decisions instead of the bundle's hash (the fleet revision id). */
  revision?: string;
  origin: string;
}

const errorStatus = (e: PolicyLoadError) => ({
  code: e.code,
  message: e.message,
  origin: e.origin,
  at: e.at.toISOString(),
});

class LoadFailure {
  constructor(readonly error: Omit<PolicyLoadError, 'at' | 'origin'>) {}
}

export class PolicyStore {
  private snapshot: PolicySnapshot | null = null;
  private lastErrorValue: PolicyLoadError | null = null;
  private watcher: Promise<SourceWatch | null> | null = null;
  private reloading: Promise<boolean> | null = null;
  private pendingReload = false;
  private queue: Promise<unknown> = Promise.resolve();
  private refused = 0;
  /** The last refused policy, kept after a later success (status shows what the fleet failed to get). */
  private lastRefused: PolicyLoadError | null = null;

  constructor(
    readonly source: PolicySource,
    private readonly events: PolicyStoreEvents = {},
    private readonly options: PolicyStoreOptions = {},
  ) {}

  /** The policy to evaluate with, read once per request. */
  current(): PolicySnapshot | null {
    return this.snapshot;
  }

  lastError(): PolicyLoadError | null {
    return this.lastErrorValue;
  }

  status(): Record<string, unknown> {
    const s = this.snapshot;
    const e = this.lastErrorValue;
    return {
      revision: s?.revision ?? null,
      origin: s?.origin ?? null,
      loaded_at: s?.loadedAt.toISOString() ?? null,
      verified_by: s?.verifiedBy ?? null,
      signatures_required: !!this.options.verification,
      refused: this.refused,
      error: e ? errorStatus(e) : null,
      last_refused: this.lastRefused ? errorStatus(this.lastRefused) : null,
    };
  }

  /** Loads (or reloads) the node's own source; resolves true when a new snapshot is serving. */
  reload(): Promise<boolean> {
    if (this.reloading) {
      // Coalesce: one more reload after the running one picks up every change made meanwhile.
      this.pendingReload = true;
      return this.reloading;
    }
    this.reloading = this.serial(() => this.loadLocal()).finally(() => {
      this.reloading = null;
      if (this.pendingReload) {
        this.pendingReload = false;
        void this.reload();
      }
    });
    return this.reloading;
  }

  /** Serves a bundle from a fleet source once it loads (and verifies); resolves true when it serves. */
  offer(b: OfferedBundle): Promise<boolean> {
    return this.serial(() => this.attempt(b.origin, () => this.fromBytes(b.bytes, b.origin, b.revision)));
  }

  /** A fleet source failed before it had a bundle to offer (unreachable server, store read error). */
  reportSourceError(origin: string, message: string): void {
    this.fail({ code: 'ERR_BUNDLE_SOURCE', message, errors: [{ message }] }, origin, false);
  }

  /**
   * Watches the node's own source and reloads when its content changes (debounced), following symlink
   * swaps (a Kubernetes ConfigMap's `..data`). Resolves once the watch is set up.
   */
  watch(debounceMs = 150): Promise<void> {
    if (this.source.kind === 'offered') return Promise.resolve();
    if (!this.watcher) {
      const { path, kind } = this.source;
      const failed = (message: string) =>
        this.fail({ code: 'ERR_BUNDLE_INVALID', message, errors: [] }, this.origin(), false);
      this.watcher = SourceWatch.start({
        path,
        kind: kind === 'dir' ? 'dir' : 'file',
        debounceMs,
        onChange: () => void this.reload(),
        onError: (err) => failed(`watching ${path} failed: ${err.message}`),
      }).catch((err: unknown) => {
        failed(`watching ${path} failed: ${describeThrown(err)}`);
        return null;
      });
    }
    return this.watcher.then(() => undefined);
  }

  /** Stops following the node's own source (a fleet source governs from now on). */
  unwatch(): void {
    const w = this.watcher;
    this.watcher = null;
    void w?.then((s) => s?.close());
  }

  close(): void {
    this.unwatch();
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private origin(): string {
    return `${this.source.kind} ${this.source.path}`;
  }

  private fail(error: Omit<PolicyLoadError, 'at' | 'origin'>, origin: string, refused: boolean): false {
    this.lastErrorValue = { ...error, origin, at: new Date() };
    if (refused) {
      this.refused++;
      this.lastRefused = this.lastErrorValue;
    }
    this.events.onError?.(this.lastErrorValue);
    return false;
  }

  private async attempt(origin: string, load: () => Promise<PolicySnapshot>): Promise<boolean> {
    try {
      this.snapshot = await load();
      this.lastErrorValue = null;
      this.events.onLoaded?.(this.snapshot);
      return true;
    } catch (err) {
      if (err instanceof LoadFailure) return this.fail(err.error, origin, true);
      const code = err instanceof BundleSignatureError ? 'ERR_BUNDLE_SIGNATURE' : 'ERR_BUNDLE_INVALID';
      const loc = err instanceof BundleError ? err.location : {};
      const what = code === 'ERR_BUNDLE_SIGNATURE' ? 'policy refused' : 'policy load failed';
      const message = `${what} (${origin}): ${describeThrown(err)}`;
      return this.fail({ code, message, errors: [{ ...loc, message: describeThrown(err) }] }, origin, true);
    }
  }

  private async fromBytes(bytes: Buffer, source: string, revision?: string): Promise<PolicySnapshot> {
    const files = readBundleArchive(bytes, source);
    const verification = this.options.verification;
    const verifiedBy = verification ? (await verifyBundleSignature(files, verification)).keyid : null;
    const bundle = bundleFromFiles(files, bytes, source);
    if (revision) bundle.revision = revision;
    const engine = await PolicyEngine.load(bundle, this.source.entrypoint);
    return { engine, revision: bundle.revision, origin: source, loadedAt: new Date(), verifiedBy };
  }

  private loadLocal(): Promise<boolean> {
    const { source } = this;
    const origin = this.origin();
    if (source.kind === 'offered') {
      const message = `${source.path} has no source of its own to reload`;
      return Promise.resolve(this.fail({ code: 'ERR_BUNDLE_SOURCE', message, errors: [] }, origin, false));
    }
    if (source.kind === 'bundle') {
      return this.attempt(origin, async () => {
        let bytes: Buffer;
        try {
          bytes = await readFile(source.path);
        } catch (err) {
          const message = `cannot read bundle ${source.path}: ${describeThrown(err)}`;
          throw new LoadFailure({
            code: 'ERR_BUNDLE_INVALID',
            message,
            errors: [{ file: source.path, message: describeThrown(err) }],
          });
        }
        return this.fromBytes(bytes, origin);
      });
    }
    return this.attempt(origin, () => this.buildDir(source, origin));
  }

  /** A directory compiled here is the operator's own source: it is not signed, so not verified. */
  private async buildDir(
    source: Extract<PolicySource, { kind: 'dir' }>,
    origin: string,
  ): Promise<PolicySnapshot> {
    const tmp = await mkdtemp(join(tmpdir(), 'chaperone-build-'));
    try {
      const built = await buildWasmBundle({
        dir: source.path,
        entrypoints: [source.entrypoint],
        out: join(tmp, 'bundle.tar.gz'),
        ...(source.capabilities ? { capabilities: source.capabilities } : {}),
        ...(source.ignore ? { ignore: source.ignore } : {}),
      });
      if (!built.ok) {
        const first = built.errors[0];
        const where = first?.file ? `${first.file}:${first.line ?? 0}:${first.column ?? 0}: ` : '';
        const message = `policy build failed: ${where}${first?.message ?? 'unknown error'}`;
        throw new LoadFailure({ code: 'ERR_BUNDLE_INVALID', message, errors: built.errors });
      }
      const bytes = await readFile(built.bundlePath);
      const bundle = bundleFromFiles(readBundleArchive(bytes, source.path), bytes, source.path);
      const engine = await PolicyEngine.load(bundle, source.entrypoint);
      return { engine, revision: bundle.revision, origin, loadedAt: new Date(), verifiedBy: null };
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }
}
