// Holds the policy the server enforces and swaps it atomically. The source is a built bundle
// (.tar.gz) or a directory of Rego that is compiled to WASM with the OPA CLI. A reload that fails
// (bad Rego, bad bundle, missing entrypoint) is reported with file:line and the last good policy
// keeps serving; there is never a moment without a policy once one has loaded.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BundleError, describeThrown } from '../../contracts/errors.ts';
import { SourceWatch } from '../../lib/source-watch.ts';
import { readBundle } from './bundle-reader.ts';
import { buildWasmBundle } from './opa-runner.ts';
import { PolicyEngine } from './policy-engine.ts';

export type PolicySource =
  | { kind: 'bundle'; path: string; entrypoint: string }
  | { kind: 'dir'; path: string; entrypoint: string; capabilities?: string; ignore?: string[] };

export interface PolicyLoadError {
  message: string;
  errors: { file?: string; line?: number; column?: number; message: string }[];
  at: Date;
}

export interface PolicySnapshot {
  engine: PolicyEngine;
  revision: string;
  loadedAt: Date;
}

export interface PolicyStoreEvents {
  onLoaded?(snapshot: PolicySnapshot): void;
  onError?(error: PolicyLoadError): void;
}

export class PolicyStore {
  private snapshot: PolicySnapshot | null = null;
  private lastErrorValue: PolicyLoadError | null = null;
  private watcher: Promise<SourceWatch | null> | null = null;
  private reloading: Promise<boolean> | null = null;
  private pendingReload = false;

  constructor(
    readonly source: PolicySource,
    private readonly events: PolicyStoreEvents = {},
  ) {}

  /** The policy to evaluate with, read once per request. */
  current(): PolicySnapshot | null {
    return this.snapshot;
  }

  lastError(): PolicyLoadError | null {
    return this.lastErrorValue;
  }

  /** Loads (or reloads) the policy; resolves true when a new snapshot is serving. */
  reload(): Promise<boolean> {
    if (this.reloading) {
      // Coalesce: one more reload after the running one picks up every change made meanwhile.
      this.pendingReload = true;
      return this.reloading;
    }
    this.reloading = this.loadOnce().finally(() => {
      this.reloading = null;
      if (this.pendingReload) {
        this.pendingReload = false;
        void this.reload();
      }
    });
    return this.reloading;
  }

  /**
   * Watches the source and reloads when its content changes (debounced), following symlink swaps
   * (a Kubernetes ConfigMap's `..data`). Resolves once the watch is set up.
   */
  watch(debounceMs = 150): Promise<void> {
    if (!this.watcher) {
      const { path, kind } = this.source;
      this.watcher = SourceWatch.start({
        path,
        kind: kind === 'dir' ? 'dir' : 'file',
        debounceMs,
        onChange: () => void this.reload(),
        onError: (err) => this.fail(`watching ${path} failed: ${err.message}`, []),
      }).catch((err: unknown) => {
        this.fail(`watching ${path} failed: ${describeThrown(err)}`, []);
        return null;
      });
    }
    return this.watcher.then(() => undefined);
  }

  close(): void {
    const w = this.watcher;
    this.watcher = null;
    void w?.then((s) => s?.close());
  }

  private fail(message: string, errors: PolicyLoadError['errors']): false {
    this.lastErrorValue = { message, errors, at: new Date() };
    this.events.onError?.(this.lastErrorValue);
    return false;
  }

  private async loadOnce(): Promise<boolean> {
    const { source } = this;
    let bytes: Buffer;
    let tmp: string | null = null;
    try {
      if (source.kind === 'bundle') {
        try {
          bytes = await readFile(source.path);
        } catch (err) {
          return this.fail(`cannot read bundle ${source.path}: ${describeThrown(err)}`, [
            { file: source.path, message: describeThrown(err) },
          ]);
        }
      } else {
        tmp = await mkdtemp(join(tmpdir(), 'chaperone-build-'));
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
          return this.fail(`policy build failed: ${where}${first?.message ?? 'unknown error'}`, built.errors);
        }
        bytes = await readFile(built.bundlePath);
      }
      const bundle = readBundle(bytes, source.path);
      const engine = await PolicyEngine.load(bundle, source.entrypoint);
      this.snapshot = { engine, revision: bundle.revision, loadedAt: new Date() };
      this.lastErrorValue = null;
      this.events.onLoaded?.(this.snapshot);
      return true;
    } catch (err) {
      const loc = err instanceof BundleError ? err.location : {};
      return this.fail(`policy load failed: ${describeThrown(err)}`, [
        { ...loc, message: describeThrown(err) },
      ]);
    } finally {
      if (tmp) await rm(tmp, { recursive: true, force: true });
    }
  }
}
