// A PostgreSQL database for the suites that need one. CI (.ci/run) starts Debian's PostgreSQL and
// exports DATABASE_URL; each test file gets a database of its own, created here and dropped after.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const DATABASE_URL = process.env['DATABASE_URL'] ?? '';
export const NO_POSTGRES_REASON =
  'DATABASE_URL not set: PostgreSQL tests run in CI (.ci/run starts a server)';

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(prefix = 'chaperone_test'): Promise<TestDatabase> {
  if (!DATABASE_URL) throw new Error(NO_POSTGRES_REASON);
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: DATABASE_URL });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
