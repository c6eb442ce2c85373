import { defineConfig } from 'vitest/config';

// The suite runs on Node.js 24 only (`npm test` brings it through scripts/with-node.mjs where the
// machine's Node is older): say so plainly instead of failing somewhere inside the runner.
const nodeMajor = Number(process.versions.node.split('.')[0]);
if (nodeMajor < 24) {
  throw new Error(
    `the test suite runs on Node.js 24; this is Node.js ${process.versions.node}. ` +
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
