// An attacker with write access to the audit database, and nothing else, against the real gateway and
// CLI. The gateway records real traffic (decisions and Envoy's access log) into its embedded store;
// while it runs, its keys (`audit trust export`) and its newest checkpoint (`audit checkpoint export`)
// are copied to "another system". It is stopped, and each attack is played on a copy of its state:
// - the database rewritten with a foreign key: a key row inserted, a deny turned into an allow, every
//   later hash recomputed, the checkpoints re-signed — `audit verify --trust` fails naming the record;
// - a truncated tail: the last rows deleted with their checkpoints — the store looks whole, `audit
//   verify --checkpoint` (and the node's own anchor) fail;
// - a forged access-log row — detected.
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAuditStore } from '../../audit/store.ts';
import {
  foreignKey,
  forgeAccessLog,
  type Query,
  rewriteDecision,
  truncateDecisions,
} from '../support/audit-attacks.ts';
import { runCli } from '../support/cli.ts';
import { apiFetch, type GatewayProcess } from '../support/gateway-process.ts';
import { startGatewayOnFreePorts } from '../support/gateway-retry.ts';
import { waitFor } from '../support/wait.ts';

let gw: GatewayProcess;
/** An auditor's token: the audit routes and /status need the role. */
let carol = '';
let work: string;
/** Kept by "another system" while the gateway ran. */
let trustFile: string;
let exportedFile: string;
/** The denied request the attacker turns into an allow. */
let deniedSeq: number;

interface Row {
  seq: number;
  decision: string;
  subject: string | null;
  request_id: string;
}

async function rows(): Promise<Row[]> {
  const res = await apiFetch(gw, carol, `/audit/decisions?limit=100&since=1h`);
  return ((await res.json()) as { rows: Row[] }).rows;
}

/** The gateway's state directory copied, as the attacker's playground: `chaperone.yaml` points into it. */
async function copyOfState(name: string): Promise<string> {
  const dir = join(work, name);
  await cp(gw.dir, dir, { recursive: true });
  return dir;
}

/** Opens the copy's embedded database with the attacker's own SQL. */
async function tamper(dir: string, attack: (q: Query) => Promise<void>): Promise<void> {
  const store = await openAuditStore({ dataDir: join(dir, 'audit') });
  try {
    await attack((t, p) => store.sql.query(t, p));
  } finally {
    await store.close();
  }
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'chaperone-attacker-'));
  gw = await startGatewayOnFreePorts();
  const token = async (user: string) =>
    ((await (await fetch(`${gw.api}/dev/token?user=${user}`)).json()) as { token: string }).token;
  const alice = await token('alice');
  const bob = await token('bob');
  carol = await token('carol');
  // Each request is stored (and signed) before the next is sent: several batches, several checkpoints.
  const plan: [string, string][] = [
    [alice, '/demo/items'],
    [bob, '/demo/items'], // bob is denied
    [alice, '/demo/items/1'],
    [alice, '/demo/items/2'],
    [bob, '/demo/items/3'],
    [alice, '/demo/items/4'],
  ];
  for (const [i, [t, path]] of plan.entries()) {
    await fetch(`${gw.egress}${path}`, { headers: { authorization: `Bearer ${t}` } });
    await waitFor(async () => (await rows()).length === i + 1, { what: `decision ${i + 1} stored` });
  }
  // Envoy's access log for each request, stored too.
  for (const r of await rows())
    await waitFor(
      async () => {
        const res = await apiFetch(gw, carol, `/audit/access-logs?request_id=${r.request_id}`);
        return ((await res.json()) as { rows: unknown[] }).rows.length > 0;
      },
      { timeoutMs: 20_000, what: `the access log of decision ${r.seq}` },
    );
  deniedSeq = (await rows()).find((r) => r.subject === 'bob' && r.decision === 'deny')!.seq;
  // The node's anchor has caught up with the head of both chains.
  await waitFor(
    async () => {
      const status = (await (await apiFetch(gw, carol, `/status`)).json()) as {
        audit: { anchor: { decisions: number | null; access_log: number | null } };
      };
      return status.audit.anchor.decisions === 6 && status.audit.anchor.access_log === 6;
    },
    { what: 'the anchor at record 6' },
  );

  // The gateway's own verification (its key store and anchor, not the database's keys) passes.
  const viaApi = await runCli(['audit', 'verify', '--api', gw.api, '--token', carol]);
  expect(viaApi.out).toContain('audit chain intact: 6 records, 6 signed checkpoints');

  // What "another system" keeps: the node's public keys and its newest checkpoint, exported while it runs.
  const config = join(gw.dir, 'chaperone.yaml');
  trustFile = join(work, 'node.jwks');
  exportedFile = join(work, 'checkpoint.json');
  const trust = await runCli(['audit', 'trust', 'export', '--config', config, '--out', trustFile]);
  expect(trust.code, trust.out).toBe(0);
  const exported = await runCli(['audit', 'checkpoint', 'export', '--config', config, '--out', exportedFile]);
  expect(exported.code, exported.out).toBe(0);
  expect(await gw.stop()).toBe(0);
}, 240_000);

afterAll(async () => {
  await gw?.cleanup();
  if (work) await rm(work, { recursive: true, force: true });
});

const verify = (...args: string[]) => runCli(['audit', 'verify', ...args]);

describe('an attacker who can write to the audit database', () => {
  it('baseline: the untouched trail verifies against the exported keys and checkpoint, and as the node', async () => {
    const exported = JSON.parse(await readFile(exportedFile, 'utf8'));
    expect(exported).toMatchObject({
      format: 'chaperone-audit-checkpoint/1',
      decisions: { seq: 6, hash: expect.stringMatching(/^[0-9a-f]{64}$/), key_id: expect.any(String) },
      access_log: { seq: 6 },
    });
    expect(exported.decisions.signature.split('.')).toHaveLength(3);
    const dir = await copyOfState('baseline');
    const withFiles = await verify(
      '--store',
      join(dir, 'audit'),
      '--trust',
      trustFile,
      '--checkpoint',
      exportedFile,
    );
    expect(withFiles.out).toMatch(
      /audit trail intact: 6 records .* 6 access-log records .* 2 exported checkpoints held/,
    );
    expect(withFiles.code).toBe(0);
    const asNode = await verify('--config', join(dir, 'chaperone.yaml'));
    expect(asNode.code, asNode.out).toBe(0);
  });

  it('rewrites a deny into an allow with a key it adds: verify --trust fails naming the record', async () => {
    const dir = await copyOfState('foreign-key');
    let attackerJwks = '';
    let batchStart = 0;
    await tamper(dir, async (q) => {
      const attacker = await foreignKey(q);
      ({ batchStart } = await rewriteDecision(
        q,
        deniedSeq,
        (r) => ({ ...r, decision: 'allow', http_status: 200, reason: 'rule engineering-read' }),
        attacker,
      ));
      // What the database now says the fleet's keys are (the node's, and the attacker's).
      const keys = await q('SELECT public_jwk FROM signing_keys');
      attackerJwks = JSON.stringify({
        keys: keys.map((k) =>
          typeof k['public_jwk'] === 'string' ? JSON.parse(k['public_jwk']) : k['public_jwk'],
        ),
      });
    });
    expect(batchStart).toBe(deniedSeq); // one request per batch: the batch is the record
    // Trusting the keys the database lists, the forgery is perfect…
    const dbKeys = join(dir, 'db-keys.jwks');
    await writeFile(dbKeys, attackerJwks);
    const fooled = await verify('--store', join(dir, 'audit'), '--trust', dbKeys);
    expect(fooled.code, fooled.out).toBe(0);
    // …against the keys kept outside it, it is not.
    const res = await verify('--store', join(dir, 'audit'), '--trust', trustFile);
    expect(res.code).toBe(1);
    expect(res.out).toMatch(
      new RegExp(
        `audit trail BROKEN at record ${deniedSeq}: checkpoint ${deniedSeq} is signed with key attacker-[0-9a-f-]+, which is not trusted`,
      ),
    );
    // The node itself (its key store and anchor in its state directory) says the same.
    const asNode = await verify('--config', join(dir, 'chaperone.yaml'));
    expect(asNode.code).toBe(1);
    expect(asNode.out).toMatch(new RegExp(`BROKEN at record ${deniedSeq}: .*not trusted`));
  });

  it('deletes the tail with its checkpoints: the store looks whole; verify --checkpoint fails', async () => {
    const dir = await copyOfState('truncated');
    await tamper(dir, (q) => truncateDecisions(q, 4, { checkpoints: true }));
    const storeOnly = await verify('--store', join(dir, 'audit'), '--trust', trustFile);
    expect(storeOnly.out).toMatch(/intact: 4 records/); // nothing in the database gives it away
    expect(storeOnly.code).toBe(0);
    const res = await verify(
      '--store',
      join(dir, 'audit'),
      '--trust',
      trustFile,
      '--checkpoint',
      exportedFile,
    );
    expect(res.code).toBe(1);
    expect(res.out).toContain(
      `audit trail BROKEN at record 5: the chain was truncated: ${exportedFile} names record 6, the store ends at 4`,
    );
    // The node's own anchor catches it too.
    const asNode = await verify('--config', join(dir, 'chaperone.yaml'));
    expect(asNode.code).toBe(1);
    expect(asNode.out).toMatch(
      /BROKEN at record 5: the chain was truncated: this node's anchor .* names record 6/,
    );
  });

  it('deletes the tail but leaves its checkpoints: caught from the database alone', async () => {
    const dir = await copyOfState('truncated-rows');
    await tamper(dir, (q) => truncateDecisions(q, 4, { checkpoints: false }));
    const res = await verify('--store', join(dir, 'audit'), '--trust', trustFile);
    expect(res.code).toBe(1);
    expect(res.out).toContain(
      'BROKEN at record 5: record 5 named by a signed checkpoint is missing (deleted)',
    );
  });

  it('forges an access-log row: caught, chained or not', async () => {
    const chained = await copyOfState('forged-access-log');
    let seq: number | null = null;
    await tamper(chained, async (q) => {
      seq = await forgeAccessLog(q, { chained: true });
    });
    expect(seq).toBe(7);
    const res = await verify('--store', join(chained, 'audit'), '--trust', trustFile);
    expect(res.code).toBe(1);
    expect(res.out).toContain(
      'BROKEN at access-log record 7: access-log records 7..7 are not covered by a signed checkpoint',
    );
    const bare = await copyOfState('forged-access-log-bare');
    await tamper(bare, async (q) => {
      await forgeAccessLog(q, { chained: false });
    });
    const res2 = await verify('--config', join(bare, 'chaperone.yaml'));
    expect(res2.code).toBe(1);
    expect(res2.out).toMatch(/BROKEN \(access log\): access-log rows outside the chain \(id \d+\)/);
  });
});
