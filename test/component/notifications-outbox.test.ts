// Approval events and their notifications, through the real store and a real HTTP receiver:
// - every change of an approval request writes its event in the same transaction (a refused change
//   writes none); pending requests expire after their TTL; granted windows can be revoked;
// - the worker delivers signed webhooks (verified with the Standard Webhooks reference library) and
//   Slack messages, retries a failing receiver with backoff and gives up after max_attempts;
// - on PostgreSQL, several nodes delivering from one outbox at once send every (event, sink) exactly
//   once (FOR UPDATE SKIP LOCKED leases), and expire each pending request once.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AuditStore, openAuditStore } from '../../audit/store.ts';
import type { NotificationsConfig } from '../../config/types.ts';
import { ApprovalStore } from '../../fleet/approval-store.ts';
import { NotificationWorker } from '../../fleet/notification-worker.ts';
import { backoffMs, NotificationOutbox } from '../../fleet/notifications-outbox.ts';
import { SharedState } from '../../fleet/shared-state.ts';
import {
  createTestDatabase,
  DATABASE_URL,
  NO_POSTGRES_REASON,
  type TestDatabase,
} from '../support/postgres.ts';

const silent = pino({ level: 'silent' });
const SECRET = `whsec_${Buffer.from('a test secret of 24 bytes').toString('base64')}`;

interface Hit {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A receiver that answers `status(path, n)` to the n-th request of a path (n from 1). */
async function receiver(status: (path: string, n: number) => number = () => 204) {
  const hits: Hit[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      hits.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(status(req.url ?? '', hits.filter((h) => h.path === req.url).length)).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { hits, base, close: () => new Promise<void>((r) => server.close(() => r())) };
}

function sinks(base: string, maxAttempts = 8): NotificationsConfig {
  return {
    maxAttempts,
    sinks: [
      {
        name: 'hook',
        type: 'webhook',
        url: `${base}/hook`,
        secret: 'env:OUTBOX_TEST_SECRET',
        events: ['approval.requested', 'approval.decided', 'approval.expired', 'approval.revoked'],
      },
      { name: 'slack', type: 'slack', url: `${base}/slack`, secret: null, events: ['approval.requested'] },
    ],
  };
}

const request = (approvals: ApprovalStore, path: string) =>
  approvals.request({
    fingerprint: `fp ${path}`,
    subject: 'alice',
    issuer: IDP,
    actor: { sub: 'agent:bot', agent: 'bot' },
    target: 'demo',
    method: 'DELETE',
    path,
    bodySha256: null,
    spec: { reviewers: ['security'], reason: 'deleting needs a review' },
  });

/** Everyone here signs in at one issuer. */
const IDP = 'https://idp.example';
const CAROL = { subject: 'carol', issuer: IDP, groups: ['security'] };

interface Node {
  store: AuditStore;
  state: SharedState;
  approvals: ApprovalStore;
  outbox: NotificationOutbox;
}

async function node(name: string, url: string | null, now: () => number): Promise<Node> {
  const store = await openAuditStore(url ? { url } : {});
  await store.migrate();
  const state = await SharedState.open(store.sql, name, silent);
  return {
    store,
    state,
    approvals: await ApprovalStore.open(state, { now }),
    outbox: new NotificationOutbox(store.sql, name, now),
  };
}

async function closeNode(n: Node) {
  await n.state.close();
  await n.store.close();
}

process.env['OUTBOX_TEST_SECRET'] = SECRET;

describe('approval events and notifications (PGlite)', () => {
  let n: Node;
  // Real time: the receiver library checks the signature's timestamp against its own clock.
  let clock = Date.now();
  const now = () => clock;
  const receivers: { close(): Promise<void> }[] = [];

  beforeAll(async () => {
    n = await node('one', null, now);
  }, 60_000);
  afterAll(async () => closeNode(n));
  afterEach(async () => {
    for (const r of receivers.splice(0)) await r.close();
  });

  it('writes an event with each change, and none for a refused one', async () => {
    const r = await request(n.approvals, '/demo/items/1');
    await expect(
      n.approvals.decide(r.id, { subject: 'alice', issuer: IDP, groups: ['security'] }, 'approve'),
    ).rejects.toThrow(/own request/);
    await n.approvals.decide(r.id, CAROL, 'deny', { reason: 'not today' });
    const events = await n.approvals.events(r.id);
    expect(events.map((e) => e.kind)).toEqual(['approval.requested', 'approval.decided']);
    expect(events[1]!.approval).toMatchObject({
      status: 'denied',
      decided_by: 'carol',
      decision_reason: 'not today',
    });
    expect(events[1]!.approval['fingerprint']).toBeUndefined();
  });

  it('delivers signed webhooks and Slack messages, once each', async () => {
    const rx = await receiver();
    receivers.push(rx);
    const r = await request(n.approvals, '/demo/items/2');
    const worker = new NotificationWorker({
      outbox: n.outbox,
      config: sinks(rx.base),
      consoleUrl: (id) => `https://chaperone.example/console/approval?id=${id}`,
      logger: silent,
      now,
    });
    await worker.tick();
    await worker.tick();
    const hooks = rx.hits.filter((h) => h.path === '/hook' && h.body.includes(r.id));
    expect(hooks).toHaveLength(1);
    const event = new Webhook(SECRET).verify(hooks[0]!.body, hooks[0]!.headers as Record<string, string>) as {
      type: string;
      data: { event_id: string; approval: { id: string; status: string }; console_url: string };
    };
    expect(event).toMatchObject({
      type: 'approval.requested',
      data: { approval: { id: r.id, status: 'pending' } },
    });
    expect(hooks[0]!.headers['webhook-id']).toBe(event.data.event_id);
    expect(event.data.console_url).toBe(`https://chaperone.example/console/approval?id=${r.id}`);
    const slack = rx.hits.filter((h) => h.path === '/slack' && h.body.includes('/demo/items/2'));
    expect(slack.map((h) => JSON.parse(h.body).text)).toEqual([
      `Approval requested: \`DELETE /demo/items/2\` on demo for alice via bot (deleting needs a review). <https://chaperone.example/console/approval?id=${r.id}|Open in the Chaperone console>`,
    ]);
    const rows = await n.outbox.list({ approvalId: r.id });
    expect(rows.map((d) => `${d.sink} ${d.status} ${d.attempts} ${d.last_status}`).sort()).toEqual([
      'hook delivered 1 204',
      'slack delivered 1 204',
    ]);
  });

  it('retries a failing receiver with backoff, then gives up after max_attempts', async () => {
    const rx = await receiver((path, n) =>
      path === '/hook' && n <= 2 ? 500 : path === '/slack' ? 503 : 204,
    );
    receivers.push(rx);
    const r = await request(n.approvals, '/demo/items/3');
    const worker = new NotificationWorker({
      outbox: n.outbox,
      config: sinks(rx.base, 3),
      consoleUrl: (id) => id,
      logger: silent,
      now,
    });
    await worker.tick();
    const state = async () =>
      (await n.outbox.list({ approvalId: r.id })).map((d) => `${d.sink} ${d.status} ${d.attempts}`).sort();
    expect(await state()).toEqual(['hook pending 1', 'slack pending 1']);
    await worker.tick(); // not due yet: no new attempt
    expect(await state()).toEqual(['hook pending 1', 'slack pending 1']);
    clock += backoffMs(1);
    await worker.tick();
    expect(await state()).toEqual(['hook pending 2', 'slack pending 2']);
    clock += backoffMs(2);
    await worker.tick();
    expect(await state()).toEqual(['hook delivered 3', 'slack failed 3']);
    clock += backoffMs(3) * 10;
    await worker.tick();
    expect(rx.hits.filter((h) => h.path === '/hook' && h.body.includes(r.id))).toHaveLength(3);
    expect(rx.hits.filter((h) => h.path === '/slack' && h.body.includes('/demo/items/3'))).toHaveLength(3);
    const failed = (await n.outbox.list({ approvalId: r.id })).find((d) => d.sink === 'slack')!;
    expect(failed).toMatchObject({ last_status: 503, last_error: 'HTTP 503' });
    expect(backoffMs(1)).toBe(5000);
    expect(backoffMs(30)).toBe(600_000);
  });

  it('expires requests nobody decided within the TTL, with an event', async () => {
    const old = await request(n.approvals, '/demo/items/4');
    clock += 2 * 3.6e6;
    const fresh = await request(n.approvals, '/demo/items/5');
    const expired = await n.approvals.expirePending(3.6e6);
    expect(expired.map((r) => r.id)).toContain(old.id);
    expect(expired.map((r) => r.id)).not.toContain(fresh.id);
    expect((await n.approvals.get(old.id))?.status).toBe('expired');
    expect((await n.approvals.get(fresh.id))?.status).toBe('pending');
    expect((await n.approvals.events(old.id)).map((e) => e.kind)).toEqual([
      'approval.requested',
      'approval.expired',
    ]);
    // The fingerprint is free again: the agent's next try raises a new request.
    expect((await request(n.approvals, '/demo/items/4')).id).not.toBe(old.id);
  });

  it('revokes a granted window: the grant is gone from memory at once, and an event says so', async () => {
    const r = await request(n.approvals, '/demo/items/6');
    await n.approvals.decide(r.id, CAROL, 'approve', { mode: 'window', ttl: '1h' });
    expect(n.approvals.grantFor(r.fingerprint)?.id).toBe(r.id);
    await expect(
      n.approvals.revokeGrant(r.id, { subject: 'bob', issuer: IDP, groups: ['contractors'] }),
    ).rejects.toMatchObject({ kind: 'forbidden' });
    const revoked = await n.approvals.revokeGrant(r.id, CAROL, 'window no longer needed');
    expect(revoked).toMatchObject({
      status: 'revoked',
      revoked_by: 'carol',
      decision_reason: 'window no longer needed',
    });
    expect(n.approvals.grantFor(r.fingerprint)).toBeNull();
    expect(await n.approvals.claim(r.id)).toBe(false);
    await expect(n.approvals.revokeGrant(r.id, CAROL)).rejects.toMatchObject({ kind: 'not_pending' });
    expect((await n.approvals.events(r.id)).map((e) => e.kind)).toEqual([
      'approval.requested',
      'approval.decided',
      'approval.revoked',
    ]);
  });
});

describe.skipIf(!DATABASE_URL)(
  `notifications across nodes on PostgreSQL${DATABASE_URL ? '' : ` (${NO_POSTGRES_REASON})`}`,
  () => {
    let db: TestDatabase;
    const nodes: Node[] = [];
    const now = Date.now;

    beforeAll(async () => {
      db = await createTestDatabase('chaperone_outbox');
      for (const name of ['one', 'two', 'three']) nodes.push(await node(name, db.url, now));
    }, 60_000);
    afterAll(async () => {
      for (const n of nodes) await closeNode(n);
      await db?.drop();
    });

    it('delivers every event to every sink exactly once while three nodes race for the outbox', async () => {
      const rx = await receiver();
      try {
        const made = [];
        for (let i = 0; i < 12; i++) made.push(await request(nodes[i % 3]!.approvals, `/demo/race/${i}`));
        for (const [i, r] of made.entries())
          if (i % 2 === 0) await nodes[(i + 1) % 3]!.approvals.decide(r.id, CAROL, 'approve');
        const workers = nodes.map(
          (n) =>
            new NotificationWorker({
              outbox: n.outbox,
              config: sinks(rx.base),
              consoleUrl: (id) => id,
              logger: silent,
            }),
        );
        await Promise.all(workers.flatMap((w) => [w.tick(), w.tick(), w.tick()]));
        await Promise.all(workers.map((w) => w.tick()));
        const hookIds = rx.hits.filter((h) => h.path === '/hook').map((h) => h.headers['webhook-id']);
        expect(hookIds).toHaveLength(12 + 6);
        expect(new Set(hookIds).size).toBe(hookIds.length);
        expect(rx.hits.filter((h) => h.path === '/slack')).toHaveLength(12);
        const counts = await nodes[0]!.outbox.counts();
        expect(counts).toEqual({ pending: 0, delivered: 30, failed: 0 });
      } finally {
        await rx.close();
      }
    });

    it('expires each pending request once when every node sweeps at the same moment', async () => {
      const r = await request(nodes[0]!.approvals, '/demo/stale');
      const swept = await Promise.all(nodes.map((n) => n.approvals.expirePending(0)));
      expect(swept.flat().filter((x) => x.id === r.id)).toHaveLength(1);
      expect((await nodes[1]!.approvals.events(r.id)).map((e) => e.kind)).toEqual([
        'approval.requested',
        'approval.expired',
      ]);
    });
  },
);
