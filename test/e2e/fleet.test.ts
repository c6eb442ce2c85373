// Scale-out: two gateways — each a control plane, an authz server and a real Envoy (A's on state-of-the-
// world xDS, B's on delta), started with the real CLI — share one PostgreSQL. A change made through one (a config edit, an approval, a revocation)
// reaches the Envoys of the other through the store (LISTEN/NOTIFY), and the decisions of both land
// in one hash chain.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authzClient, checkDemoWith, deniedStatus } from '../support/authz-client.ts';
import { type AuthzServeProcess, runCli, startAuthzServe } from '../support/cli.ts';
import {
  apiFetch,
  devGatewayYaml,
  type GatewayPorts,
  type GatewayProcess,
  gatewayPorts,
  startGatewayProcess,
} from '../support/gateway-process.ts';
import {
  createTestDatabase,
  DATABASE_URL,
  NO_POSTGRES_REASON,
  type TestDatabase,
} from '../support/postgres.ts';
import { waitFor } from '../support/wait.ts';

let db: TestDatabase;
let a: GatewayProcess;
let b: GatewayProcess;
let portsA: GatewayPorts;
/** A third authz server on its own (`chaperone authz serve --store`), a member of the same fleet. */
let standalone: AuthzServeProcess;
let standaloneAddr: string;
const tokens: Record<string, string> = {};

/** Both nodes trust A's dev issuer, route to A's demo upstream, share the store and the agent issuer. */
function fleetYaml(extraTargets = '', demoCredential = false) {
  return (p: GatewayPorts) =>
    devGatewayYaml({ ...p, idp: portsA.idp, demo: portsA.demo }, extraTargets)
      .replace(
        '      path_prefix: /demo\n',
        `      path_prefix: /demo\n${demoCredential ? '    credentials:\n      - header: authorization\n        value: env:FLEET_DEMO_TOKEN\n        format: Bearer {}\n' : ''}`,
      )
      .replace('store: embedded', `store: ${db.url}`)
      .replace(
        `  http_address: 127.0.0.1:${p.api}\n`,
        `  http_address: 127.0.0.1:${p.api}\n  issuer: http://127.0.0.1:${portsA.api}\n`,
      )
      // B's Envoy speaks incremental xDS, A's state of the world: a fleet may mix them.
      .concat(p.api === portsA.api ? '' : 'envoy:\n  delta_xds: true\n');
}

function via(
  gw: GatewayProcess,
  path: string,
  init: RequestInit & { token?: string } = {},
): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set('authorization', `Bearer ${init.token}`);
  return fetch(`${gw.egress}${path}`, { ...init, headers });
}

describe.skipIf(!DATABASE_URL)(
  `a fleet of two gateways on one PostgreSQL${DATABASE_URL ? '' : ` (${NO_POSTGRES_REASON})`}`,
  () => {
    beforeAll(async () => {
      db = await createTestDatabase('chaperone_fleet');
      portsA = await gatewayPorts();
      const portsB = await gatewayPorts();
      const env = { FLEET_DEMO_TOKEN: 'fleet-demo-secret' };
      a = await startGatewayProcess({ ports: portsA, yaml: fleetYaml(), env });
      b = await startGatewayProcess({ ports: portsB, yaml: fleetYaml(), env });
      // A Unix socket: the fleet shares the store, not the transport (mutual TLS is tested on its own).
      standaloneAddr = `unix:${join(a.dir, 'standalone-authz.sock')}`;
      standalone = startAuthzServe(standaloneAddr, [
        '--issuer',
        `http://127.0.0.1:${portsA.idp}`,
        '--audience',
        'chaperone',
        '--control-plane',
        a.api,
        '--store',
        db.url,
        '--spool-dir',
        join(a.dir, 'standalone-spool'),
      ]);
      await standalone.ready();
      for (const u of ['alice', 'bob', 'carol']) {
        const res = await fetch(`${a.api}/dev/token?user=${u}`);
        tokens[u] = ((await res.json()) as { token: string }).token;
      }
    }, 300_000);

    afterAll(async () => {
      standalone?.stop();
      await a?.cleanup();
      await b?.cleanup();
      await db?.drop();
    });

    it('serves traffic through both Envoys and records both nodes’ decisions in one intact chain', async () => {
      expect((await via(a, '/demo/items', { token: tokens['alice'] })).status).toBe(200);
      expect((await via(b, '/demo/items', { token: tokens['alice'] })).status).toBe(200);
      expect((await via(b, '/demo/items', { token: tokens['bob'] })).status).toBe(403);
      // Each node's shipper moves its own spool into the shared store; either API sees all of it.
      await waitFor(
        async () => {
          const res = await apiFetch(b, tokens['carol']!, `/audit/decisions?target=demo&limit=50`);
          const rows = ((await res.json()) as { rows: { subject: string }[] }).rows;
          return (
            rows.filter((r) => r.subject === 'alice').length >= 2 && rows.some((r) => r.subject === 'bob')
          );
        },
        { what: 'the three decisions in the shared trail', timeoutMs: 15_000 },
      );
      // A trusts no key from the database: B's checkpoints verify once an operator pins B's keys in A's
      // state directory (docs/audit.md).
      const unpinned = (await (await apiFetch(a, tokens['carol']!, `/audit/verify`)).json()) as {
        ok: boolean;
        reason?: string;
      };
      expect(unpinned).toMatchObject({ ok: false, reason: expect.stringMatching(/which is not trusted$/) });
      const pin = await runCli([
        'audit',
        'trust',
        'export',
        '--config',
        b.configPath,
        '--out',
        join(a.dir, 'keys', 'trusted.jwks'),
      ]);
      expect(pin.code, pin.out).toBe(0);
      const verdict = (await (await apiFetch(a, tokens['carol']!, `/audit/verify`)).json()) as {
        ok: boolean;
        count: number;
      };
      expect(verdict.ok).toBe(true);
      expect(verdict.count).toBeGreaterThanOrEqual(3);
    });

    it('a config edit on one control plane reaches the Envoy of the other', async () => {
      expect((await via(b, '/extra/x', { token: tokens['alice'] })).status).toBe(404);
      const extra = `  - name: extra\n    upstream: http://127.0.0.1:${portsA.demo}\n    match:\n      path_prefix: /extra\n`;
      const edited = Date.now();
      await writeFile(a.configPath, fleetYaml(extra)(a.ports));
      // The shipped library has no rules for target "extra": once B's Envoy routes it, it is a 403.
      await waitFor(async () => (await via(b, '/extra/x', { token: tokens['alice'] })).status === 403, {
        what: "A's new route on B's Envoy",
        timeoutMs: 10_000,
        intervalMs: 20,
      });
      // Watch debounce (200 ms) → revision in PostgreSQL → NOTIFY → B translates → ADS → Envoy ACK.
      expect(Date.now() - edited).toBeLessThan(2_000);
      const status = (await (await apiFetch(b, tokens['carol']!, `/status`)).json()) as {
        xds: { config: { fleet: { revision: number; origin: string } }; streams: { mode: string }[] };
      };
      expect(status.xds.streams.map((s) => s.mode)).toEqual(['delta']);
      expect(status.xds.config.fleet.origin).toContain(`127.0.0.1:${a.ports.api}`);
      expect(status.xds.config.fleet.revision).toBeGreaterThanOrEqual(2);
    });

    it('a credential added to a target on one node is injected by the other node’s authz server', async () => {
      const seen = async () =>
        (
          (await (await via(b, '/demo/items', { token: tokens['alice'] })).json()) as {
            seen: { authorization_header_present: boolean };
          }
        ).seen.authorization_header_present;
      expect(await seen()).toBe(false);
      const extra = `  - name: extra\n    upstream: http://127.0.0.1:${portsA.demo}\n    match:\n      path_prefix: /extra\n`;
      await writeFile(a.configPath, fleetYaml(extra, true)(a.ports));
      await waitFor(seen, { what: "the credential at B's authz server", timeoutMs: 10_000, intervalMs: 50 });
      // The secret is injected at the edge; the revision in the store holds only the reference.
      const status = await (await apiFetch(b, tokens['carol']!, `/status`)).text();
      expect(status).not.toContain('fleet-demo-secret');
      expect(status).toContain('env:FLEET_DEMO_TOKEN');
    });

    it('an approval given through one control plane lets the request through the other’s Envoy, once', async () => {
      const first = await via(b, '/demo/items/7', { method: 'DELETE', token: tokens['alice'] });
      expect(first.status).toBe(403);
      const body = (await first.json()) as { error: string; approval_id: string };
      expect(body.error).toBe('approval_required');

      // The request asked for at B is pending at A.
      const list = await runCli(['approvals', 'list', '--api', a.api, '--token', tokens['carol']!]);
      expect(list.code, list.out).toBe(0);
      expect(list.out).toContain(body.approval_id);
      const ok = await runCli([
        'approvals',
        'approve',
        body.approval_id,
        '--api',
        a.api,
        '--token',
        tokens['carol']!,
      ]);
      expect(ok.code, ok.out).toBe(0);

      expect((await via(b, '/demo/items/7', { method: 'DELETE', token: tokens['alice'] })).status).toBe(200);
      // One-time, fleet-wide: the same request through A's Envoy needs a new approval.
      const again = await via(a, '/demo/items/7', { method: 'DELETE', token: tokens['alice'] });
      expect(again.status).toBe(403);
      expect(((await again.json()) as { approval_id: string }).approval_id).not.toBe(body.approval_id);
    });

    it('an agent token minted through one control plane works everywhere, and a revocation through the other stops it everywhere', async () => {
      const minted = await runCli([
        'agent',
        'token',
        '--name',
        'fleet-bot',
        '--targets',
        'demo',
        '--api',
        a.api,
        '--token',
        tokens['alice']!,
      ]);
      expect(minted.code, minted.out).toBe(0);
      const agentToken = minted.out.trim().split('\n').at(-1)!;
      expect((await via(a, '/demo/items', { token: agentToken })).status).toBe(200);
      expect((await via(b, '/demo/items', { token: agentToken })).status).toBe(200);
      const client = authzClient(standaloneAddr);
      const checkStandalone = () => checkDemoWith(client, agentToken);
      await waitFor(async () => (await checkStandalone()).status.code === 0, {
        what: 'the standalone fleet member to allow the agent',
        timeoutMs: 60_000,
      });

      // B's inventory lists the token A issued.
      const inventory = await runCli([
        'agents',
        'list',
        '--json',
        '--api',
        b.api,
        '--token',
        tokens['alice']!,
      ]);
      expect(inventory.code, inventory.out).toBe(0);
      expect((JSON.parse(inventory.out) as { agent: string }[]).map((r) => r.agent)).toContain('fleet-bot');

      const revoke = await runCli([
        'agents',
        'revoke',
        '--agent',
        'fleet-bot',
        '--api',
        b.api,
        '--token',
        tokens['alice']!,
      ]);
      expect(revoke.code, revoke.out).toBe(0);
      const started = Date.now();
      await waitFor(async () => (await via(a, '/demo/items', { token: agentToken })).status === 401, {
        what: "B's revocation at A's authz server",
        timeoutMs: 5_000,
        intervalMs: 20,
      });
      expect(Date.now() - started).toBeLessThan(1_000);
      // The standalone member learns it from the store too (no polling of a control plane).
      await waitFor(async () => deniedStatus(await checkStandalone()) === 401, {
        what: 'the revocation at the standalone authz server',
        timeoutMs: 1_000,
        intervalMs: 20,
      });
      client.close();
      const denied = await via(b, '/demo/items', { token: agentToken });
      expect(denied.status).toBe(401);
      expect(((await denied.json()) as { code: string }).code).toBe('ERR_TOKEN_REVOKED');
      // The standalone member's decisions are shipped into the same trail (its checks carry the
      // host api.example.test; the Envoys' carry 127.0.0.1).
      await waitFor(
        async () => {
          const res = await apiFetch(b, tokens['carol']!, `/audit/decisions?target=demo&limit=200`);
          const rows = (
            (await res.json()) as { rows: { host: string; reason_code: string; decision: string }[] }
          ).rows;
          // A revoked token is no identity: these denials are the unauthenticated ones of this test.
          const hosts = rows.filter((r) => r.reason_code === 'DENIED_UNAUTHENTICATED').map((r) => r.host);
          return hosts.includes('api.example.test') && hosts.filter((h) => h === '127.0.0.1').length >= 2;
        },
        { what: "every node's denials of the revoked agent in the trail", timeoutMs: 15_000 },
      );
    }, 120_000);
  },
);
