// Past capacity the authz server answers at once, and explicitly, on both transports: a burst beyond the
// Checks it admits gets 503 ERR_OVERLOADED while the admitted ones are still running (here: stuck on a
// slow disk in their durable append), every ALLOW that comes back is in the spool exactly once and no
// shed Check is, and the next Check after the burst is served normally. A Check whose caller gave up
// (its deadline passed while it waited for the issuer's keys) is neither evaluated nor recorded, and
// Checks read while the event loop runs late are shed until it has caught up.
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SpoolRecorder } from '../../audit/recorder.ts';
import { type AppendHandle, Spool } from '../../audit/spool.ts';
import { type AuthzServer, type AuthzTransport, startAuthzServer } from '../../authz-server/server.ts';
import { EXT_AUTHZ_PROTO, loadEnvoyProtos, lookup } from '../../lib/envoy-proto.ts';
import { type CheckResponse, checkRequest, deniedStatus, headerOf } from '../support/authz-client.ts';
import { waitFor } from '../support/wait.ts';

const ISSUER = 'https://idp.overload.test';
const MAX_IN_FLIGHT = 8;

/** A gate the test opens: whatever waits on it is held until then. */
function gate() {
  let release: () => void = () => undefined;
  let promise = Promise.resolve();
  return {
    close() {
      promise = new Promise<void>((r) => {
        release = r;
      });
    },
    open: () => release(),
    wait: () => promise,
  };
}

/** The spool's segment file, whose fsyncs wait for `disk` (a slow disk, on demand). */
const slowDisk =
  (disk: ReturnType<typeof gate>) =>
  async (path: string): Promise<AppendHandle> => {
    const fh = await open(path, 'a', 0o600);
    return {
      write: ((...args: Parameters<typeof fh.write>) => fh.write(...args)) as AppendHandle['write'],
      datasync: async () => {
        await disk.wait();
        return fh.datasync();
      },
      truncate: (len) => fh.truncate(len),
      close: () => fh.close(),
    };
  };

function client(address: string) {
  const Ctor = lookup<grpc.ServiceClientConstructor>(
    loadEnvoyProtos([EXT_AUTHZ_PROTO]),
    'envoy.service.auth.v3.Authorization',
  );
  const c = new Ctor(address, grpc.credentials.createInsecure());
  const check = (path: string, token: string, deadlineMs = 10_000) =>
    new Promise<CheckResponse>((resolve, reject) => {
      c['Check'](
        checkRequest({ path, headers: { authorization: `Bearer ${token}` } }),
        { deadline: Date.now() + deadlineMs },
        (err: Error | null, res: CheckResponse) => (err ? reject(err) : resolve(res)),
      );
    });
  return { check, close: () => c.close() };
}

const decisionIdOf = (res: CheckResponse) => headerOf(res.okResponse?.headers, 'x-chaperone-decision-id');
const isOverloaded = (res: CheckResponse) =>
  deniedStatus(res) === 503 &&
  JSON.parse(res.deniedResponse?.body ?? '{}').error === 'ERR_OVERLOADED' &&
  headerOf(res.deniedResponse?.headers, 'retry-after') === '1';

let dir: string;
let jwksServer: Server;
let jwks: { keys: unknown[] };
let token: string;
const keysFetch = gate();

/** A token signed with a new key, which the JWKS publishes from now on (a verifier must fetch it). */
async function tokenWithNewKey(kid: string): Promise<string> {
  const { jwt, jwk } = await signed(kid);
  jwks.keys.push(jwk);
  return jwt;
}

async function signed(kid: string) {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwt = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid })
    .setIssuer(ISSUER)
    .setAudience('chaperone')
    .setSubject('alice')
    .setExpirationTime('1h')
    .sign(privateKey);
  return { jwt, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chaperone-overload-'));
  await writeFile(
    join(dir, 'p.rego'),
    'package t\n\ndefault decision := false\n\ndecision if {\n\tinput.identity.subject == "alice"\n\tinput.parsed_path[0] == "ok"\n}\n',
  );
  const first = await signed('k1');
  token = first.jwt;
  jwks = { keys: [first.jwk] };
  jwksServer = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(jwks));
  });
  await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', () => r()));
}, 60_000);

afterAll(async () => {
  jwksServer?.close();
  await rm(dir, { recursive: true, force: true });
});

describe.each<AuthzTransport>(['grpc-js', 'http2'])('overload on the %s transport', (transport) => {
  let server: AuthzServer;
  let spool: Spool;
  const disk = gate();

  beforeAll(async () => {
    const port = (jwksServer.address() as { port: number }).port;
    spool = await Spool.open({ dir: join(dir, `spool-${transport}`), openForAppend: slowDisk(disk) });
    server = await startAuthzServer({
      address: '127.0.0.1:0',
      transport,
      maxInFlight: MAX_IN_FLIGHT,
      // The in-flight bound alone here (a busy test machine must not shed by lag); the lag test below
      // has a server of its own.
      maxLagMs: 0,
      policy: { dir, entrypoint: 't/decision' },
      identity: {
        issuers: [{ issuer: ISSUER, audiences: ['chaperone'], jwksUri: `http://127.0.0.1:${port}/jwks` }],
        jwksRefreshMinIntervalMs: 0,
        // The issuer's real keys, through a fetch the test can hold (the keys arrive late).
        fetch: async (input, init) => {
          await keysFetch.wait();
          return fetch(input, init);
        },
      },
      logger: pino({ level: 'silent' }),
      recorder: new SpoolRecorder(spool),
    });
  }, 60_000);

  afterEach(() => disk.open());

  afterAll(async () => {
    await server?.close();
    await spool?.close();
  });

  /** The decision ids of the allows in the spool. */
  async function spooledAllows(): Promise<string[]> {
    const { records } = await spool.read({ segment: 1, offset: 0 }, 100_000);
    return (records as { decision_id: string; decision: string }[])
      .filter((r) => r.decision === 'allow')
      .map((r) => r.decision_id);
  }

  it('answers a burst beyond capacity with fast 503 ERR_OVERLOADED, records every ALLOW once, and recovers', async () => {
    const c = client(server.address);
    try {
      expect(decisionIdOf(await c.check('/ok', token))).toBeDefined(); // warm: keys fetched, policy ready
      const before = await spooledAllows();
      disk.close(); // the durable append now waits: admitted Checks stay in flight
      const burst = Array.from({ length: 60 }, () => c.check('/ok', token));
      const answered: CheckResponse[] = [];
      for (const p of burst) void p.then((r) => answered.push(r));
      // The shed ones come back while the admitted ones are still waiting for the disk.
      await waitFor(() => answered.length >= 60 - MAX_IN_FLIGHT, {
        what: 'the shed Checks to be answered',
        timeoutMs: 10_000,
      });
      const shed = [...answered];
      expect(shed).toHaveLength(60 - MAX_IN_FLIGHT);
      expect(shed.every(isOverloaded)).toBe(true);
      expect(shed.every((r) => decisionIdOf(r) === undefined && r.okResponse === undefined)).toBe(true);
      expect(server.admission.stats()).toMatchObject({ inFlight: MAX_IN_FLIGHT, maxInFlight: MAX_IN_FLIGHT });
      disk.open();
      const all = await Promise.all(burst);
      const allowed = all.filter((r) => r.okResponse).map((r) => decisionIdOf(r)!);
      expect(allowed).toHaveLength(MAX_IN_FLIGHT);
      expect(all.filter(isOverloaded)).toHaveLength(60 - MAX_IN_FLIGHT);
      // Every ALLOW is in the spool exactly once; nothing else of the burst is.
      const spooled = (await spooledAllows()).slice(before.length);
      expect(spooled.sort()).toEqual([...allowed].sort());
      expect(server.metrics.errors['ERR_OVERLOADED']).toBe(60 - MAX_IN_FLIGHT);
      // Immediate recovery: the next Checks, up to the bound at once, are served.
      const next = await Promise.all(Array.from({ length: MAX_IN_FLIGHT }, () => c.check('/ok', token)));
      expect(next.every((r) => r.okResponse !== undefined)).toBe(true);
      expect(server.admission.stats()).toMatchObject({ inFlight: 0, shed: 60 - MAX_IN_FLIGHT });
    } finally {
      c.close();
    }
  });

  it('sheds the Checks it reads while its event loop runs late, and serves again once it caught up', async () => {
    const lagged = await startAuthzServer({
      address: '127.0.0.1:0',
      transport,
      maxLagMs: 200,
      policy: { dir, entrypoint: 't/decision' },
      logger: pino({ level: 'silent' }),
    });
    const c = client(lagged.address);
    try {
      expect((await c.check('/ok', 'no-token')).deniedResponse).toBeDefined(); // connected, answering
      /** The process stalls (as on a CPU-starved machine, or in a long GC) while Checks arrive. */
      const stall = () => {
        const until = Date.now() + 500;
        while (Date.now() < until) {
          // busy: nothing else runs in this thread meanwhile
        }
      };
      // One Check after a stall is served: a slow turn alone is no overload.
      stall();
      expect(isOverloaded(await c.check('/ok', 'no-token'))).toBe(false);
      await waitFor(() => lagged.admission.stats().lagMs < 200, { what: 'the loop to catch up' });
      const before = lagged.admission.stats().shedLate;
      stall();
      const late = await Promise.all(Array.from({ length: 40 }, () => c.check('/ok', 'no-token')));
      expect(late.some(isOverloaded)).toBe(true);
      expect(lagged.admission.stats().shedLate).toBeGreaterThan(before);
      await waitFor(() => lagged.admission.stats().lagMs < 200, { what: 'the loop to catch up' });
      // Served again: the policy's own deny (no identity here), not a shed.
      const next = await c.check('/ok', 'no-token');
      expect(isOverloaded(next)).toBe(false);
      expect(deniedStatus(next)).toBe(403);
    } finally {
      c.close();
      await lagged.close();
    }
  });

  it('neither evaluates nor records a Check whose caller gave up while it waited', async () => {
    const c = client(server.address);
    try {
      const abandonedBefore = server.metrics.abandoned ?? 0;
      const totalBefore = server.metrics.total;
      const recordedBefore = (await spool.read({ segment: 1, offset: 0 }, 100_000)).records.length;
      const lateKeyToken = await tokenWithNewKey(`late-${transport}`);
      keysFetch.close(); // the issuer's keys are slow to come
      const gaveUp = await c.check('/ok', lateKeyToken, 300).catch((err: grpc.ServiceError) => err);
      expect((gaveUp as grpc.ServiceError).code).toBe(grpc.status.DEADLINE_EXCEEDED);
      keysFetch.open();
      await waitFor(() => (server.metrics.abandoned ?? 0) === abandonedBefore + 1, {
        what: 'the Check to be dropped',
        timeoutMs: 10_000,
      });
      // Not decided (not counted), not recorded; the same token works for a caller who waits.
      expect(server.metrics.total).toBe(totalBefore);
      expect((await spool.read({ segment: 1, offset: 0 }, 100_000)).records).toHaveLength(recordedBefore);
      const res = await c.check('/ok', lateKeyToken);
      expect(res.okResponse).toBeDefined();
    } finally {
      keysFetch.open();
      c.close();
    }
  });
});
