// Functions stay short enough to read at a glance where the code is read most: no function (method,
// arrow or nested function, whole body included) over 80 lines in the folders listed here.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('../../', import.meta.url).pathname;
const MAX_LINES = 80;
const FOLDERS = ['xds'];

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) return sources(rel);
    return e.name.endsWith('.ts') ? [rel] : [];
  });
}

/** `file:line name (n lines)` for every function longer than the limit. */
function longFunctions(file: string): string[] {
  const src = ts.createSourceFile(file, readFileSync(join(ROOT, file), 'utf8'), ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const first = src.getLineAndCharacterOfPosition(node.getStart(src)).line;
      const last = src.getLineAndCharacterOfPosition(node.end).line;
      const name = node.name && ts.isIdentifier(node.name) ? node.name.text : '<anonymous>';
      if (last - first + 1 > MAX_LINES)
        found.push(`${file}:${first + 1} ${name} (${last - first + 1} lines)`);
    }
    ts.forEachChild(node, visit);
  };
  visit(src);
  return found;
}

describe(`no function over ${MAX_LINES} lines`, () => {
  it.each(FOLDERS)('%s/', (folder) => {
    const files = sources(folder);
    expect(files.length).toBeGreaterThan(5);
    expect(files.flatMap(longFunctions)).toEqual([]);
  });
});
