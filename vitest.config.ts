import { defineConfig } from 'vitest/config';

// The suite runs on the Node.js Chaperone runs on — 22 LTS or newer with a sound JSON.parse (`npm test`
// brings it through scripts/with-node.mjs where the machine's is not): say so plainly instead of
// failing somewhere inside the runner.
import { jsonParseIsSound } from './scripts/runtime-check.mjs';

const nodeMajor = Number(process.versions.node.split('.')[0]);
if (nodeMajor < 22 || !jsonParseIsSound()) {
  throw new Error(
    `the test suite runs on Node.js 22 LTS (a release whose JSON.parse is sound); this is Node.js ${process.versions.node}. ` +
      'Run it with `npm test` or `npm run vitest -- run <files>` (they use .tools/node where needed).',
  );
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // e2e suites start real processes (Envoy, OPA, PostgreSQL) on fixed loopback ports they pick
    // themselves; files run in parallel workers but each suite allocates free ports.
    pool: 'forks',
    maxWorkers: 2,
  },
});
