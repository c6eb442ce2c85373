// Audit throughput: durable decisions per second through the spool (group commit, fsync), and decision
// rows per second into the store (hash chain + batch insert), on PGlite and — with DATABASE_URL — on
// PostgreSQL. Target (issue 3): ≥ 20,000/s each. Usage: npx tsx bench/audit/run.ts [--records 20000]
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { DecisionRecord } from '../../audit/records.ts';
import { Spool } from '../../audit/spool.ts';
import { type AuditStore, openAuditStore } from '../../audit/store.ts';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? def : Number(process.argv[i + 1]);
};
const N = arg('records', 20_000);
const CONCURRENCY = arg('concurrency', 256);
const BATCH = arg('batch', 500);

function record(i: number): DecisionRecord {
  return {
    decision_id: randomUUID(),
    request_id: randomUUID(),
    time: new Date().toISOString(),
    route_id: 'demo/0',
    target: 'demo',
    method: 'GET',
    host: 'api.example.test',
    path: `/demo/items/${i}`,
    subject: 'alice',
    issuer: 'https://idp.example.test',
    actor: null,
    decision: 'allow',
    http_status: 200,
    reason: 'rule engineering-read',
    reason_code: 'ALLOWED',
    policy_revision: 'r1',
    latency_us: 120,
    input: {
      parsed_path: ['demo', 'items', String(i)],
      identity: { subject: 'alice', groups: ['engineering'] },
    },
    result: { allowed: true },
  };
}

async function spoolRate(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-bench-spool-'));
  const spool = await Spool.open({ dir });
  const started = process.hrtime.bigint();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < N) await spool.append(record(next++));
    }),
  );
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  await spool.close();
  await rm(dir, { recursive: true, force: true });
  return N / secs;
}

async function storeRate(store: AuditStore): Promise<number> {
  await store.migrate();
  const records = Array.from({ length: N }, (_, i) => record(i));
  const started = process.hrtime.bigint();
  for (let i = 0; i < records.length; i += BATCH) await store.insertDecisions(records.slice(i, i + BATCH));
  return N / (Number(process.hrtime.bigint() - started) / 1e9);
}

const rows: [string, number][] = [];
process.stderr.write(
  `chaperone audit bench: ${cpus().length} CPUs, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}; ${N} records\n`,
);
rows.push([
  `spool: durable appends/s (${CONCURRENCY} concurrent, group commit + fdatasync)`,
  await spoolRate(),
]);
const pglite = await openAuditStore({});
rows.push([`store: rows/s into PGlite (batches of ${BATCH}, hash chain)`, await storeRate(pglite)]);
await pglite.close();
const url = process.env['DATABASE_URL'];
if (url) {
  const name = `chaperone_bench_${Date.now()}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const u = new URL(url);
  u.pathname = `/${name}`;
  const store = await openAuditStore({ url: u.toString() });
  rows.push([`store: rows/s into PostgreSQL (batches of ${BATCH}, hash chain)`, await storeRate(store)]);
  await store.close();
  await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
  await admin.end();
} else process.stderr.write('(DATABASE_URL not set: PostgreSQL skipped)\n');

process.stdout.write('\n| measurement | per second | target | ratio |\n|:--|--:|--:|--:|\n');
for (const [label, rate] of rows) {
  process.stdout.write(`| ${label} | ${Math.round(rate)} | 20000 | ${(rate / 20_000).toFixed(2)}x |\n`);
}
