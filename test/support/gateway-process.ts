// Runs `chaperone up` as a real child process (the CLI exactly as a user starts it) on free loopback
// ports, and gives tests its config file, the addresses and its output.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../lib/tools.ts';
import { createConfigMap } from './configmap.ts';
import { freePort } from './ports.ts';
import { waitFor } from './wait.ts';

export interface GatewayPorts {
  listener: number;
  admin: number;
  xds: number;
  authz: number;
  api: number;
  idp: number;
  demo: number;
}

export interface GatewayProcess {
  dir: string;
  configPath: string;
  ports: GatewayPorts;
  api: string;
  egress: string;
  output(): string;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
  signal(sig: NodeJS.Signals): void;
  stop(): Promise<number | null>;
  cleanup(): Promise<void>;
}

/**
 * A call to a gateway's HTTP API with a token: every route but health, keys and dev tokens needs one
 * (carol's for the audit trail and /status: she holds every role in these configs).
 */
export function apiFetch(
  gw: { api: string },
  token: string,
  path: string,
  init: RequestInit = {},
): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  return fetch(`${gw.api}${path}`, { ...init, headers });
}

/** A demo user's token from a `chaperone up --dev` gateway's loopback-only dev route. */
export async function devToken(gw: { api: string }, user: string): Promise<string> {
  const res = await fetch(`${gw.api}/dev/token?user=${user}`);
  if (res.status !== 200) throw new Error(`dev token for ${user}: HTTP ${res.status} ${await res.text()}`);
  return ((await res.json()) as { token: string }).token;
}

export async function gatewayPorts(): Promise<GatewayPorts> {
  const [listener, admin, xds, authz, api, idp, demo] = await Promise.all(
    Array.from({ length: 7 }, () => freePort()),
  );
  return { listener: listener!, admin: admin!, xds: xds!, authz: authz!, api: api!, idp: idp!, demo: demo! };
}

/** A dev-mode config on the given ports, using the shipped policy library. */
export function devGatewayYaml(p: GatewayPorts, extraTargets = ''): string {
  return `listeners:
  - name: egress
    address: 127.0.0.1
    port: ${p.listener}
identity:
  issuers:
    - issuer: http://127.0.0.1:${p.idp}
      audiences: [chaperone]
access:
  admins: [security]
  auditors: [security]
  reviewers: [security]
targets:
  - name: demo
    upstream: http://127.0.0.1:${p.demo}
    match:
      path_prefix: /demo
${extraTargets}policy:
  dir: ${join(PROJECT_ROOT, 'policies')}
  entrypoint: chaperone/authz/decision
audit:
  store: embedded
  spool_dir: spool
control_plane:
  http_address: 127.0.0.1:${p.api}
`;
}

/**
 * The same gateway with its data plane on TCP (a fleet's set-up): the authz server and the control plane
 * on loopback ports, mutual TLS with the CA under `<dir>/pki`, Envoy's admin still a socket.
 */
export function tcpGatewayYaml(p: GatewayPorts, extraTargets = ''): string {
  return devGatewayYaml(p, extraTargets).replace(
    `control_plane:\n`,
    `authz:\n  address: 127.0.0.1:${p.authz}\ncontrol_plane:\n  xds_address: 127.0.0.1:${p.xds}\n`,
  );
}

/** The Unix sockets of a gateway started by startGatewayProcess (state directory = its temp dir). */
export function gatewaySockets(gw: { dir: string }): { authz: string; xds: string; admin: string } {
  const d = join(gw.dir, 'sockets');
  return { authz: join(d, 'authz.sock'), xds: join(d, 'xds.sock'), admin: join(d, 'envoy-admin.sock') };
}

export async function startGatewayProcess(
  opts: {
    ports?: GatewayPorts;
    yaml?: (p: GatewayPorts) => string;
    env?: Record<string, string>;
    wait?: boolean;
    /** `--dev` (default): the dev issuer and demo upstream on the ports' idp/demo, dev tokens. */
    dev?: boolean;
    /**
     * The config as a Kubernetes ConfigMap volume would hold it (`<dir>/config/chaperone.yaml ->
     * ..data/chaperone.yaml`); update it with test/support/configmap.ts `updateConfigMap`.
     */
    configMap?: boolean;
    /** Reuse this directory (its config and state): a restart of a gateway that ran there. */
    dir?: string;
    /** More `chaperone up` arguments (e.g. `--envoy external`). */
    args?: string[];
  } = {},
): Promise<GatewayProcess> {
  const ports = opts.ports ?? (await gatewayPorts());
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'chaperone-up-')));
  const yaml = (opts.yaml ?? devGatewayYaml)(ports);
  let configPath = join(dir, 'chaperone.yaml');
  if (opts.configMap) {
    await mkdir(join(dir, 'config'), { recursive: true });
    await createConfigMap(join(dir, 'config'), { 'chaperone.yaml': yaml });
    configPath = join(dir, 'config', 'chaperone.yaml');
  } else if (!opts.dir) await writeFile(configPath, yaml);
  const child: ChildProcess = spawn(
    process.execPath,
    [
      join(PROJECT_ROOT, 'cli/bin/chaperone.js'),
      'up',
      ...(opts.dev === false
        ? []
        : ['--dev', '--dev-idp-port', String(ports.idp), '--demo-port', String(ports.demo)]),
      '--config',
      configPath,
      '--log-level',
      'info',
      ...(opts.args ?? []),
    ],
    { cwd: dir, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout?.on('data', (b: Buffer) => {
    out += b.toString('utf8');
  });
  child.stderr?.on('data', (b: Buffer) => {
    out += b.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => {
    done = true;
  });
  const gw: GatewayProcess = {
    dir,
    configPath,
    ports,
    api: `http://127.0.0.1:${ports.api}`,
    egress: `http://127.0.0.1:${ports.listener}`,
    output: () => out,
    exited,
    signal: (sig) => {
      // The wrapper forwards nothing: signal the whole process group's leader and its tsx child.
      child.kill(sig);
    },
    stop: async () => {
      if (!done) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        const code = await exited;
        clearTimeout(timer);
        return code;
      }
      return exited;
    },
    cleanup: async () => {
      await gw.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  if (opts.wait !== false) {
    await waitFor(() => done || out.includes('chaperone is up'), {
      timeoutMs: 90_000,
      intervalMs: 100,
      what: 'chaperone up',
    });
    if (done) throw new Error(`chaperone up exited during start-up:\n${out}`);
  }
  return gw;
}
