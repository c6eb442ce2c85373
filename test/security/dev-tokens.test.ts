// Dev-mode tokens hand out any demo user's token, so they exist only with --dev, only on a loopback
// API, and only for loopback peers: `chaperone up --dev` with its API on a non-loopback bind serves
// none (and says so in its status line); `chaperone up` without --dev serves none; the route itself
// refuses a peer that is not on loopback.
import { networkInterfaces } from 'node:os';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { hostAllowList } from '../../api/host-allow-list.ts';
import { type HttpApi, startHttpApi } from '../../api/http-api.ts';
import { RevocationIndex } from '../../fleet/agent-registry.ts';
import { IdentityVerifier } from '../../identity/verifier.ts';
import { routeCatalog } from '../support/api-routes.ts';
import {
  devGatewayYaml,
  type GatewayProcess,
  gatewayPorts,
  startGatewayProcess,
} from '../support/gateway-process.ts';
import { rawRequest } from '../support/http-raw.ts';
import { type OidcProvider, startOidcProvider } from '../support/oidc-provider.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

const externalAddress = Object.values(networkInterfaces())
  .flat()
  .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

describe('dev tokens', () => {
  it('are absent when the API of chaperone up --dev is not on loopback, and the status line says so', async () => {
    const ports = await gatewayPorts();
    const gw: GatewayProcess = await startGatewayProcess({
      ports,
      yaml: (p) =>
        devGatewayYaml(p).replace(`http_address: 127.0.0.1:${p.api}`, `http_address: 0.0.0.0:${p.api}`),
    });
    cleanups.push(() => gw.cleanup());
    expect(gw.output()).toContain('(dev tokens off: API not on loopback)');
    const res = await fetch(`${gw.api}/dev/token?user=carol`);
    expect(res.status).toBe(404);
    expect((await fetch(`${gw.api}/healthz`)).status).toBe(200);
  }, 180_000);

  it('are absent without --dev', async () => {
    const ports = await gatewayPorts();
    // The issuer the config names, started by the test since `chaperone up` runs no dev issuer here.
    const idp: OidcProvider = await startOidcProvider({
      audience: 'chaperone',
      port: ports.idp,
      users: [{ sub: 'carol', groups: ['security'] }],
    });
    cleanups.push(() => idp.close());
    const gw = await startGatewayProcess({ ports, dev: false });
    cleanups.push(() => gw.cleanup());
    expect(gw.output()).not.toContain('dev tokens');
    expect((await fetch(`${gw.api}/dev/token?user=carol`)).status).toBe(404);
    expect((await fetch(`${gw.api}/healthz`)).status).toBe(200);
  }, 180_000);

  it.skipIf(!externalAddress)(
    `refuse a peer that is not on loopback (needs a non-loopback IPv4 address${externalAddress ? '' : ': none here'})`,
    async () => {
      const calls: string[] = [];
      const api: HttpApi = await startHttpApi({
        host: '0.0.0.0',
        port: 0,
        routes: routeCatalog(calls),
        logger: pino({ level: 'silent' }),
        hosts: hostAllowList({ bindHost: '0.0.0.0', publicUrls: [`http://${externalAddress}`] }),
        auth: {
          verifier: new IdentityVerifier({ issuers: [] }),
          agentIssuer: 'http://127.0.0.1:1',
          revocation: new RevocationIndex(),
          access: { admins: [], auditors: [], reviewers: [] },
        },
      });
      cleanups.push(() => api.close());
      const remote = await rawRequest({
        host: externalAddress!,
        port: api.port,
        path: '/dev/token?user=alice',
        headers: { host: `${externalAddress}:${api.port}` },
      });
      expect([remote.status, JSON.parse(remote.body).error]).toEqual([403, 'loopback_only']);
      expect(calls).toEqual([]);
      // The same request from loopback reaches the route (its token source is a stub here).
      const local = await rawRequest({ port: api.port, path: '/dev/token?user=alice' });
      expect(local.status).toBe(500);
      expect(calls).toEqual(['dev.tokenFor']);
    },
  );
});
