// A real PostgreSQL outage under load: the authz server keeps answering ALLOW while the audit store is
// down (decisions are durable in the local spool first), and once PostgreSQL is back the shipper
// delivers every decision exactly once, with an intact hash chain. The server is a private one (the
// shared CI cluster serves other files in parallel and must not go down).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWithTrust } from '../../audit/trust.ts';
import { type AuthzServer, startAuthzServer } from '../../authz-server/server.ts';
import { parseConfig } from '../../config/load-config.ts';
import { type OpenedAudit, openAuditRuntime } from '../../gateway/audit-runtime.ts';
import { type AuthzClient, authzClient, headerOf } from '../support/authz-client.ts';
import {
  NO_PRIVATE_POSTGRES_REASON,
  type PrivatePostgres,
  startPrivatePostgres,
} from '../support/private-postgres.ts';
import { waitFor } from '../support/wait.ts';

const silent = pino({ level: 'silent' });
const RATE_PER_S = 300;
const OUTAGE_MS = 4000;
const DECISION_HEADER = 'x-chaperone-decision-id';

interface Answer {
  requestId: string;
  decisionId: string;
  sentAt: number;
  answeredAt: number;
}

/** Check requests at a steady rate from a loop; every answer must be an ALLOW carrying its decision id. */
class Load {
  readonly answers: Answer[] = [];
  readonly problems: string[] = [];
  private issued = 0;
  private inFlight = new Set<Promise<void>>();
  private stopped = false;
  private loop: Promise<void> | null = null;

  constructor(
    private readonly client: AuthzClient,
    private readonly ratePerS: number,
  ) {}

  start(): void {
    const t0 = Date.now();
    this.loop = (async () => {
      while (!this.stopped) {
        const due = Math.floor(((Date.now() - t0) * this.ratePerS) / 1000) - this.issued;
        // Bounded: a stall (GC, a slow fsync) must not turn into an unbounded burst.
        for (let i = 0; i < Math.min(due, 50) && this.inFlight.size < 500; i++) this.send();
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
  }

  private send(): void {
    const n = this.issued++;
    const requestId = `outage-${n}`;
    const sentAt = Date.now();
    const p = this.client
      .check({ path: '/demo/item', headers: { 'x-request-id': requestId } })
      .then(
        (res) => {
          const decisionId = headerOf(res.okResponse?.headers, DECISION_HEADER);
          if (res.status.code !== 0 || !decisionId)
            this.problems.push(`${requestId}: not allowed: ${JSON.stringify(res).slice(0, 300)}`);
          else this.answers.push({ requestId, decisionId, sentAt, answeredAt: Date.now() });
        },
        (err: unknown) => {
          this.problems.push(`${requestId}: ${String(err)}`);
        },
      )
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  get sent(): number {
    return this.issued;
  }

  /** Stops sending and waits for every answer. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }
}

describe.skipIf(NO_PRIVATE_POSTGRES_REASON !== null)(
  `audit pipeline through a PostgreSQL outage${NO_PRIVATE_POSTGRES_REASON ? ` (${NO_PRIVATE_POSTGRES_REASON})` : ''}`,
  () => {
    let dir: string;
    let postgres: PrivatePostgres;
    let audit: OpenedAudit;
    let server: AuthzServer;
    let client: AuthzClient;
    let load: Load | null = null;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'chaperone-outage-'));
      postgres = await startPrivatePostgres();
      const policyDir = join(dir, 'policy');
      await mkdir(policyDir);
      await writeFile(join(policyDir, 'p.rego'), 'package t\n\ndefault decision := true\n');
      const config = parseConfig(
        [
          'audit:',
          `  store: ${postgres.url}`,
          `  spool_dir: ${join(dir, 'spool')}`,
          'policy:',
          `  dir: ${policyDir}`,
          '  entrypoint: t/decision',
        ].join('\n'),
      );
      audit = await openAuditRuntime({ config, stateDir: join(dir, 'state'), logger: silent });
      server = await startAuthzServer({
        address: '127.0.0.1:0',
        policy: { dir: policyDir, entrypoint: 't/decision' },
        logger: silent,
        recorder: audit.recorder,
      });
      client = authzClient(server.address);
    });

    afterAll(async () => {
      await load?.stop().catch(() => undefined);
      client?.close();
      await server?.close();
      await audit?.close().catch(() => undefined);
      await postgres?.destroy();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('keeps allowing while PostgreSQL is down and stores every decision exactly once after', async () => {
      const { store, shipper } = audit;
      load = new Load(client, RATE_PER_S);
      load.start();

      // Shipping works before the outage.
      await waitFor(async () => (await store.lastSeq()) >= 100, {
        what: 'the first 100 decisions in PostgreSQL',
        timeoutMs: 10_000,
      });
      const failuresBefore = shipper.stats().failures;

      await postgres.stop('immediate');
      const outageStart = Date.now();
      const answeredAtStop = load.answers.length;
      // Load continues for the whole outage; the shipper must notice it (no fixed sleep decides that).
      await waitFor(() => shipper.stats().failures > failuresBefore, {
        what: 'the shipper to see the outage',
        timeoutMs: OUTAGE_MS,
      });
      const remaining = OUTAGE_MS - (Date.now() - outageStart);
      if (remaining > 0) await new Promise((r) => setTimeout(r, remaining));
      const outageEnd = Date.now();
      const pendingAtRestart = shipper.stats().pending;
      const answeredDuringOutage = load.answers.length - answeredAtStop;
      await postgres.start();

      // Shipping resumes while the load is still on: everything spooled during the outage arrives.
      const spooledAtRestart = shipper.stats().spooled;
      await waitFor(async () => (await store.lastSeq()) >= spooledAtRestart, {
        what: 'the decisions spooled during the outage to reach PostgreSQL',
        timeoutMs: 15_000,
        intervalMs: 100,
      });
      await load.stop();

      const answers = load.answers;
      expect(load.problems.slice(0, 5)).toEqual([]);
      expect(answers).toHaveLength(load.sent);

      await waitFor(async () => shipper.stats().pending === 0 && (await store.lastSeq()) >= answers.length, {
        what: `all ${answers.length} decisions in PostgreSQL (shipper: ${JSON.stringify(shipper.stats())})`,
        timeoutMs: 15_000,
        intervalMs: 100,
      });

      // Decisions were made (and ALLOWED) while PostgreSQL was down, and they piled up in the spool.
      const madeDuringOutage = answers.filter(
        (a) => a.sentAt >= outageStart && a.answeredAt <= outageEnd,
      ).length;
      expect(madeDuringOutage).toBeGreaterThan((RATE_PER_S * OUTAGE_MS) / 1000 / 4);
      expect(answeredDuringOutage).toBeGreaterThanOrEqual(madeDuringOutage);
      expect(pendingAtRestart).toBeGreaterThan(madeDuringOutage / 2);

      // Every decision id answered is in the table exactly once, and nothing else is.
      const db = new pg.Client({ connectionString: postgres.url });
      await db.connect();
      try {
        const rows = (
          await db.query<{ decision_id: string; request_id: string; n: string }>(
            'SELECT decision_id, min(request_id) AS request_id, count(*) AS n FROM decisions GROUP BY decision_id',
          )
        ).rows;
        const dup = rows.filter((r) => Number(r.n) !== 1);
        expect(dup).toEqual([]);
        const stored = new Map(rows.map((r) => [r.decision_id, r.request_id]));
        const missing = answers.filter((a) => !stored.has(a.decisionId));
        expect(missing.map((a) => a.requestId)).toEqual([]);
        for (const a of answers) expect(stored.get(a.decisionId)).toBe(a.requestId);
        expect(rows).toHaveLength(answers.length);
        const [{ n }] = (await db.query<{ n: string }>('SELECT count(*) AS n FROM decisions')).rows as [
          { n: string },
        ];
        expect(Number(n)).toBe(answers.length);
      } finally {
        await db.end();
      }

      expect(shipper.stats()).toMatchObject({ shipped: answers.length, pending: 0, rejected: 0 });
      expect(shipper.stats().failures).toBeGreaterThan(failuresBefore);
      // The chain is whole across the outage, and every batch is covered by a checkpoint signed with
      // the node's own key (read from its state directory, not from the database).
      expect(await verifyWithTrust(store, { stateDir: join(dir, 'state') })).toMatchObject({
        ok: true,
        count: answers.length,
      });
    });
  },
);
