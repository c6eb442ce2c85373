// Regenerates the translators' golden files (xds/translate/testdata: `.ir.yaml`, `.out.yaml`,
// `.error.txt`) by running their test with UPDATE_GOLDEN=1, which rewrites what differs and removes
// orphans; run `tsx scripts/update-golden.ts` after an intended change to config → IR → Envoy, then
// review the diff. CI fails when regeneration would change a committed file.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { PROJECT_ROOT } from '../lib/tools.ts';

const GOLDEN_TEST = 'test/unit/translate-golden.test.ts';
const TESTDATA = 'xds/translate/testdata';

const vitest = join(dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs');
const run = spawnSync(process.execPath, [vitest, 'run', GOLDEN_TEST], {
  cwd: PROJECT_ROOT,
  env: { ...process.env, UPDATE_GOLDEN: '1' },
  stdio: 'inherit',
});
if (run.status !== 0) process.exit(run.status ?? 1);
// What changed, for review (nothing is printed when the files were up to date).
spawnSync('git', ['status', '--short', '--', TESTDATA], { cwd: PROJECT_ROOT, stdio: 'inherit' });
