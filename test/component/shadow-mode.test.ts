// Shadow mode on live Check traffic: a candidate policy runs beside the enforcing one; its answer is
// recorded with each decision and counted, never enforced — and the audit trail can list exactly the
// requests it would have decided otherwise.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maskInput } from '../../audit/recorder.ts';
import { toDecisionRecord } from '../../audit/records.ts';
import { openAuditStore } from '../../audit/store.ts';
import { type AuthzServer, startAuthzServer } from '../../authz-server/server.ts';
import type { DecisionEvent } from '../../contracts/decision.ts';
import { type AuthzClient, authzClient, deniedStatus } from '../support/authz-client.ts';

let dir: string;
let server: AuthzServer;
let client: AuthzClient;
const events: DecisionEvent[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chaperone-shadow-'));
  await writeFile(
    join(dir, 'live.rego'),
    'package live\n\ndefault decision := false\n\ndecision if input.parsed_path[0] == "public"\n',
  );
  await writeFile(
    join(dir, 'candidate.rego'),
    'package live\n\ndefault decision := false\n\ndecision if input.parsed_path[0] in {"public", "reports"}\n',
  );
  const live = join(dir, 'live');
  const candidate = join(dir, 'candidate');
  await import('node:fs/promises').then(async (fs) => {
    await fs.mkdir(live);
    await fs.mkdir(candidate);
    await fs.rename(join(dir, 'live.rego'), join(live, 'p.rego'));
    await fs.rename(join(dir, 'candidate.rego'), join(candidate, 'p.rego'));
  });
  server = await startAuthzServer({
    address: '127.0.0.1:0',
    policy: { dir: live, entrypoint: 'live/decision' },
    shadow: { dir: candidate, entrypoint: 'live/decision' },
    logger: pino({ level: 'silent' }),
    recorder: { record: async (e) => void events.push(e) },
  });
  client = authzClient(server.address);
});

afterAll(async () => {
  client?.close();
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('shadow mode', () => {
  it('enforces the live policy, records and counts what the candidate would do', async () => {
    expect((await client.check({ path: '/public/a' })).status.code).toBe(0);
    expect(deniedStatus(await client.check({ path: '/reports/q3' }))).toBe(403); // enforced: still denied
    expect(deniedStatus(await client.check({ path: '/admin' }))).toBe(403);
    expect(events.map((e) => [e.path, e.verdict.decision, e.shadow?.decision, e.shadow?.differs])).toEqual([
      ['/public/a', 'allow', 'allow', false],
      ['/reports/q3', 'deny', 'allow', true],
      ['/admin', 'deny', 'deny', false],
    ]);
    expect(server.metrics.shadow).toEqual({ evaluated: 3, differences: 1, errors: 0 });
  });

  it('lands in the audit trail, where the differences can be listed', async () => {
    const store = await openAuditStore({});
    await store.migrate();
    await store.insertDecisions(events.map((e) => toDecisionRecord(e, maskInput(e.input))));
    const { rows } = await store.queryDecisions({ shadowDiffers: true });
    expect(rows.map((r) => [r.path, r.decision, r.shadow?.decision])).toEqual([
      ['/reports/q3', 'deny', 'allow'],
    ]);
    expect(await store.verifyChain()).toEqual({ ok: true, count: 3 });
    await store.close();
  });
});
