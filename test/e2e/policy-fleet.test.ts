// One policy for a fleet, end to end on one PostgreSQL: node A is a `chaperone up` gateway configured
// by chaperone.yaml (policy.signing, decision_logs), node B a standalone `chaperone authz serve --store
// --verification-key`. `chaperone policy publish` (the CLI, as a CI job runs it) signs and stores a
// revision; both nodes serve it within a second and record it on their decisions. A tampered bundle
// and an unsigned one are published too — both nodes refuse them and keep serving the last good
// revision; a bundle signed by `opa build --signing-key` is accepted; a rollback is followed. Node A
// pushes its decisions, in OPA's decision-log format, to a receiver in the test.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthzClient, authzClient } from '../support/authz-client.ts';
import { type AuthzServeProcess, runCli, startAuthzServe } from '../support/cli.ts';
import {
  apiFetch,
  devGatewayYaml,
  devToken,
  type GatewayProcess,
  gatewayPorts,
  gatewaySockets,
  startGatewayProcess,
} from '../support/gateway-process.ts';
import {
  FLEET_ENTRYPOINT,
  type KeyFiles,
  opaBuild,
  tamper,
  writeFleetPolicy,
  writeKeyPair,
} from '../support/policy-bundles.ts';
import {
  createTestDatabase,
  DATABASE_URL,
  NO_POSTGRES_REASON,
  type TestDatabase,
} from '../support/postgres.ts';
import { waitFor } from '../support/wait.ts';

let db: TestDatabase;
let dir: string;
let keys: KeyFiles;
let a: GatewayProcess;
let b: AuthzServeProcess;
let clientA: AuthzClient;
let clientB: AuthzClient;
let receiver: Server;
let receiverUrl: string;
const logged: { encoding: string | undefined; events: Record<string, any>[] }[] = [];

const revisionOf = async (client: AuthzClient) => {
  const res = await client.check({ path: '/x' });
  return res.dynamicMetadata?.fields['policy_revision']?.stringValue;
};

/** Both nodes serve `rev`; resolves with how long that took from now. */
async function bothServe(rev: string, timeoutMs = 1000): Promise<number> {
  const started = Date.now();
  await waitFor(async () => (await revisionOf(clientA)) === rev && (await revisionOf(clientB)) === rev, {
    what: `both nodes serving ${rev}`,
    timeoutMs,
    intervalMs: 20,
  });
  return Date.now() - started;
}

const publish = (what: string, ...flags: string[]) =>
  runCli(['policy', 'publish', what, '--store', db.url, '-e', FLEET_ENTRYPOINT, ...flags], {
    timeoutMs: 120_000,
  });

/** /status needs the admin role: carol holds every role in the dev set-up. */
async function statusOfA(): Promise<Record<string, any>> {
  return (await (await apiFetch(a, await devToken(a, 'carol'), '/status')).json()) as Record<string, any>;
}

function nodeYaml(p: Parameters<typeof devGatewayYaml>[0]): string {
  return devGatewayYaml(p)
    .replace(
      /policy:\n {2}dir: .*\n {2}entrypoint: .*\n/,
      `policy:
  dir: ${join(dir, 'local')}
  entrypoint: ${FLEET_ENTRYPOINT}
  signing:
    keys:
      default:
        algorithm: RS256
        key: file:${keys.publicPem}
`,
    )
    .replace('store: embedded', `store: ${db.url}`)
    .concat(`decision_logs:
  url: ${receiverUrl}
  reporting:
    min_delay_seconds: 0.1
    max_delay_seconds: 0.2
`);
}

describe.skipIf(!DATABASE_URL)(
  `a fleet policy published once, served everywhere${DATABASE_URL ? '' : ` (${NO_POSTGRES_REASON})`}`,
  () => {
    beforeAll(async () => {
      db = await createTestDatabase('chaperone_policy_fleet');
      dir = await mkdtemp(join(tmpdir(), 'chaperone-policy-fleet-'));
      keys = await writeKeyPair(dir, 'rsa');
      await writeFleetPolicy(join(dir, 'local'), 'local');
      for (const v of ['v1', 'v2', 'v3', 'v4']) await writeFleetPolicy(join(dir, v), v);
      receiver = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          logged.push({
            encoding: req.headers['content-encoding'],
            events: JSON.parse(gunzipSync(Buffer.concat(chunks)).toString()),
          });
          res.writeHead(204).end();
        });
      });
      await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
      receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/logs`;

      const ports = await gatewayPorts();
      // Unix sockets: the fleet shares the store, not the transport (mutual TLS is tested on its own).
      const addrB = `unix:${join(dir, 'authz-b.sock')}`;
      [a, b] = await Promise.all([
        startGatewayProcess({ ports, yaml: nodeYaml }),
        (async () => {
          const p = startAuthzServe(addrB, [
            '--policy-dir',
            join(dir, 'local'),
            '--entrypoint',
            FLEET_ENTRYPOINT,
            '--store',
            db.url,
            '--spool-dir',
            join(dir, 'spool-b'),
            '--verification-key',
            keys.publicPem,
            '--log-level',
            'info',
          ]);
          await p.ready();
          return p;
        })(),
      ]);
      clientA = authzClient(`unix:${gatewaySockets(a).authz}`);
      clientB = authzClient(addrB);
    }, 240_000);

    afterAll(async () => {
      clientA?.close();
      clientB?.close();
      b?.stop();
      await a?.cleanup();
      await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
      await db?.drop();
      await rm(dir, { recursive: true, force: true });
    });

    it('before anything is published, each node serves its own policy', async () => {
      const [ra, rb] = [await revisionOf(clientA), await revisionOf(clientB)];
      expect(ra).toMatch(/^[0-9a-f]{16}$/);
      expect(rb).toBe(ra);
    });

    it('a signed revision published with the CLI is served by both nodes within a second', async () => {
      const res = await publish(join(dir, 'v1'), '--signing-key', keys.privatePem, '--note', 'ci build 123');
      expect(res.code, res.out).toBe(0);
      expect(res.out).toContain('published r1');
      expect(res.out).toContain('signed by default');
      const took = await bothServe('r1');
      expect(took).toBeLessThan(1000);
      const ok = await clientB.check({ path: '/x' });
      expect(ok.okResponse).toBeDefined();
    });

    it("records the revision on the other node's decisions in the shared trail", async () => {
      const res = await clientB.check({ path: '/recorded' });
      const id = res.dynamicMetadata?.fields['decision_id']?.stringValue;
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      try {
        await waitFor(
          async () =>
            (await client.query('SELECT policy_revision FROM decisions WHERE decision_id = $1', [id])).rows[0]
              ?.policy_revision === 'r1',
          { what: "B's decision in the store with policy_revision r1", timeoutMs: 15_000 },
        );
      } finally {
        await client.end();
      }
    });

    it('a tampered bundle is refused by both nodes; r1 keeps serving', async () => {
      const signed = await opaBuild(join(dir, 'v2'), join(dir, 'v2.tar.gz'), { key: keys.privatePem });
      const tampered = await tamper(signed, join(dir, 'v2-tampered.tar.gz'), '/data.json', (d) =>
        Buffer.from(d.toString().replace('"v2"', '"evil"')),
      );
      const res = await publish(tampered);
      expect(res.code, res.out).toBe(0);
      expect(res.out).toContain('published r2');
      await waitFor(() => b.output().includes('digest mismatch'), { what: 'B refusing r2' });
      await waitFor(async () => (await statusOfA())['authz']?.policy?.last_refused?.origin === 'store r2', {
        what: 'A refusing r2',
      });
      const a2 = (await statusOfA())['authz'].policy;
      expect(a2).toMatchObject({
        revision: 'r1',
        verified_by: 'default',
        last_refused: { code: 'ERR_BUNDLE_SIGNATURE' },
        fleet_active: 'r2',
      });
      expect(a2.last_refused.message).toMatch(/data\.json: digest mismatch/);
      expect(b.output()).toContain('ERR_BUNDLE_SIGNATURE');
      expect([await revisionOf(clientA), await revisionOf(clientB)]).toEqual(['r1', 'r1']);
    });

    it('an unsigned bundle is refused by both nodes; r1 keeps serving', async () => {
      const res = await publish(join(dir, 'v3'));
      expect(res.code, res.out).toBe(0);
      expect(res.out).toMatch(/UNSIGNED/);
      await waitFor(() => b.output().includes('store r3') && b.output().includes('not signed'), {
        what: 'B refusing r3',
      });
      await waitFor(async () => (await statusOfA())['authz']?.policy?.last_refused?.origin === 'store r3', {
        what: 'A refusing r3',
      });
      expect((await statusOfA())['authz'].policy.last_refused.message).toMatch(/not signed/);
      expect([await revisionOf(clientA), await revisionOf(clientB)]).toEqual(['r1', 'r1']);
    });

    it('a bundle signed by `opa build --signing-key` is accepted', async () => {
      const signed = await opaBuild(join(dir, 'v4'), join(dir, 'v4.tar.gz'), { key: keys.privatePem });
      const res = await publish(signed);
      expect(res.code, res.out).toBe(0);
      await bothServe('r4');
      expect(
        (await clientA.check({ path: '/x' })).dynamicMetadata?.fields['policy_revision']?.stringValue,
      ).toBe('r4');
    });

    it('a rollback is followed by both nodes within a second', async () => {
      const res = await runCli(['policy', 'rollback', 'r1', '--store', db.url]);
      expect(res.code, res.out).toBe(0);
      expect(res.out).toContain("r1 is the fleet's policy again");
      expect(await bothServe('r1')).toBeLessThan(1000);
      const unknown = await runCli(['policy', 'rollback', 'r99', '--store', db.url]);
      expect(unknown.code).toBe(1);
      expect(unknown.out).toContain('there is no policy revision r99');
    });

    it('`policy revisions --json` lists every revision and activation', async () => {
      const res = await runCli(['policy', 'revisions', '--json', '--store', db.url]);
      expect(res.code, res.out).toBe(0);
      const doc = JSON.parse(res.out) as {
        active: string;
        revisions: { id: string; signedBy: string | null; note: string | null }[];
        activations: { id: string; reason: string }[];
      };
      expect(doc.active).toBe('r1');
      expect(doc.revisions.map((r) => [r.id, r.signedBy])).toEqual([
        ['r4', 'default'],
        ['r3', null],
        ['r2', 'default'],
        ['r1', 'default'],
      ]);
      expect(doc.revisions.at(-1)?.note).toBe('ci build 123');
      expect(doc.activations.map((x) => `${x.id}:${x.reason}`)).toEqual([
        'r1:rollback',
        'r4:publish',
        'r3:publish',
        'r2:publish',
        'r1:publish',
      ]);
    });

    it('replay takes a published revision as the candidate', async () => {
      const res = await runCli([
        'policy',
        'replay',
        '--revision',
        'r4',
        '--store',
        db.url,
        '-e',
        FLEET_ENTRYPOINT,
        '--since',
        '1h',
        '--format',
        'json',
      ]);
      expect(res.code, res.out).toBe(0);
      const report = JSON.parse(res.out.slice(res.out.indexOf('{'))) as {
        replayed: number;
        changes: unknown[];
      };
      expect(report.replayed).toBeGreaterThan(0);
      // v1 and v4 allow the same requests (only their reason differs).
      expect(report.changes).toEqual([]);
    });

    it("node A pushed its decisions to the receiver in OPA's decision-log format", async () => {
      const res = await clientA.check({ path: '/blocked' });
      const id = res.dynamicMetadata?.fields['decision_id']?.stringValue;
      await waitFor(() => logged.some((u) => u.events.some((e) => e['decision_id'] === id)), {
        what: "A's decision at the receiver",
      });
      expect(logged.every((u) => u.encoding === 'gzip')).toBe(true);
      const event = logged.flatMap((u) => u.events).find((e) => e['decision_id'] === id)!;
      expect(event).toMatchObject({
        path: FLEET_ENTRYPOINT,
        result: { allowed: false, reason: 'blocked' },
        labels: { app: 'chaperone', policy_revision: 'r1' },
        bundles: { chaperone: { revision: 'r1' } },
        input: { parsed_path: ['blocked'] },
      });
      const revisions = new Set(logged.flatMap((u) => u.events).map((e) => e['labels'].policy_revision));
      expect([...revisions]).toEqual(expect.arrayContaining(['r1', 'r4']));
      expect((await statusOfA())['decision_logs']).toMatchObject({ dropped: 0 });
    });
  },
);
