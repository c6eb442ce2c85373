// Golden files: each case's expected outputs are committed next to its input, and a test compares what
// the code produces now with them. `UPDATE_GOLDEN=1` (or `tsx scripts/update-golden.ts`) rewrites the
// expected files that differ and removes the ones no case produces any more (orphans, or the other
// kind of output of a case that now fails or now succeeds); review the diff, then commit it.
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const UPDATING = process.env['UPDATE_GOLDEN'] === '1';

/** First line of a generated file: where it comes from and how to regenerate it. */
export function generatedHeader(source: string): string {
  return `# Generated from ${source} by UPDATE_GOLDEN=1 (scripts/update-golden.ts); do not edit.\n`;
}

export class GoldenDir {
  constructor(
    readonly dir: string,
    /** Suffixes of the files this directory's tests generate (e.g. `.out.yaml`, `.error.txt`). */
    private readonly outputSuffixes: readonly string[],
  ) {}

  /** Names of the files ending in `suffix`, without it, sorted: the cases of a stage. */
  cases(suffix: string): string[] {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith(suffix))
      .map((f) => f.slice(0, -suffix.length))
      .sort();
  }

  path(file: string): string {
    return join(this.dir, file);
  }

  read(file: string): string | undefined {
    const path = this.path(file);
    return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
  }

  /** The committed text of `file` (undefined when missing), rewritten to `actual` first when updating. */
  expected(file: string, actual: string): string | undefined {
    if (UPDATING && this.read(file) !== actual) writeFileSync(this.path(file), actual);
    return this.read(file);
  }

  /**
   * Generated files that are not in `produced` (file names): removed when updating, so the answer is
   * then empty; otherwise listed, for the test to fail on.
   */
  orphans(produced: Iterable<string>): string[] {
    const keep = new Set(produced);
    const stale = readdirSync(this.dir)
      .filter((f) => this.outputSuffixes.some((s) => f.endsWith(s)) && !keep.has(f))
      .sort();
    if (!UPDATING) return stale;
    for (const f of stale) rmSync(this.path(f));
    return [];
  }
}
