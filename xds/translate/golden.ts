// Golden cases of the config → IR → Envoy pipeline: `testdata/<case>.in.yaml` renders to
// `<case>.out.yaml` (the Envoy resources) or, when the config is rejected, `<case>.error.txt` (the
// error message). `tsx scripts/update-golden.ts` (or `UPDATE_GOLDEN=1 npx vitest run
// test/unit/translate-golden.test.ts`) rewrites them and removes orphans.
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import { ConfigError } from '../../config/errors.ts';
import { parseConfig } from '../../config/load-config.ts';
import { buildIr } from '../ir/build-ir.ts';
import type { EnvoyResourcesJson } from '../server/snapshot.ts';
import { TranslateError } from './errors.ts';
import { translate } from './translate.ts';

export const GOLDEN_DIR = fileURLToPath(new URL('./testdata', import.meta.url));

const IN = '.in.yaml';
const OUT = '.out.yaml';
const ERROR = '.error.txt';

export type GoldenResult =
  | { kind: 'out'; text: string; resources: EnvoyResourcesJson }
  | { kind: 'error'; text: string };

/** Case names (file names without `.in.yaml`), sorted. */
export function goldenCases(dir = GOLDEN_DIR): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(IN))
    .map((f) => f.slice(0, -IN.length))
    .sort();
}

export function goldenPaths(name: string, dir = GOLDEN_DIR) {
  return { input: join(dir, name + IN), out: join(dir, name + OUT), error: join(dir, name + ERROR) };
}

export function renderResources(resources: EnvoyResourcesJson, source: string): string {
  return `# Generated from ${source} by scripts/update-golden.ts; do not edit.\n${yaml.dump(resources, {
    lineWidth: -1,
    noRefs: true,
  })}`;
}

/** Runs one case through parseConfig → buildIr → translate. */
export function renderGoldenCase(name: string, dir = GOLDEN_DIR): GoldenResult {
  const { input } = goldenPaths(name, dir);
  const file = basename(input);
  try {
    const resources = translate(buildIr(parseConfig(readFileSync(input, 'utf8'), file)));
    return { kind: 'out', text: renderResources(resources, file), resources };
  } catch (err) {
    if (err instanceof ConfigError || err instanceof TranslateError)
      return { kind: 'error', text: `${err.message}\n` };
    throw err;
  }
}

/** Rewrites every case's expected file; removes stale and orphaned ones. Returns what changed. */
export function updateGolden(dir = GOLDEN_DIR): { written: string[]; removed: string[] } {
  const written: string[] = [];
  const removed: string[] = [];
  const cases = new Set(goldenCases(dir));
  const remove = (path: string) => {
    if (existsSync(path)) {
      rmSync(path);
      removed.push(basename(path));
    }
  };
  for (const name of cases) {
    const result = renderGoldenCase(name, dir);
    const paths = goldenPaths(name, dir);
    const target = result.kind === 'out' ? paths.out : paths.error;
    if (!existsSync(target) || readFileSync(target, 'utf8') !== result.text) {
      writeFileSync(target, result.text);
      written.push(basename(target));
    }
    remove(result.kind === 'out' ? paths.error : paths.out);
  }
  for (const f of readdirSync(dir)) {
    const stem = f.endsWith(OUT)
      ? f.slice(0, -OUT.length)
      : f.endsWith(ERROR)
        ? f.slice(0, -ERROR.length)
        : null;
    if (stem !== null && !cases.has(stem)) remove(join(dir, f));
  }
  return { written, removed };
}
