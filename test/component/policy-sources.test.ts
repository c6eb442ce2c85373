// Where an authz server's policy comes from, through its real gRPC interface:
// - a plain HTTP bundle server with ETags (OPA's bundle protocol): the bundle is fetched with the
//   bearer token, 304s are honoured (the server answers 304 only to the right If-None-Match), a changed
//   bundle is served, an error or a refused (unsigned) bundle leaves the last good one serving;
// - the fleet's published revisions in a shared store (PGlite here; PostgreSQL in
//   test/e2e/policy-fleet.test.ts): served at start, followed on publish and rollback, recorded as
//   `r<N>` on decisions, and usable as a shadow candidate.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAuditStore } from '../../audit/store.ts';
import { type AuthzServer, startAuthzServer } from '../../authz-server/server.ts';
import type { DecisionEvent } from '../../contracts/decision.ts';
import { PolicyRevisionStore } from '../../fleet/policy-revisions.ts';
import { SharedState } from '../../fleet/shared-state.ts';
import { type AuthzClient, authzClient } from '../support/authz-client.ts';
import {
  FLEET_ENTRYPOINT,
  type KeyFiles,
  opaBuild,
  writeFleetPolicy,
  writeKeyPair,
} from '../support/policy-bundles.ts';
import { waitFor } from '../support/wait.ts';

let dir: string;
const bundles: Record<'v1' | 'v2' | 'v3', Buffer> = {} as never;
const signed: Record<'v1' | 'v3', Buffer> = {} as never;
let keys: KeyFiles;
const silent = pino({ level: 'silent' });
const sha16 = (b: Buffer) => createHash('sha256').update(b).digest('hex').slice(0, 16);

/** A bundle server: serves `current` with a strong ETag, 304 to a matching If-None-Match. */
class BundleServer {
  current: Buffer | null = null;
  failWith: number | null = null;
  readonly seen: { status: number; ifNoneMatch?: string; authorization?: string }[] = [];
  private server!: Server;
  url = '';

  async start() {
    this.server = createServer((req: IncomingMessage, res) => {
      const entry = {
        ifNoneMatch: req.headers['if-none-match'],
        authorization: req.headers.authorization,
        status: 200,
      };
      const body = this.current;
      const etag = body ? `"${sha16(body)}"` : null;
      if (this.failWith || !body) entry.status = this.failWith ?? 404;
      else if (req.headers['if-none-match'] === etag) entry.status = 304;
      this.seen.push(entry);
      if (entry.status !== 200) res.writeHead(entry.status).end();
      else res.writeHead(200, { etag: etag!, 'content-type': 'application/gzip' }).end(body);
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/bundles/fleet.tar.gz`;
  }

  close() {
    return new Promise<void>((r) => this.server.close(() => r()));
  }
}

function serverWith(extra: Partial<Parameters<typeof startAuthzServer>[0]>, events: DecisionEvent[] = []) {
  return startAuthzServer({
    address: '127.0.0.1:0',
    logger: silent,
    ...extra,
    policy: { dir: join(dir, 'local'), entrypoint: FLEET_ENTRYPOINT, ...extra.policy },
    recorder: { record: async (e) => void events.push(e) },
  });
}

const revisionOf = async (client: AuthzClient) =>
  (await client.check({ path: '/x' })).dynamicMetadata?.fields['policy_revision']?.stringValue;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chaperone-sources-'));
  keys = await writeKeyPair(dir, 'rsa');
  await writeFleetPolicy(join(dir, 'local'), 'local');
  for (const v of ['v1', 'v2', 'v3'] as const) {
    const src = await writeFleetPolicy(join(dir, v), v);
    bundles[v] = await readFile(await opaBuild(src, join(dir, `${v}.tar.gz`)));
    if (v !== 'v2')
      signed[v] = await readFile(
        await opaBuild(src, join(dir, `${v}-signed.tar.gz`), { key: keys.privatePem }),
      );
  }
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('a bundle server (OPA bundle protocol)', () => {
  const bs = new BundleServer();
  let server: AuthzServer;
  let client: AuthzClient;

  beforeAll(async () => {
    await bs.start();
    bs.current = bundles.v1;
    process.env['CHAPERONE_TEST_BUNDLE_TOKEN'] = 'bundle-token-123';
    server = await serverWith({
      policy: {
        bundleService: {
          url: bs.url,
          token: 'env:CHAPERONE_TEST_BUNDLE_TOKEN',
          minDelaySec: 0.05,
          maxDelaySec: 0.1,
        },
      },
    });
    client = authzClient(server.address);
  });

  afterAll(async () => {
    client?.close();
    await server?.close();
    await bs.close();
  });

  it('serves the bundle from the server at start, sent with the bearer token', async () => {
    expect(await revisionOf(client)).toBe(sha16(bundles.v1));
    expect(bs.seen[0]).toMatchObject({ status: 200, authorization: 'Bearer bundle-token-123' });
    expect(bs.seen[0]?.ifNoneMatch).toBeUndefined();
  });

  it('polls with If-None-Match and gets 304s while the bundle is unchanged', async () => {
    await waitFor(() => bs.seen.filter((s) => s.status === 304).length >= 3, { what: 'three 304s' });
    expect(bs.seen.filter((s) => s.status === 200)).toHaveLength(1);
    expect(bs.seen.at(-1)?.ifNoneMatch).toBe(`"${sha16(bundles.v1)}"`);
    expect(server.policyStatus()).toMatchObject({
      origin: `url ${bs.url}`,
      bundle_service: { downloads: 1, loaded: 1, etag: `"${sha16(bundles.v1)}"` },
    });
  });

  it('picks up a changed bundle', async () => {
    bs.current = bundles.v2;
    await waitFor(async () => (await revisionOf(client)) === sha16(bundles.v2), { what: 'v2 served' });
    const res = await client.check({ path: '/x' });
    expect(res.okResponse).toBeDefined();
  });

  it('keeps serving the last good bundle while the server fails, and backs off', async () => {
    const before = bs.seen.length;
    bs.failWith = 503;
    await waitFor(() => bs.seen.slice(before).filter((s) => s.status === 503).length >= 2, {
      what: 'two 503s',
    });
    expect(await revisionOf(client)).toBe(sha16(bundles.v2));
    expect(server.policyStatus()).toMatchObject({
      revision: sha16(bundles.v2),
      error: { code: 'ERR_BUNDLE_SOURCE', message: 'bundle server answered HTTP 503' },
      bundle_service: { last_error: 'bundle server answered HTTP 503' },
    });
    bs.failWith = null;
  });
});

describe('a bundle server with signature verification', () => {
  const bs = new BundleServer();
  let server: AuthzServer;
  let client: AuthzClient;

  beforeAll(async () => {
    await bs.start();
    bs.current = signed.v1;
    server = await serverWith({
      policy: {
        bundleService: { url: bs.url, token: null, minDelaySec: 0.05, maxDelaySec: 0.1 },
        signing: {
          keyid: null,
          scope: null,
          excludeFiles: [],
          keys: { default: { algorithm: 'RS256', key: `file:${keys.publicPem}`, scope: null } },
        },
      },
    });
    client = authzClient(server.address);
  });

  afterAll(async () => {
    client?.close();
    await server?.close();
    await bs.close();
  });

  it('serves the signed bundle, refuses an unsigned one (last good serves), serves the next signed one', async () => {
    expect(await revisionOf(client)).toBe(sha16(signed.v1));
    bs.current = bundles.v2;
    await waitFor(() => (server.policyStatus()['refused'] as number) >= 1, {
      what: 'the unsigned bundle refused',
    });
    expect(server.policyStatus()).toMatchObject({
      revision: sha16(signed.v1),
      verified_by: 'default',
      last_refused: { code: 'ERR_BUNDLE_SIGNATURE' },
    });
    expect(await revisionOf(client)).toBe(sha16(signed.v1));
    // The refused bundle is not downloaded again and again: its ETag is sent and answered 304.
    const downloads = (server.policyStatus()['bundle_service'] as { downloads: number }).downloads;
    await waitFor(() => bs.seen.filter((s) => s.ifNoneMatch === `"${sha16(bundles.v2)}"`).length >= 2, {
      what: 'polls naming the refused ETag',
    });
    expect((server.policyStatus()['bundle_service'] as { downloads: number }).downloads).toBe(downloads);
    bs.current = signed.v3;
    await waitFor(async () => (await revisionOf(client)) === sha16(signed.v3), { what: 'signed v3 served' });
  });
});

describe('revisions published to the shared store', () => {
  let state: SharedState;
  let close: () => Promise<void>;
  let revisions: PolicyRevisionStore;
  const publish = (b: Buffer, source: string) =>
    revisions.publish({
      bundle: b,
      sha256: createHash('sha256').update(b).digest('hex'),
      entrypoints: [FLEET_ENTRYPOINT],
      signedBy: null,
      manifestRevision: null,
      source,
    });

  beforeAll(async () => {
    const store = await openAuditStore({});
    await store.migrate();
    state = await SharedState.open(store.sql, 'test-node', silent);
    revisions = new PolicyRevisionStore(state);
    close = async () => {
      await state.close();
      await store.close();
    };
  });

  afterAll(async () => {
    await close?.();
  });

  it('a node serves the active revision at start, follows publish and rollback, and records r<N>', async () => {
    await publish(bundles.v1, 'v1/');
    const events: DecisionEvent[] = [];
    const server = await serverWith({ sharedState: state }, events);
    const client = authzClient(server.address);
    try {
      expect(await revisionOf(client)).toBe('r1');
      expect(server.policyStatus()).toMatchObject({ origin: 'store r1', fleet_active: 'r1' });
      await publish(bundles.v2, 'v2/');
      await waitFor(async () => (await revisionOf(client)) === 'r2', { what: 'r2 served', timeoutMs: 1000 });
      expect(events.at(-1)).toMatchObject({ policyRevision: 'r2', verdict: { reason: 'policy v2' } });
      await revisions.rollback(1);
      await waitFor(async () => (await revisionOf(client)) === 'r1', {
        what: 'r1 served again',
        timeoutMs: 1000,
      });
      expect(events.at(-1)).toMatchObject({ policyRevision: 'r1', verdict: { reason: 'policy v1' } });
      expect((await revisions.activations()).map((a) => [a.id, a.reason])).toEqual([
        ['r1', 'rollback'],
        ['r2', 'publish'],
        ['r1', 'publish'],
      ]);
    } finally {
      client.close();
      await server.close();
    }
  });

  it('a published revision is a shadow candidate', async () => {
    const events: DecisionEvent[] = [];
    const server = await serverWith({ sharedState: state, shadow: { revision: 'r2' } }, events);
    const client = authzClient(server.address);
    try {
      await client.check({ path: '/x' });
      expect(events.at(-1)).toMatchObject({
        policyRevision: 'r1',
        shadow: { revision: 'r2', decision: 'allow', differs: false },
      });
      await expect(serverWith({ sharedState: state, shadow: { revision: 'r99' } })).rejects.toThrow(
        /shadow revision r99 is not in the store/,
      );
    } finally {
      client.close();
      await server.close();
    }
  });
});
