// The data-plane CA (pki/): generated once with its key 0600 in a 0700 directory, reused after; issues
// certificates whose role is fixed by EKU and a URI SAN; refuses an operator CA that is not a CA or
// whose key does not match; renews certificates after two thirds of their lifetime.
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChaperoneError } from '../../contracts/errors.ts';
import { CA_FILES, CertificateAuthority, ROLE_URI } from '../../pki/certificate-authority.ts';
import { RotatingCertificate } from '../../pki/rotating-certificate.ts';
import { waitFor } from '../support/wait.ts';

let dir: string;
let ca: CertificateAuthority;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'chaperone-pki-'));
  ca = await CertificateAuthority.open({ dir: join(dir, 'pki') });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('CertificateAuthority', () => {
  it('generates its key 0600 in a 0700 directory, and loads the same CA next time', async () => {
    expect((await stat(join(dir, 'pki'))).mode & 0o777).toBe(0o700);
    expect((await stat(join(dir, 'pki', CA_FILES.key))).mode & 0o777).toBe(0o600);
    const again = await CertificateAuthority.open({ dir: join(dir, 'pki') });
    expect(again.certPem).toBe(ca.certPem);
    expect(new X509Certificate(ca.certPem).ca).toBe(true);
  });

  it('issues server and client certificates that chain to it, each naming one role', async () => {
    const server = await ca.issue({
      role: 'server',
      commonName: 's',
      names: ['gw.internal', '10.0.0.5'],
      validitySec: 600,
    });
    const client = await ca.issue({ role: 'envoy', commonName: 'e', validitySec: 600 });
    const caCert = new X509Certificate(ca.certPem);
    for (const c of [server, client]) {
      const x = new X509Certificate(c.cert);
      expect(x.verify(caCert.publicKey)).toBe(true);
      expect(x.ca).toBe(false);
      expect(new Date(x.validTo).getTime() - Date.now()).toBeLessThanOrEqual(600_000);
    }
    const s = new X509Certificate(server.cert);
    expect(s.subjectAltName).toContain(`URI:${ROLE_URI.server}`);
    expect(s.subjectAltName).toContain('DNS:gw.internal');
    expect(s.subjectAltName).toContain('IP Address:10.0.0.5');
    expect(s.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']); // serverAuth only
    const e = new X509Certificate(client.cert);
    expect(e.subjectAltName).toBe(`URI:${ROLE_URI.envoy}`);
    expect(e.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']); // clientAuth only
    expect(server.serial).not.toBe(client.serial);
  });

  it('refuses an operator CA that is not a CA, or whose key belongs to another certificate', async () => {
    const leaf = await ca.issue({ role: 'server', commonName: 'not a ca', validitySec: 600 });
    await writeFile(join(dir, 'leaf.pem'), leaf.cert);
    await writeFile(join(dir, 'leaf-key.pem'), leaf.key, { mode: 0o600 });
    const other = await CertificateAuthority.open({ dir: join(dir, 'other') });
    const attempts = [
      { caCert: join(dir, 'leaf.pem'), caKey: join(dir, 'leaf-key.pem'), why: /not a CA/ },
      {
        caCert: join(dir, 'other', CA_FILES.cert),
        caKey: join(dir, 'pki', CA_FILES.key),
        why: /does not belong/,
      },
      {
        caCert: join(dir, 'missing.pem'),
        caKey: join(dir, 'leaf-key.pem'),
        why: /cannot be read \(ENOENT\)/,
      },
    ];
    expect(other.certPem).not.toBe(ca.certPem);
    for (const a of attempts) {
      const err = await CertificateAuthority.open({ dir, caCert: a.caCert, caKey: a.caKey }).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ChaperoneError);
      expect((err as ChaperoneError).code).toBe('ERR_DATA_PLANE_TLS');
      expect((err as Error).message).toMatch(a.why);
    }
  });

  it("names an operator CA by its own key identifier, whatever hash made it (Helm's genCA: SHA-256)", async () => {
    // OpenSSL only builds a chain when the leaf's authorityKeyIdentifier is the CA's subjectKeyIdentifier.
    const skid = '00112233445566778899aabbccddeeff00112233';
    const res = await new Promise<{ err: Error | null; out: string }>((resolve) =>
      execFile(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-keyout',
          join(dir, 'op-key.pem'),
          '-out',
          join(dir, 'op.pem'),
          '-days',
          '1',
          '-subj',
          '/CN=operator CA',
          '-addext',
          'basicConstraints=critical,CA:TRUE',
          '-addext',
          'keyUsage=critical,keyCertSign',
          '-addext',
          `subjectKeyIdentifier=${skid}`,
        ],
        (err, stdout, stderr) => resolve({ err, out: `${stdout}${stderr}` }),
      ),
    );
    expect(res.err, res.out).toBeNull();
    const operator = await CertificateAuthority.open({
      dir,
      caCert: join(dir, 'op.pem'),
      caKey: join(dir, 'op-key.pem'),
    });
    const leaf = new X509Certificate(
      (await operator.issue({ role: 'envoy', commonName: 'e', validitySec: 60 })).cert,
    );
    expect(leaf.checkIssued(new X509Certificate(operator.certPem))).toBe(true);
  });

  it('warns about an operator CA key others can read', async () => {
    const warnings: string[] = [];
    const key = await readFile(join(dir, 'pki', CA_FILES.key), 'utf8');
    await writeFile(join(dir, 'open-key.pem'), key, { mode: 0o644 });
    await CertificateAuthority.open({
      dir,
      caCert: join(dir, 'pki', CA_FILES.cert),
      caKey: join(dir, 'open-key.pem'),
      warn: (m) => warnings.push(m),
    });
    expect(warnings.join('\n')).toMatch(/readable by others \(mode 644\)/);
  });
});

describe('RotatingCertificate', () => {
  it('renews after two thirds of the lifetime and tells its subscribers', async () => {
    const seen: string[] = [];
    const rotating = await RotatingCertificate.start(() =>
      ca.issue({ role: 'envoy', commonName: 'r', validitySec: 3 }),
    );
    try {
      const first = rotating.current().serial;
      rotating.subscribe((c) => seen.push(c.serial));
      const started = Date.now();
      await waitFor(() => seen.length > 0, { what: 'a renewal', timeoutMs: 5000 });
      expect(Date.now() - started).toBeGreaterThan(1000);
      expect(seen[0]).not.toBe(first);
      expect(rotating.current().serial).toBe(seen[0]);
    } finally {
      rotating.close();
    }
  });
});
