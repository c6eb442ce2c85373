// Dependencies point one way. Product folders form layers; a module may import its own folder and
// any folder in a lower layer, never a sibling in its own layer or anything above it. No import
// cycles between files. docs/architecture.md draws the same picture.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../lib/tools.ts';

/** Top to bottom. Folders in one row are siblings and may not import each other. */
const LAYERS: readonly (readonly string[])[] = [
  ['cli'],
  ['gateway'],
  ['api'],
  ['authz-server', 'audit', 'xds'],
  ['identity'],
  ['fleet', 'pki'],
  ['config'],
  ['store'],
  ['telemetry'],
  ['contracts'],
  ['lib'],
];

const layerOf = new Map<string, number>();
LAYERS.forEach((row, i) => {
  for (const folder of row) layerOf.set(folder, i);
});

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'testdata' || name === 'node_modules') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (/\.(ts|mjs|js)$/.test(name)) out.push(p);
  }
  return out;
}

const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)'(\.[^']+)'/gm;

/** Relative imports of every product file, as project-relative paths. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const folder of layerOf.keys()) {
    for (const file of sourceFiles(join(PROJECT_ROOT, folder))) {
      const src = readFileSync(file, 'utf8');
      const deps: string[] = [];
      for (const m of src.matchAll(IMPORT)) {
        deps.push(relative(PROJECT_ROOT, resolve(dirname(file), m[1] as string)));
      }
      graph.set(relative(PROJECT_ROOT, file), deps);
    }
  }
  return graph;
}

const top = (p: string) => p.split('/')[0] as string;

/** Strongly connected components with more than one file (Tarjan). */
function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

describe('layering', () => {
  const graph = importGraph();

  it('finds the product folders', () => {
    expect(graph.size).toBeGreaterThan(50);
  });

  it('imports only point down the layers', () => {
    const wrong: string[] = [];
    for (const [file, deps] of graph) {
      const from = layerOf.get(top(file))!;
      for (const dep of deps) {
        const folder = top(dep);
        if (folder === top(file)) continue;
        const to = layerOf.get(folder);
        if (to === undefined) wrong.push(`${file} → ${dep} (not a product folder)`);
        else if (to <= from) wrong.push(`${file} → ${dep} (${top(file)} may not import ${folder})`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('has no import cycles', () => {
    expect(cycles(graph)).toEqual([]);
  });

  it('every product folder has a layer', () => {
    const folders = readdirSync(PROJECT_ROOT).filter(
      (n) =>
        statSync(join(PROJECT_ROOT, n)).isDirectory() &&
        !n.startsWith('.') &&
        sourceFiles(join(PROJECT_ROOT, n)).length > 0,
    );
    const known = new Set([
      ...layerOf.keys(),
      'test',
      'bench',
      'scripts',
      'examples',
      'node_modules',
      'policies',
      'dist', // the production build (npm run build), git-ignored
    ]);
    expect(folders.filter((f) => !known.has(f))).toEqual([]);
  });
});
