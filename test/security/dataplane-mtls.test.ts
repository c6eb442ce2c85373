// Attacker: any local (or network) process against a gateway whose data plane listens on TCP, as a
// fleet's does. The authz server and the control plane (ADS, access logs, ext_proc) then require a
// client certificate from the gateway's data-plane CA: a plain gRPC client, a TLS client without a
// certificate, one with a certificate from another CA, and one presenting a certificate of the right
// CA issued for the server role are all refused at the handshake — no Check answer, no access-log row,
// no config, no ext_proc stream. Envoy's own certificate is answered (the control), Envoy carries
// traffic end to end over mutual TLS, and certificates renewed while the gateway runs (a 30 s lifetime
// here) keep it working after the first ones expired, while an expired certificate is refused.
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority } from '../../pki/certificate-authority.ts';
import { DATA_PLANE_CALLS, probe } from '../support/attacker.ts';
import { runCli, startAuthzServe } from '../support/cli.ts';
import {
  apiFetch,
  devToken,
  type GatewayProcess,
  startGatewayProcess,
  tcpGatewayYaml,
} from '../support/gateway-process.ts';
import { freePort } from '../support/ports.ts';
import { waitFor } from '../support/wait.ts';

const VALIDITY_SEC = 30;
let gw: GatewayProcess;
let tmp: string;
let authz: string;
let xds: string;
const tokens: Record<string, string> = {};

/** PEM files for the probe: [ca, cert, key] paths, '-' for none. */
async function pemFiles(name: string, c: { ca: string; cert?: string; key?: string }): Promise<string[]> {
  const out: string[] = [];
  for (const [part, pem] of [
    ['ca', c.ca],
    ['cert', c.cert],
    ['key', c.key],
  ] as const) {
    if (pem === undefined) {
      out.push('-');
      continue;
    }
    const file = join(tmp, `${name}-${part}.pem`);
    await writeFile(file, pem, { mode: 0o600 });
    out.push(file);
  }
  return out;
}

/** Envoy's current client certificate, read from the SDS files the gateway keeps. */
async function envoyCertificate(): Promise<{ ca: string; cert: string; key: string; serial: string }> {
  const dir = join(gw.dir, 'pki', 'envoy');
  const client = JSON.parse(await readFile(join(dir, 'client-certificate.sds.json'), 'utf8'));
  const ca = JSON.parse(await readFile(join(dir, 'ca.sds.json'), 'utf8'));
  const t = client.resources[0].tls_certificate;
  const cert = t.certificate_chain.inline_string as string;
  return {
    ca: ca.resources[0].validation_context.trusted_ca.inline_string,
    cert,
    key: t.private_key.inline_string,
    serial: new X509Certificate(cert).serialNumber,
  };
}

async function envoyPid(): Promise<number> {
  const status = (await (await apiFetch(gw, tokens['carol']!, '/status')).json()) as {
    envoy: { pid: number | null };
  };
  return status.envoy.pid ?? 0;
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'chaperone-mtls-'));
  gw = await startGatewayProcess({
    yaml: (p) => `${tcpGatewayYaml(p)}data_plane:\n  tls:\n    cert_validity: ${VALIDITY_SEC}s\n`,
  });
  authz = `127.0.0.1:${gw.ports.authz}`;
  xds = `127.0.0.1:${gw.ports.xds}`;
  for (const u of ['alice', 'carol']) tokens[u] = await devToken(gw, u);
}, 120_000);

afterAll(async () => {
  await gw?.cleanup();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

const calls = () =>
  [
    [authz, DATA_PLANE_CALLS.check],
    [xds, DATA_PLANE_CALLS.accessLog],
    [xds, DATA_PLANE_CALLS.ads],
    [xds, DATA_PLANE_CALLS.extProc],
  ] as const;

async function expectRefused(files: string[], why: string): Promise<void> {
  for (const [target, [method, kind]] of calls()) {
    const r = await probe(['grpc', target, method, kind, ...files]);
    expect(r, `${why}: ${method}`).toMatchObject({ answered: false, code: 14 });
  }
}

describe('the data plane on TCP: mutual TLS with the data-plane CA', () => {
  it('says so on the status lines', () => {
    expect(gw.output()).toMatch(/✓ data plane\s+mutual TLS on 127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+/);
    expect(gw.output()).toMatch(/✓ authz server\s+127\.0\.0\.1:\d+ \(mutual TLS\)/);
  });

  it("answers Envoy's certificate (the control for every refusal below)", async () => {
    const envoy = await envoyCertificate();
    const files = await pemFiles('envoy', envoy);
    const [method, kind] = DATA_PLANE_CALLS.check;
    expect(await probe(['grpc', authz, method, kind, ...files])).toMatchObject({ answered: true });
  });

  it('refuses a plain gRPC client on every service', async () => {
    await expectRefused([], 'plaintext');
  });

  it('refuses a TLS client without a certificate', async () => {
    const { ca } = await envoyCertificate();
    await expectRefused(await pemFiles('no-cert', { ca }), 'no client certificate');
  });

  it('refuses a client certificate from another CA', async () => {
    const other = await CertificateAuthority.open({ dir: join(tmp, 'other-ca') });
    const c = await other.issue({ role: 'envoy', commonName: 'envoy impostor', validitySec: 3600 });
    const { ca } = await envoyCertificate();
    await expectRefused(await pemFiles('other-ca', { ca, cert: c.cert, key: c.key }), 'another CA');
  });

  it("refuses the right CA's server certificate used as a client one (extended key usage)", async () => {
    const pki = join(gw.dir, 'pki');
    const ca = await CertificateAuthority.open({
      dir: pki,
      caCert: join(pki, 'ca.pem'),
      caKey: join(pki, 'ca-key.pem'),
    });
    const c = await ca.issue({ role: 'server', commonName: 'stolen server cert', validitySec: 3600 });
    await expectRefused(await pemFiles('server-role', c), 'server role');
  });

  it('`chaperone authz serve` on TCP: refuses to start without the CA, then requires its client certificate', async () => {
    const port = await freePort();
    const bare = await runCli(['authz', 'serve', '--addr', `127.0.0.1:${port}`]);
    expect(bare.code).toBe(2);
    expect(bare.out).toContain('needs mutual TLS');
    const server = startAuthzServe(`127.0.0.1:${port}`, ['--tls-dir', join(gw.dir, 'pki')]);
    try {
      await server.ready();
      expect(server.output()).toContain(
        'mutual TLS: a client certificate from the data-plane CA is required',
      );
      const [method, kind] = DATA_PLANE_CALLS.check;
      const target = `127.0.0.1:${port}`;
      expect(await probe(['grpc', target, method, kind])).toMatchObject({ answered: false, code: 14 });
      const { ca } = await envoyCertificate();
      expect(
        await probe(['grpc', target, method, kind, ...(await pemFiles('serve-no-cert', { ca }))]),
      ).toMatchObject({
        answered: false,
      });
      const envoy = await pemFiles('serve-envoy', await envoyCertificate());
      expect(await probe(['grpc', target, method, kind, ...envoy])).toMatchObject({ answered: true });
    } finally {
      server.stop();
    }
  }, 180_000);

  it('carries traffic end to end through Envoy over mutual TLS', async () => {
    const res = await fetch(`${gw.egress}/demo/items`, {
      headers: { authorization: `Bearer ${tokens['alice']}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-chaperone-decision-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('renews the certificates before they expire; Envoy reconnects on the new ones, an expired one is refused', async () => {
    const first = await envoyCertificate();
    const firstExpiry = new Date(new X509Certificate(first.cert).validTo).getTime();
    const expiredFiles = await pemFiles('expired', first);
    await waitFor(async () => (await envoyCertificate()).serial !== first.serial, {
      what: "the Envoy certificate's renewal",
      timeoutMs: VALIDITY_SEC * 1000,
      intervalMs: 250,
    });
    await waitFor(() => Date.now() > firstExpiry + 1000, {
      what: 'the first certificates to expire',
      timeoutMs: VALIDITY_SEC * 1000,
      intervalMs: 250,
    });
    const [method, kind] = DATA_PLANE_CALLS.check;
    expect(await probe(['grpc', authz, method, kind, ...expiredFiles])).toMatchObject({ answered: false });
    // A new Envoy makes new connections: the renewed client certificate against the renewed server one.
    const before = await envoyPid();
    process.kill(before, 'SIGKILL');
    await waitFor(
      async () => (await envoyPid()) !== before && (await fetch(`${gw.api}/readyz`)).status === 200,
      {
        what: 'the restarted Envoy to be ready',
        timeoutMs: 30_000,
        intervalMs: 100,
      },
    );
    const res = await fetch(`${gw.egress}/demo/items`, {
      headers: { authorization: `Bearer ${tokens['alice']}` },
    });
    expect(res.status).toBe(200);
  }, 120_000);
});
