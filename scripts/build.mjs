#!/usr/bin/env node
// The production build (`npm run build`, and `npm pack` through prepack): a clean dist/ compiled by tsc
// from tsconfig.build.json, with the `chaperone` bin made executable. Runtime files that are not
// TypeScript (policies/, schemas/, store/migrations/) stay where they are: the package ships them
// beside dist/ and lib/tools.ts finds the package root from either place.
import { spawnSync } from 'node:child_process';
import { chmodSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(ROOT, 'dist');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

rmSync(DIST, { recursive: true, force: true });
const started = Date.now();
const res = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json')], { stdio: 'inherit' });
if (res.status !== 0) {
  process.stderr.write(`build: tsc exited with ${res.status ?? res.signal}\n`);
  process.exit(1);
}
chmodSync(join(DIST, 'cli', 'main.js'), 0o755);
process.stderr.write(`build: dist/ in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
