// Attacker: another local user on a single-node gateway (`chaperone up`, the default data plane on Unix
// sockets). Through the real processes, as a second OS user (`setpriv` to `chaperone-probe`), it tries
// what issue 11 found open: a plain gRPC Check on the authz socket (an allowed Check would carry the
// upstream credential), a fake access-log row, an ADS stream (Envoy's whole config), ext_proc, and
// Envoy's admin /config_dump. The OS refuses each (EACCES) before any byte reaches a server; the
// gateway's own user — its Envoy — is answered, and traffic flows end to end. Also here: a client's
// x-forwarded-for / x-real-ip / forwarded never reach the upstream as sent.
import { chmod, stat } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DATA_PLANE_CALLS,
  type LocalUser,
  NOT_ROOT_REASON,
  otherLocalUser,
  probe,
} from '../support/attacker.ts';
import {
  devGatewayYaml,
  devToken,
  type GatewayProcess,
  gatewaySockets,
  startGatewayProcess,
} from '../support/gateway-process.ts';
import { type EchoUpstream, startEchoUpstream } from '../support/upstream.ts';

const root = process.getuid?.() === 0;
let user: LocalUser | null = null;
let gw: GatewayProcess;
let echo: EchoUpstream;
let sockets: ReturnType<typeof gatewaySockets>;

beforeAll(async () => {
  user = await otherLocalUser();
  echo = await startEchoUpstream();
  // The demo target points at an echo upstream, so the test sees exactly what reached it.
  gw = await startGatewayProcess({ yaml: (p) => devGatewayYaml({ ...p, demo: echo.port }) });
  sockets = gatewaySockets(gw);
  // mkdtemp made the state directory 0700, which alone would stop the attacker. Open it the way a
  // project checkout usually is, so what is tested is the gateway's own socket directory and modes.
  await chmod(gw.dir, 0o755);
}, 120_000);

afterAll(async () => {
  await gw?.cleanup();
  await echo?.close();
});

const all = () =>
  [
    ['authz (ext_authz)', sockets.authz],
    ['control plane (ADS + ALS + ext_proc)', sockets.xds],
    ['envoy admin', sockets.admin],
  ] as const;

describe('the data plane on Unix sockets', () => {
  it('lives in a 0700 directory as 0600 sockets of the gateway user', async () => {
    const dir = await stat(sockets.authz.slice(0, sockets.authz.lastIndexOf('/')));
    expect(dir.mode & 0o777).toBe(0o700);
    for (const [what, path] of all()) {
      const s = await stat(path);
      expect(s.isSocket(), what).toBe(true);
      expect(s.mode & 0o777, what).toBe(0o600);
      expect(s.uid, what).toBe(process.getuid?.());
    }
  });

  it('answers the gateway user (its Envoy): the control for every refusal below', async () => {
    for (const [what, path] of all())
      expect(await probe(['connect', path]), what).toEqual({ connected: true });
    const [method, kind] = DATA_PLANE_CALLS.check;
    expect(await probe(['grpc', `unix:${sockets.authz}`, method, kind])).toMatchObject({ answered: true });
    expect(await probe(['admin', sockets.admin, '/config_dump'])).toMatchObject({ status: 200 });
  });

  describe.skipIf(!root)(`another local user${root ? '' : ` (${NOT_ROOT_REASON})`}`, () => {
    it('cannot connect to any socket: the OS refuses (EACCES)', async () => {
      for (const [what, path] of all())
        expect(await probe(['connect', path], user!), what).toEqual({ connected: false, error: 'EACCES' });
    });

    it('gets no answer from Check, the access-log service, ADS or ext_proc', async () => {
      const calls = [
        [sockets.authz, DATA_PLANE_CALLS.check],
        [sockets.xds, DATA_PLANE_CALLS.accessLog],
        [sockets.xds, DATA_PLANE_CALLS.ads],
        [sockets.xds, DATA_PLANE_CALLS.extProc],
      ] as const;
      for (const [path, [method, kind]] of calls) {
        const r = await probe(['grpc', `unix:${path}`, method, kind], user!);
        expect(r, method).toMatchObject({ answered: false, code: 14 });
        expect(String(r['details']), method).toContain('EACCES');
      }
    });

    it("cannot read Envoy's admin interface (/config_dump)", async () => {
      expect(await probe(['admin', sockets.admin, '/config_dump'], user!)).toEqual({
        status: null,
        error: 'EACCES',
      });
    });

    it('is still refused by the sockets themselves when their directory is opened by mistake', async () => {
      const dir = sockets.authz.slice(0, sockets.authz.lastIndexOf('/'));
      await chmod(dir, 0o755);
      try {
        for (const [what, path] of all())
          expect(await probe(['connect', path], user!), what).toEqual({ connected: false, error: 'EACCES' });
      } finally {
        await chmod(dir, 0o700);
      }
    });
  });

  it("strips the client's x-forwarded-for, x-real-ip and forwarded; the upstream sees Envoy's own", async () => {
    const token = await devToken(gw, 'alice');
    echo.clear();
    const res = await fetch(`${gw.egress}/demo/items`, {
      headers: {
        authorization: `Bearer ${token}`,
        'x-forwarded-for': '203.0.113.7',
        'x-real-ip': '203.0.113.8',
        forwarded: 'for=203.0.113.9',
      },
    });
    expect(res.status).toBe(200);
    const seen = echo.requests.at(-1)!;
    expect(seen.headers['x-chaperone-user']).toBe('alice');
    expect(seen.headers['x-real-ip']).toBeUndefined();
    expect(seen.headers['forwarded']).toBeUndefined();
    // Envoy appends the real peer (for a loopback peer, this host's address) and nothing else.
    const xff = String(seen.headers['x-forwarded-for'] ?? '');
    expect(xff).not.toContain('203.0.113.');
    expect(xff.split(',')).toHaveLength(1);
  });
});
