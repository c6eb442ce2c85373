// Code read most stays readable: no function (method, arrow or nested function, signature included)
// over 80 lines anywhere in the authz server (the Check path, protocol decoders, host builtins, masking)
// or in the xDS compiler and server.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../lib/tools.ts';

const MAX_LINES = 80;
const ROOTS = ['authz-server', 'xds', 'gateway', 'api'];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return name.endsWith('.ts') ? [p] : [];
  });
}

/** "file:line name (n lines)" for every function longer than MAX_LINES. */
function longFunctions(file: string): string[] {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const out: string[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const lines = node.getText(sf).split('\n').length;
      if (lines > MAX_LINES) {
        const at = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
        const name = node.name?.getText(sf) ?? '(anonymous)';
        out.push(`${relative(PROJECT_ROOT, file)}:${at} ${name} (${lines} lines)`);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

describe(`functions are at most ${MAX_LINES} lines`, () => {
  for (const root of ROOTS) {
    it(root, () => {
      const files = sourceFiles(join(PROJECT_ROOT, root));
      expect(files.length).toBeGreaterThan(5);
      expect(files.flatMap(longFunctions)).toEqual([]);
    });
  }
});
