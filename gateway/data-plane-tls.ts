// Mutual TLS for a node whose data-plane services listen on TCP (a fleet): opens the data-plane CA,
// issues this node's server certificate (named for the addresses Envoys dial) and Envoy's client
// certificate, writes Envoy's as SDS files (atomically: Envoy watches them and picks up each renewal)
// and renews both after two thirds of their lifetime. `chaperone envoy bootstrap --config` uses the same
// writer, so an Envoy started before the gateway finds its files.
import { randomBytes } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import type { Config } from '../config/types.ts';
import { isLoopbackHost, parseDataPlaneAddress } from '../lib/data-plane-address.ts';
import { CertificateAuthority, type IssuedCertificate, ROLE_URI } from '../pki/certificate-authority.ts';
import { RotatingCertificate } from '../pki/rotating-certificate.ts';
import type { IrDataPlaneTls } from '../xds/ir/types.ts';
import { certificateSdsDocument, envoyTlsFiles, validationSdsDocument } from '../xds/translate/data-plane.ts';

export interface DataPlaneTls {
  ca: CertificateAuthority;
  /** This node's server certificate (ext_authz, ADS + ALS + ext_proc on TCP), renewed. */
  server: RotatingCertificate;
  /** Envoy's client certificate, renewed; its SDS files are rewritten on each renewal. */
  envoy: RotatingCertificate;
  files: IrDataPlaneTls;
  status(): Record<string, unknown>;
  close(): void;
}

/** The TCP addresses among the data-plane services (the ones that need mutual TLS). */
export function tcpDataPlaneAddresses(config: Config): string[] {
  return [...config.authz.addresses, config.controlPlane.xdsAddress].filter(
    (a) => parseDataPlaneAddress(a).kind === 'tcp',
  );
}

export const envoyFilesOf = (config: Config): IrDataPlaneTls =>
  envoyTlsFiles(config.dataPlane.tls.dir, ROLE_URI.server);

/** Names for the server certificate: the bind hosts (not wildcards), loopback, this host, the configured. */
function serverNames(config: Config): string[] {
  const names = new Set<string>(['localhost', '127.0.0.1', '::1', hostname()]);
  for (const a of tcpDataPlaneAddresses(config)) {
    const p = parseDataPlaneAddress(a);
    if (p.kind === 'tcp' && p.host !== '0.0.0.0' && p.host !== '::' && !isLoopbackHost(p.host))
      names.add(p.host);
  }
  for (const n of config.dataPlane.tls.serverNames) names.add(n);
  return [...names];
}

async function writeAtomically(path: string, doc: unknown): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, `${JSON.stringify(doc, null, 2)}\n`, { mode: 0o600 });
  // A rename is what Envoy's file watch sees as a new version (it watches for moves, not writes).
  await rename(tmp, path);
}

/** Writes Envoy's SDS files for `cert` (its client certificate) and the CA. */
export async function writeEnvoyTlsFiles(files: IrDataPlaneTls, cert: IssuedCertificate): Promise<void> {
  await writeAtomically(files.validationSds, validationSdsDocument(cert.ca));
  await writeAtomically(files.certificateSds, certificateSdsDocument(cert.cert, cert.key));
}

export async function openCa(config: Config, warn: (m: string) => void): Promise<CertificateAuthority> {
  const t = config.dataPlane.tls;
  return CertificateAuthority.open({ dir: t.dir, caCert: t.caCert, caKey: t.caKey, warn });
}

/** Issues an Envoy client certificate from the config's CA and writes its SDS files (the bootstrap CLI). */
export async function issueEnvoyFiles(
  config: Config,
  nodeId: string,
  warn: (m: string) => void,
): Promise<IrDataPlaneTls> {
  const ca = await openCa(config, warn);
  const files = envoyFilesOf(config);
  const cert = await ca.issue({
    role: 'envoy',
    commonName: `envoy ${nodeId}`,
    validitySec: config.dataPlane.tls.certValiditySec,
  });
  await writeEnvoyTlsFiles(files, cert);
  return files;
}

export async function openDataPlaneTls(
  config: Config,
  o: { nodeId: string; warn: (m: string) => void; onError: (what: string, err: unknown) => void },
): Promise<DataPlaneTls> {
  const ca = await openCa(config, o.warn);
  const validitySec = config.dataPlane.tls.certValiditySec;
  const names = serverNames(config);
  const files = envoyFilesOf(config);
  const server = await RotatingCertificate.start(
    () => ca.issue({ role: 'server', commonName: `chaperone ${o.nodeId}`, names, validitySec }),
    { onError: (err) => o.onError('server certificate renewal', err) },
  );
  const issueEnvoy = async () => {
    const cert = await ca.issue({ role: 'envoy', commonName: `envoy ${o.nodeId}`, validitySec });
    await writeEnvoyTlsFiles(files, cert);
    return cert;
  };
  const envoy = await RotatingCertificate.start(issueEnvoy, {
    onError: (err) => o.onError('Envoy certificate renewal', err),
  });
  return {
    ca,
    server,
    envoy,
    files,
    status: () => ({
      ca: ca.source,
      server_certificate: {
        serial: server.current().serial,
        not_after: server.current().notAfter.toISOString(),
        names,
      },
      envoy_certificate: {
        serial: envoy.current().serial,
        not_after: envoy.current().notAfter.toISOString(),
        files: [files.certificateSds, files.validationSds],
      },
    }),
    close: () => {
      server.close();
      envoy.close();
    },
  };
}
