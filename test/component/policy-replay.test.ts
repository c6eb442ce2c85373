// `chaperone policy replay` on a recorded audit trail, in PGlite and in PostgreSQL: a candidate policy
// that lets contractors read and stops engineering from reading shows exactly those changes, grouped,
// and --max-changes turns it into a CI gate.
import { randomUUID } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DecisionRecord } from '../../audit/records.ts';
import { openAuditStore } from '../../audit/store.ts';
import { buildInput } from '../../authz-server/input/build-input.ts';
import { PROJECT_ROOT } from '../../lib/tools.ts';
import { runCli } from '../support/cli.ts';

const chaperone = (args: string[]) => runCli(args, { cwd: PROJECT_ROOT, timeoutMs: 120_000 });

import { checkRequest } from '../support/authz-client.ts';
import {
  createTestDatabase,
  DATABASE_URL,
  NO_POSTGRES_REASON,
  type TestDatabase,
} from '../support/postgres.ts';

/** A decision as the gateway records it: the real input builder's document, the verdict it got. */
function recorded(
  user: string,
  groups: string[],
  method: string,
  path: string,
  decision: string,
  body?: unknown,
): DecisionRecord {
  const req = checkRequest({
    method,
    path,
    headers: body ? { 'content-type': 'application/json' } : {},
    ...(body ? { body: JSON.stringify(body) } : {}),
    contextExtensions: { route_id: 'demo/0', target: 'demo' },
  });
  const identity = {
    issuer: 'https://idp.example.test',
    subject_issuer: 'https://idp.example.test',
    subject: user,
    audience: ['chaperone'],
    email: null,
    name: null,
    groups,
    actor: null,
    token_id: null,
    expires_at: 0,
    claims: {},
  };
  const built = buildInput(req, { identity, identityError: null }, { requireCompleteBody: true });
  if (!built.ok) throw new Error(built.reason);
  return {
    decision_id: randomUUID(),
    request_id: randomUUID(),
    time: new Date().toISOString(),
    route_id: 'demo/0',
    target: 'demo',
    method,
    host: 'api.example.test',
    path,
    subject: user,
    issuer: identity.issuer,
    actor: null,
    decision,
    http_status: decision === 'allow' ? 200 : 403,
    reason: decision,
    reason_code: decision === 'allow' ? 'ALLOWED' : 'DENIED',
    policy_revision: 'old',
    latency_us: 1,
    input: built.input,
    result: { allowed: decision === 'allow' },
  };
}

const TRAIL = [
  recorded('alice', ['engineering'], 'GET', '/demo/items', 'allow'),
  recorded('alice', ['engineering'], 'GET', '/demo/items/1', 'allow'),
  recorded('bob', ['contractors'], 'GET', '/demo/items', 'deny'),
  recorded('alice', ['engineering'], 'POST', '/demo/items', 'deny', { priority: 'critical' }),
];

let work: string;
let candidate: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'chaperone-replay-'));
  // The candidate: contractors may read; engineering's read rule is gone.
  candidate = join(work, 'candidate');
  await cp(join(PROJECT_ROOT, 'policies', 'chaperone'), join(candidate, 'chaperone'), { recursive: true });
  const dataFile = join(candidate, 'chaperone', 'targets', 'data.json');
  const data = JSON.parse(await readFile(dataFile, 'utf8'));
  data.demo.rules = data.demo.rules
    .filter((r: { name: string }) => r.name !== 'engineering-read')
    .concat([{ name: 'contractors-read', groups: ['contractors'], methods: ['GET'], paths: ['/demo/**'] }]);
  await writeFile(dataFile, JSON.stringify(data));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

function expectReport(out: string): void {
  expect(out).toContain('replayed 4 decisions');
  expect(out).toContain('1 unchanged, 2 allow→deny, 1 deny→allow');
  expect(out).toMatch(/by user: alice 2, bob 1/);
  expect(out).toMatch(/deny→allow {2}bob {2}GET \/demo\/items/);
  expect(out).toMatch(/allow→deny {2}alice {2}GET \/demo\/items\/1/);
}

describe('chaperone policy replay', () => {
  it('replays an embedded (PGlite) audit trail against a candidate directory', async () => {
    const dataDir = join(work, 'audit');
    const store = await openAuditStore({ dataDir });
    await store.migrate();
    await store.insertDecisions(TRAIL);
    await store.close();

    const res = await chaperone([
      'policy',
      'replay',
      '--candidate-dir',
      candidate,
      '--data-dir',
      dataDir,
      '--since',
      '1h',
    ]);
    expect(res.code, res.out).toBe(0);
    expectReport(res.out);

    const gate = await chaperone([
      'policy',
      'replay',
      '--candidate-dir',
      candidate,
      '--data-dir',
      dataDir,
      '--max-changes',
      '2',
    ]);
    expect(gate.code).toBe(1);
    expect(gate.out).toContain('policy replay failed: 3 changes > --max-changes 2');

    const same = await chaperone([
      'policy',
      'replay',
      '--candidate-dir',
      'policies',
      '--data-dir',
      dataDir,
      '--max-changes',
      '0',
      '--format',
      'json',
    ]);
    expect(same.code, same.out).toBe(0);
    const json = JSON.parse(same.out.slice(same.out.indexOf('{'))) as {
      replayed: number;
      changes: unknown[];
    };
    expect(json).toMatchObject({ replayed: 4, changes: [] });
  });

  describe.skipIf(!DATABASE_URL)(`on PostgreSQL${DATABASE_URL ? '' : ` (${NO_POSTGRES_REASON})`}`, () => {
    let db: TestDatabase;
    beforeAll(async () => {
      db = await createTestDatabase();
    });
    afterAll(async () => {
      await db?.drop();
    });

    it('replays a PostgreSQL audit trail with a built candidate bundle', async () => {
      const store = await openAuditStore({ url: db.url });
      await store.migrate();
      await store.insertDecisions(TRAIL);
      await store.close();
      const bundle = join(work, 'candidate.tar.gz');
      const built = await chaperone(['policy', 'build', '--dir', candidate, '-o', bundle]);
      expect(built.code, built.out).toBe(0);
      const res = await chaperone([
        'policy',
        'replay',
        '--bundle',
        bundle,
        '--store',
        db.url,
        '--since',
        '1h',
      ]);
      expect(res.code, res.out).toBe(0);
      expectReport(res.out);
    });
  });
});
