// The deployment artefacts' standalone authz servers, started as written: the container command line the
// Helm chart renders for its authz replicas (with the data-plane CA Secret it generates, and with an
// operator's Secret), and the ExecStart of deploy/systemd/chaperone-authz.service with its
// EnvironmentFile example and LoadCredential= files. Paths are remapped to temporary directories laid out
// as the kubelet mounts the pod's volumes or as systemd hands over credentials; the listen address becomes
// a free loopback port, the OIDC issuer and control-plane URLs a closed one (nothing in the way of the
// start), DATABASE_URL a test database when there is one. Each server must start, answer a Check over
// mutual TLS from the client certificate its deployment gives Envoy — for the chart, the one the gateway's
// rendered chaperone.yaml issues (`chaperone envoy bootstrap --config`) — and refuse a client without a
// certificate, with one from another CA, and in plaintext. Before the data-plane CA was wired into the
// artefacts, both refused to start (an authz server on TCP requires mutual TLS).
import { type ChildProcess, execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import yaml from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/load-config.ts';
import { envoyFilesOf } from '../../gateway/data-plane-tls.ts';
import { PROJECT_ROOT } from '../../lib/tools.ts';
import { CA_FILES, CertificateAuthority, ROLE_URI } from '../../pki/certificate-authority.ts';
import { buildIr } from '../../xds/ir/build-ir.ts';
import { authzClient, deniedStatus } from '../support/authz-client.ts';
import { type AuthzServeProcess, CHAPERONE_BIN, startAuthzCommand } from '../support/cli.ts';
import { byKindName, CHART, type K8sObject, mountContainer, renderChart } from '../support/helm.ts';
import { freePort } from '../support/ports.ts';
import {
  createTestDatabase,
  DATABASE_URL,
  NO_POSTGRES_REASON,
  type TestDatabase,
} from '../support/postgres.ts';

const UNIT = join(PROJECT_ROOT, 'deploy', 'systemd', 'chaperone-authz.service');
const UNIT_ENV = join(PROJECT_ROOT, 'deploy', 'systemd', 'authz.env.example');
const POLICIES = join(PROJECT_ROOT, 'policies');
const STORE_NOTE = DATABASE_URL ? '' : ` (without --store/--spool-dir: ${NO_POSTGRES_REASON})`;

interface Pem {
  ca: string;
  cert: string;
  key: string;
}

let tmp: string;
let db: TestDatabase | null = null;
let closedUrl: string;
const started: AuthzServeProcess[] = [];

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'chaperone-deploy-authz-'));
  closedUrl = `http://127.0.0.1:${await freePort()}`;
  if (DATABASE_URL) db = await createTestDatabase('chaperone_deploy_authz');
});

afterAll(async () => {
  await Promise.all(started.map((s) => stopped(s.child)));
  await db?.drop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

function stopped(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/**
 * The command line with what is not this machine's replaced: `--addr` by a loopback port, URLs by a
 * closed local port (one path per URL; an issuer's keys are fetched again later), and without a database `--store`/`--spool-dir`.
 */
function localArgs(args: string[], port: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--addr') {
      out.push(a, `127.0.0.1:${port}`);
      i++;
    } else if (!db && (a === '--store' || a === '--spool-dir')) {
      i++;
    } else if (/^https?:\/\//.test(a)) {
      const url = new URL(a);
      out.push(`${closedUrl}/${url.host}${url.pathname}`.replace(/\/$/, ''));
    } else {
      out.push(a);
    }
  }
  return out;
}

function flagValue(args: string[], flag: string): string {
  const i = args.indexOf(flag);
  if (i < 0 || i + 1 >= args.length) throw new Error(`no ${flag} in ${args.join(' ')}`);
  return args[i + 1]!;
}

const credentials = (c: Partial<Pem> & { ca: string }) =>
  grpc.credentials.createSsl(
    Buffer.from(c.ca),
    c.key ? Buffer.from(c.key) : null,
    c.cert ? Buffer.from(c.cert) : null,
  );

/** The server certificate a client holding `pem` sees (what Envoy matches: the server role's URI SAN). */
function serverCertificate(port: number, pem: Pem): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ...pem, ALPNProtocols: ['h2'] }, () => {
      const peer = socket.getPeerX509Certificate();
      socket.destroy();
      if (peer) resolve(peer);
      else reject(new Error('no server certificate'));
    });
    socket.once('error', reject);
  });
}

/** The kubelet's tcpSocket probe: a TCP connection is accepted. */
function tcpAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function refusal(port: number, creds: grpc.ChannelCredentials): Promise<number> {
  const client = authzClient(`127.0.0.1:${port}`, creds);
  try {
    await client.check({ path: '/' });
    return 0;
  } catch (err) {
    return (err as grpc.ServiceError).code;
  } finally {
    client.close();
  }
}

/**
 * What every deployment's authz server must do: answer Envoy's certificate (a Check without a token is
 * denied 401, which is an answer), present a server certificate of the server role from the same CA,
 * and refuse every other client at the handshake.
 */
async function expectMutualTls(port: number, envoy: Pem, names: string[]): Promise<void> {
  const client = authzClient(`127.0.0.1:${port}`, credentials(envoy));
  try {
    const res = await client.check({ path: '/github/user' });
    expect(res.status.code).not.toBe(0);
    expect(deniedStatus(res)).toBe(401);
  } finally {
    client.close();
  }
  const server = await serverCertificate(port, envoy);
  expect(server.checkIssued(new X509Certificate(envoy.ca))).toBe(true);
  expect(server.subjectAltName).toContain(`URI:${ROLE_URI.server}`);
  for (const n of names) expect(server.subjectAltName).toContain(`DNS:${n}`);

  const other = await CertificateAuthority.open({ dir: join(tmp, `other-ca-${port}`) });
  const impostor = await other.issue({ role: 'envoy', commonName: 'impostor', validitySec: 600 });
  const refused = grpc.status.UNAVAILABLE;
  expect(await refusal(port, credentials({ ca: envoy.ca })), 'TLS without a certificate').toBe(refused);
  expect(await refusal(port, credentials({ ...impostor, ca: envoy.ca })), 'another CA').toBe(refused);
  expect(await refusal(port, grpc.credentials.createInsecure()), 'plaintext').toBe(refused);
}

function exec(args: string[], cwd: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [CHAPERONE_BIN, ...args], { cwd, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, out: `${stdout}${stderr}` }),
    ),
  );
}

async function startedAuthz(proc: AuthzServeProcess): Promise<AuthzServeProcess> {
  started.push(proc);
  await proc.ready(180_000);
  return proc;
}

/** Absolute paths anywhere in a parsed YAML document, moved by `path`. */
function remapPaths(v: unknown, path: (p: string) => string): unknown {
  if (typeof v === 'string') return v.startsWith('/') ? path(v) : v;
  if (Array.isArray(v)) return v.map((x) => remapPaths(x, path));
  if (v && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, remapPaths(x, path)]));
  return v;
}

/** An operator's CA, as `kubectl create secret tls` or cert-manager would store it. */
async function operatorCa(dir: string): Promise<{ cert: string; key: string }> {
  const ca = await CertificateAuthority.open({ dir });
  return { cert: ca.certPem, key: await readFile(join(dir, CA_FILES.key), 'utf8') };
}

const HELM_CASES = [
  { name: 'the CA Secret the chart generates', set: [] as string[], secret: null, certFile: 'tls.crt' },
  {
    name: "the operator's CA Secret (dataPlane.tls.existingSecret)",
    set: [
      '--set',
      'dataPlane.tls.existingSecret=fleet-ca',
      '--set',
      'dataPlane.tls.certKey=ca.crt',
      '--set',
      'dataPlane.tls.keyKey=ca.key',
    ],
    secret: 'fleet-ca',
    certFile: 'ca.crt',
  },
];

describe('the Helm chart: authz replicas and gateways share the data-plane CA', () => {
  for (const c of HELM_CASES) {
    it(`an authz replica starts from its rendered args and answers the gateway's Envoy over mutual TLS, with ${c.name}${STORE_NOTE}`, async () => {
      const root = join(tmp, `helm-${c.secret ?? 'generated'}`);
      const { objects } = await renderChart(['-f', join(CHART, 'ci', 'fleet-values.yaml'), ...c.set]);
      const external = {
        configMapDirs: { 'chaperone-policies': POLICIES },
        ...(c.secret
          ? {
              secrets: {
                [c.secret]: await operatorCa(join(root, 'operator-ca')).then((ca) => ({
                  'ca.crt': ca.cert,
                  'ca.key': ca.key,
                })),
              },
            }
          : {}),
      };

      // The replica: its container's args, mounts and environment as rendered.
      const pod = byKindName(objects, 'Deployment', 'demo-chaperone-authz')['spec']['template']['spec'];
      const container = pod['containers'][0] as K8sObject;
      const mounted = await mountContainer(objects, pod, container, join(root, 'authz'), external);
      const args = (container['args'] as string[]).map((a) => mounted.path(a));
      const env: NodeJS.ProcessEnv = { ...process.env };
      for (const e of container['env'] as K8sObject[])
        env[e['name']] = e['name'] === 'DATABASE_URL' ? (db?.url ?? '') : 'from-a-secret';
      const port = await freePort();
      const server = await startedAuthz(
        startAuthzCommand(localArgs(args, port), { cwd: mounted.path('/var/lib/chaperone'), env }),
      );
      expect(server.output()).toContain(
        'mutual TLS: a client certificate from the data-plane CA is required',
      );
      // Its probes: a TCP connect to the port it serves on (a kubelet gRPC probe has no client certificate).
      const grpcPort = (container['ports'] as K8sObject[]).find((p) => p['name'] === 'grpc')!;
      expect(flagValue(args, '--addr')).toBe(`0.0.0.0:${grpcPort['containerPort']}`);
      for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe'])
        expect(container[probe]['tcpSocket'], probe).toEqual({ port: 'grpc' });
      expect(await tcpAccepts(port)).toBe(true);

      // The gateway: its rendered chaperone.yaml, read where its pod mounts it, with the paths remapped.
      const gwPod = byKindName(objects, 'Deployment', 'demo-chaperone-gateway')['spec']['template']['spec'];
      const gwContainer = gwPod['containers'][0] as K8sObject;
      const gw = await mountContainer(objects, gwPod, gwContainer, join(root, 'gateway'), external);
      const configFile = gw.path(flagValue(gwContainer['args'], '--config'));
      await writeFile(
        configFile,
        yaml.dump(remapPaths(yaml.load(await readFile(configFile, 'utf8')), gw.path)),
      );
      const config = parseConfig(await readFile(configFile, 'utf8'), configFile);
      expect(config.dataPlane.tls.caCert).toBe(gw.path(`/etc/chaperone/data-plane-ca/${c.certFile}`));
      const secrets = objects.filter((o) => o['kind'] === 'Secret').map((o) => o['metadata']['name']);
      expect(secrets).toEqual(c.secret ? [] : ['demo-chaperone-data-plane-ca']);
      // Envoy's authz cluster: the replicas' headless Service, over mutual TLS with the gateway's files.
      const authzCluster = buildIr(config).clusters.find((k) => k.name === 'chaperone_authz')!;
      expect(authzCluster.endpoints).toContainEqual({
        host: 'demo-chaperone-authz.agents.svc.cluster.local',
        port: 9191,
      });
      expect(authzCluster.dataPlaneTls).toEqual(envoyFilesOf(config));
      // Envoy's client certificate, issued from the rendered config's CA the way the gateway does.
      const boot = await exec(
        ['envoy', 'bootstrap', '--node-id', 'demo-gateway-0', '--config', configFile],
        gw.path('/var/lib/chaperone'),
      );
      expect(boot.code, boot.out).toBe(0);
      const files = envoyFilesOf(config);
      const sds = JSON.parse(await readFile(files.certificateSds, 'utf8')).resources[0].tls_certificate;
      const trusted = JSON.parse(await readFile(files.validationSds, 'utf8')).resources[0];
      const envoy: Pem = {
        ca: trusted.validation_context.trusted_ca.inline_string,
        cert: sds.certificate_chain.inline_string,
        key: sds.private_key.inline_string,
      };
      await expectMutualTls(port, envoy, [flagValue(args, '--tls-name')]);
    }, 300_000);
  }
});

/** systemd's EnvironmentFile: KEY=VALUE lines, # comments. */
function environmentFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** The unit's `Key=` values, in order. */
function directives(text: string, key: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));
}

/**
 * ExecStart as systemd expands it: words split on spaces, `%d` the credentials directory, `$NAME` an
 * environment value split into words, `${NAME}` one word (systemd.service(5), "Command lines").
 */
function execStart(line: string, env: Record<string, string>, credentialsDir: string): string[] {
  return line
    .split(/\s+/)
    .filter(Boolean)
    .flatMap((word) => {
      const whole = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(word);
      if (whole) return (env[whole[1]!] ?? '').split(/\s+/).filter(Boolean);
      return [
        word
          .replaceAll('%d', credentialsDir)
          .replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => env[name] ?? ''),
      ];
    });
}

describe('the systemd unit chaperone-authz.service', () => {
  it(`starts from its ExecStart with the data-plane CA from LoadCredential= and answers Envoy over mutual TLS${STORE_NOTE}`, async () => {
    const root = join(tmp, 'systemd');
    const unit = await readFile(UNIT, 'utf8');
    const env = environmentFile(await readFile(UNIT_ENV, 'utf8'));
    expect(directives(unit, 'EnvironmentFile')).toEqual(['/etc/chaperone/authz.env']);
    // /etc/chaperone (ConfigurationDirectory=) holds the fleet's CA, as docs/deployment.md names it.
    const etc = join(root, 'etc', 'chaperone');
    const fleetCa = await CertificateAuthority.open({ dir: etc });
    const credentialsDir = join(root, 'run', 'credentials', 'chaperone-authz.service');
    await mkdir(credentialsDir, { recursive: true });
    for (const spec of directives(unit, 'LoadCredential')) {
      const [name, source] = spec.split(':') as [string, string];
      expect(source.startsWith('/etc/chaperone/'), spec).toBe(true);
      await copyFile(join(etc, source.slice('/etc/chaperone/'.length)), join(credentialsDir, name));
      await chmod(join(credentialsDir, name), 0o400);
    }
    const state = join(root, 'var', 'lib', 'chaperone-authz');
    await mkdir(state, { recursive: true });
    expect(directives(unit, 'StateDirectory')).toEqual(['chaperone-authz']);
    const [exec0, ...words] = execStart(directives(unit, 'ExecStart')[0]!, env, credentialsDir);
    expect(exec0).toBe('/usr/local/bin/chaperone');
    const local = (w: string) =>
      w === '/etc/chaperone/policies'
        ? POLICIES
        : w.startsWith('/var/lib/chaperone-authz')
          ? `${state}${w.slice('/var/lib/chaperone-authz'.length)}`
          : w;
    const args = words.map(local);
    const port = await freePort();
    const server = await startedAuthz(
      startAuthzCommand(localArgs(args, port), {
        cwd: state,
        env: { ...process.env, ...env, DATABASE_URL: db?.url ?? '' },
      }),
    );
    expect(server.output()).toContain('mutual TLS: a client certificate from the data-plane CA is required');
    // The gateway's Envoy: a client certificate from the same CA (the gateway issues it from these files).
    const cert = await fleetCa.issue({ role: 'envoy', commonName: 'envoy gw-1', validitySec: 600 });
    await expectMutualTls(port, cert, [flagValue(args, '--tls-name')]);
  }, 300_000);
});
