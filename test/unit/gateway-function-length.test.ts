// Start-up and the HTTP API stay readable: no function under gateway/ or api/ longer than 80 lines
// (issue 10). Functions are found with the TypeScript parser — declarations, methods, arrows and
// function expressions — and measured from their first to their last line.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../lib/tools.ts';

const FOLDERS = ['gateway', 'api'];
const MAX_LINES = 80;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return files(p);
    return name.endsWith('.ts') ? [p] : [];
  });
}

function longFunctions(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out: string[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const first = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const last = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      const lines = last - first + 1;
      if (lines > MAX_LINES) {
        const name = (node as { name?: ts.Node }).name?.getText(source) ?? '(anonymous)';
        out.push(`${relative(PROJECT_ROOT, file)}:${first + 1} ${name}: ${lines} lines`);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

describe(`functions under ${FOLDERS.join(', ')} are at most ${MAX_LINES} lines`, () => {
  for (const folder of FOLDERS) {
    it(folder, () => {
      const found = files(join(PROJECT_ROOT, folder)).flatMap(longFunctions);
      expect(found).toEqual([]);
    });
  }
});
