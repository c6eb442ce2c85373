// docs/architecture.md stays true to the tree: every folder it names exists, and every folder of the
// product (and every top-level folder) is named in it. The walks it gives stay at five files each.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../lib/tools.ts';

const doc = readFileSync(join(PROJECT_ROOT, 'docs/architecture.md'), 'utf8');

/** Folders of the product, whose every subfolder the doc must name; the rest are named at top level. */
const PRODUCT = [
  'api',
  'audit',
  'authz-server',
  'cli',
  'config',
  'contracts',
  'fleet',
  'gateway',
  'identity',
  'lib',
  'pki',
  'store',
  'telemetry',
  'xds',
];

/** Folders holding tracked files, from git (what a fresh clone has). */
function trackedFolders(): string[] {
  const files = execFileSync('git', ['ls-files'], { cwd: PROJECT_ROOT, encoding: 'utf8' }).split('\n');
  const folders = new Set<string>();
  for (const f of files) {
    if (!f.includes('/')) continue;
    const top = f.slice(0, f.indexOf('/'));
    if (top.startsWith('.')) continue;
    folders.add(top);
    if (!PRODUCT.includes(top)) continue;
    for (let d = dirname(f); d !== top && d !== '.'; d = dirname(d)) {
      // Golden files and migrations are named through their folder; deeper data folders are not code.
      folders.add(d);
    }
  }
  return [...folders].sort();
}

/** Every `folder/` in a code span of the doc. */
const named = [...doc.matchAll(/`([a-z0-9][a-z0-9._/-]*)\/`/g)].map((m) => m[1] as string);

describe('docs/architecture.md', () => {
  it('names only folders that exist', () => {
    expect(named.length).toBeGreaterThan(20);
    expect(named.filter((f) => !existsSync(join(PROJECT_ROOT, f)))).toEqual([]);
  });

  it('names every folder of the tree', () => {
    const missing = trackedFolders().filter((f) => !named.includes(f));
    expect(missing).toEqual([]);
  });

  it('walks one request and one config change through at most five files each', () => {
    for (const heading of ['## One request, five files', '## One config change, five files']) {
      const start = doc.indexOf(heading);
      expect(start, heading).toBeGreaterThan(-1);
      const section = doc.slice(start, doc.indexOf('\n## ', start + heading.length));
      const steps = [...section.matchAll(/^\d+\. \*\*`([^`]+)`\*\*/gm)].map((m) => m[1] as string);
      expect(steps.length, heading).toBeGreaterThan(0);
      expect(steps.length, heading).toBeLessThanOrEqual(5);
      for (const file of steps) expect(existsSync(join(PROJECT_ROOT, file)), file).toBe(true);
    }
  });
});
