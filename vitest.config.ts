import { defineConfig } from 'vitest/config';

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
