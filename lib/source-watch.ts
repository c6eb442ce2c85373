// Watches a config file or a policy directory the ways operators change them: an editor that saves by
// rename, `git checkout`, a file that is a symlink to somewhere else, and a Kubernetes ConfigMap mount,
// where the kubelet writes a new `..<timestamp>` directory and swaps the `..data` symlink to it (the
// files the program reads are symlinks through `..data`; no file the program names is ever written).
//
// Why not `fs.watch(file)` or `fs.watch(dir, { recursive })`: a file watch follows one inode and goes
// blind after a rename or a symlink swap; a name filter on events misses `..data`; and Node 20's
// recursive watch on Linux polls files with stat. Instead: a plain (inotify) watch on every directory the
// source lives in — its own directories and, for each symlink on the way, the directory of its target —
// and on any event, after a quiet period, a fingerprint of the source's content. `onChange` runs only
// when the fingerprint differs, so a touch, a swap to identical content or a write elsewhere in a
// watched directory is no change. The watched directories are re-read after each check, so a directory
// that appears (or a `..data` that now points elsewhere) is watched from then on.
import { createHash } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { lstat, readdir, readFile, readlink, realpath, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

export interface SourceWatchOptions {
  /** The file or directory to watch (a symlink is followed). */
  path: string;
  kind: 'file' | 'dir';
  /** Quiet period after the last event before the fingerprint is taken. Default 150 ms. */
  debounceMs?: number;
  /** Runs when the content changed (not for events that leave it as it was). */
  onChange(): void;
  /** A directory that cannot be watched or read (reported; the watch goes on with the rest). */
  onError?(err: Error): void;
}

/**
 * Names that are not part of a source directory: dot-names (Kubernetes' `..data` and `..<timestamp>`,
 * `.git`, editor swap files) and editor backups. The policy build ignores the same (`.*`).
 */
export const isHiddenName = (name: string): boolean => name.startsWith('.') || name.endsWith('~');

/** Symlinks followed in one chain before giving up (as the kernel's ELOOP limit). */
const MAX_LINKS = 40;

interface Scan {
  fingerprint: string;
  /** Real paths of the directories to watch. */
  dirs: Set<string>;
}

/** The directory of `p` and of each symlink target on the way to the real file. */
async function linkDirs(p: string, dirs: Set<string>): Promise<void> {
  let current = resolve(p);
  for (let i = 0; i < MAX_LINKS; i++) {
    dirs.add(await realpath(dirname(current)).catch(() => dirname(current)));
    const st = await lstat(current).catch(() => null);
    if (!st?.isSymbolicLink()) return;
    current = resolve(dirname(current), await readlink(current));
  }
}

async function scanFile(path: string): Promise<Scan> {
  const dirs = new Set<string>();
  await linkDirs(path, dirs);
  const content = await readFile(path).catch((err: NodeJS.ErrnoException) => `missing:${err.code}`);
  return { fingerprint: createHash('sha256').update(content).digest('hex'), dirs };
}

/** Every file of the tree (symlinks followed, hidden names skipped) hashed with its relative path. */
async function scanDir(root: string): Promise<Scan> {
  const hash = createHash('sha256');
  const dirs = new Set<string>();
  const seen = new Set<string>();
  const walk = async (dir: string, rel: string): Promise<void> => {
    const real = await realpath(dir).catch(() => null);
    if (real === null || seen.has(real)) return; // gone, or a symlink loop
    seen.add(real);
    dirs.add(real);
    const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => !isHiddenName(n)).sort();
    for (const name of names) {
      const p = join(dir, name);
      const st = await stat(p).catch(() => null);
      if (st?.isDirectory()) await walk(p, `${rel}${name}/`);
      else if (st?.isFile()) {
        await linkDirs(p, dirs);
        hash.update(`${rel}${name}\0`);
        hash.update(await readFile(p).catch(() => 'unreadable'));
        hash.update('\0');
      }
    }
  };
  await walk(resolve(root), '');
  return { fingerprint: hash.digest('hex'), dirs };
}

export class SourceWatch {
  private readonly watchers = new Map<string, FSWatcher>();
  private fingerprint = '';
  private timer: NodeJS.Timeout | null = null;
  private checking: Promise<void> | null = null;
  private again = false;
  private closed = false;

  private constructor(private readonly o: SourceWatchOptions) {}

  /** Takes the first fingerprint and starts watching; changes from then on call `onChange`. */
  static async start(o: SourceWatchOptions): Promise<SourceWatch> {
    const w = new SourceWatch(o);
    const first = await w.scan();
    w.fingerprint = first.fingerprint;
    w.rewatch(first.dirs);
    return w;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  private scan(): Promise<Scan> {
    return this.o.kind === 'file' ? scanFile(this.o.path) : scanDir(this.o.path);
  }

  private rewatch(dirs: Set<string>): void {
    for (const [dir, w] of this.watchers) {
      if (dirs.has(dir)) continue;
      w.close();
      this.watchers.delete(dir);
    }
    for (const dir of dirs) {
      if (this.watchers.has(dir)) continue;
      try {
        const w = watch(dir, { persistent: false }, () => this.poke());
        // A watched directory that is removed (an old `..<timestamp>`) ends its watch; the next check
        // drops it from the set.
        w.on('error', () => this.poke());
        this.watchers.set(dir, w);
      } catch (err) {
        // ENOENT: a directory on the symlink chain is gone already; the next event re-reads the chain.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
          this.o.onError?.(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }

  private poke(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.check();
    }, this.o.debounceMs ?? 150);
  }

  /** One check at a time; events during a check cause one more after it. */
  private async check(): Promise<void> {
    if (this.checking) {
      this.again = true;
      return;
    }
    this.checking = (async () => {
      const next = await this.scan();
      if (this.closed) return;
      this.rewatch(next.dirs);
      if (next.fingerprint === this.fingerprint) return;
      this.fingerprint = next.fingerprint;
      this.o.onChange();
    })()
      .catch((err: unknown) => this.o.onError?.(err instanceof Error ? err : new Error(String(err))))
      .finally(() => {
        this.checking = null;
        if (this.again) {
          this.again = false;
          this.poke();
        }
      });
  }
}
