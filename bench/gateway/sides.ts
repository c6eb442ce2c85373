// The three sides of bench:gateway, each started as real processes on free loopback ports and checked
// for correct answers through its Envoy before it is measured:
//   envoy      Envoy alone in front of the bench upstream (the anchor every figure is compared to);
//   opa-envoy  Envoy + OPA-Envoy running Chaperone's shipped policy (or, with --opa-policy direct,
//              the same decision as one rule), the JWT verified in Rego, decision logs on (console,
//              appended to a file);
//   chaperone  `chaperone up` (the whole gateway: authz, xDS, ext_proc, access logs, audit trail in the
//              embedded store) with a generated config whose upstream is the bench upstream.
// `chaperone-grpc-js` is the same gateway with the authz server on @grpc/grpc-js
// (CHAPERONE_AUTHZ_TRANSPORT=grpc-js) instead of the default lean node:http2 transport. `authz-only` is the first side's Envoy asking `chaperone authz
// serve` (same policy and issuer, no store, no ext_proc, no access logs): the decision path alone,
// which tells how much of the gateway's cost is the decision and how much is everything around it.
import { randomInt } from 'node:crypto';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { locateTool, PROJECT_ROOT } from '../../lib/tools.ts';
import { type Child, spawnChild, stopChild, waitUntil } from '../authz/processes.ts';
import { benchBootstrap } from './envoy-bootstrap.ts';

export type SideName = 'envoy' | 'opa-envoy' | 'authz-only' | 'chaperone' | 'chaperone-grpc-js';
export const SIDE_NAMES: readonly SideName[] = [
  'envoy',
  'opa-envoy',
  'authz-only',
  'chaperone',
  'chaperone-grpc-js',
];

const HERE = dirname(fileURLToPath(import.meta.url));

export interface BenchContext {
  workDir: string;
  upstreamPort: number;
  issuer: { issuer: string; audience: string; jwks: unknown };
  /**
   * Bearer tokens from the dev issuer: alice is allowed GET /demo/items, bob is not; carol (group
   * security) reads the gateway's /status.
   */
  tokens: { alice: string; bob: string; carol: string };
  /**
   * OPA-Envoy's Rego: `shipped` runs Chaperone's policy library unchanged behind a JWT-verifying
   * wrapper (the same Rego); `direct` is the same decision for this route as one hand-written rule.
   */
  opaPolicy: 'shipped' | 'direct';
  /**
   * Checks Envoy keeps outstanding to the authz cluster: `authz.max_outstanding` of the Chaperone sides,
   * and the same circuit breaker on the ext_authz cluster of the authz-only and OPA-Envoy sides.
   */
  authzMaxOutstanding: number;
}

export interface RunningSide {
  name: SideName;
  /** The measured URL (GET /demo/items through Envoy). */
  url: string;
  adminUrl: string;
  /**
   * Resolves once work a rate left behind is done (Chaperone: the audit spool and the access-log buffer
   * are in the store), so that the rate's CPU time includes it.
   */
  settled?(): Promise<void>;
  /** Extra state worth keeping with each rate's figures (Chaperone's /status). */
  status?(): Promise<unknown>;
  /** The side's root processes: their trees' CPU time is measured per rate (bench/gateway/process-cpu.ts). */
  pids: number[];
  /** Where OPA-Envoy's decision log goes; its line count is checked against the requests. */
  decisionLog?: string;
  stop(): Promise<void>;
}

export interface SideOptions {
  /** Chaperone only: write a V8 CPU profile of `chaperone up` into this directory at exit. */
  cpuProfileDir?: string;
}

/**
 * A free port below Linux's ephemeral range (32768–60999): a high load rate leaves tens of thousands of
 * client sockets in that range behind, and a port picked there can be taken before it is bound.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = randomInt(20_000, 32_000);
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

/** A port on 127.0.0.1, or a Unix socket path, accepts connections. */
function tcpAccepts(at: number | string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = typeof at === 'number' ? connect({ host: '127.0.0.1', port: at }) : connect({ path: at });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function startEnvoy(
  ctx: BenchContext,
  name: string,
  authz: { port: number } | { pipe: string } | null,
) {
  const listenPort = await freePort();
  const adminPort = await freePort();
  const file = join(ctx.workDir, `${name}.envoy.json`);
  await writeFile(
    file,
    JSON.stringify(
      benchBootstrap({
        listenPort,
        adminPort,
        upstreamPort: ctx.upstreamPort,
        authz,
        authzMaxOutstanding: ctx.authzMaxOutstanding,
      }),
    ),
  );
  const child = spawnChild(`${name} envoy`, locateTool('envoy'), [
    '-c',
    file,
    '--disable-hot-restart',
    '--base-id',
    String(randomInt(1000, 2 ** 30)),
    '-l',
    'warn',
  ]);
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  await waitUntil(
    `${name} envoy to be ready`,
    async () => (await fetch(`${adminUrl}/ready`)).ok && (await tcpAccepts(listenPort)),
    { timeoutMs: 20_000, child },
  );
  return { child, adminUrl, url: `http://127.0.0.1:${listenPort}/demo/items` };
}

const pidsOf = (children: Child[]): number[] =>
  children.map((c) => c.proc.pid).filter((p): p is number => p !== undefined);

/** Stops children in order (Envoy before the server behind it). */
const stopInOrder = (children: Child[], graceMs?: number) => async () => {
  for (const c of children) await stopChild(c, graceMs);
};

export async function startEnvoyAlone(ctx: BenchContext): Promise<RunningSide> {
  const envoy = await startEnvoy(ctx, 'envoy', null);
  return {
    name: 'envoy',
    url: envoy.url,
    adminUrl: envoy.adminUrl,
    pids: pidsOf([envoy.child]),
    stop: stopInOrder([envoy.child]),
  };
}

/** OPA-Envoy's policy directory: the entry rule, the shipped library and its data, the issuer. */
async function opaPolicyDir(ctx: BenchContext): Promise<string> {
  const dir = join(ctx.workDir, 'opa-envoy-policy');
  if (ctx.opaPolicy === 'shipped') {
    const shipped = join(PROJECT_ROOT, 'policies', 'chaperone');
    await mkdir(join(dir, 'chaperone', 'authz'), { recursive: true });
    await cp(join(shipped, 'authz', 'decision.rego'), join(dir, 'chaperone', 'authz', 'decision.rego'));
    await cp(join(shipped, 'targets'), join(dir, 'chaperone', 'targets'), { recursive: true });
    // The library's helpers (paths.within), without their tests.
    await cp(join(shipped, 'lib'), join(dir, 'chaperone', 'lib'), {
      recursive: true,
      filter: (src) => !src.endsWith('_test.rego'),
    });
  }
  await mkdir(join(dir, 'envoy', 'authz'), { recursive: true });
  await cp(
    join(HERE, 'opa-envoy', `${ctx.opaPolicy}-policy.rego`),
    join(dir, 'envoy', 'authz', 'policy.rego'),
  );
  await mkdir(join(dir, 'bench', 'issuer'), { recursive: true });
  await writeFile(
    join(dir, 'bench', 'issuer', 'data.json'),
    JSON.stringify({
      issuer: ctx.issuer.issuer,
      audience: ctx.issuer.audience,
      // io.jwt.decode_verify takes the JWKS as JSON text.
      jwks: JSON.stringify(ctx.issuer.jwks),
    }),
  );
  return dir;
}

export async function startOpaEnvoySide(ctx: BenchContext): Promise<RunningSide> {
  const grpcPort = await freePort();
  const httpPort = await freePort();
  const decisionLog = join(ctx.workDir, 'opa-envoy-decisions.log');
  const opa = spawnChild(
    'opa-envoy',
    locateTool('opa-envoy-plugin'),
    [
      'run',
      '--server',
      `--addr=127.0.0.1:${httpPort}`,
      `--set=plugins.envoy_ext_authz_grpc.addr=127.0.0.1:${grpcPort}`,
      '--set=plugins.envoy_ext_authz_grpc.path=envoy/authz/allow',
      // Decision logs on, to the console (logrus on stderr, one JSON line per decision, whatever
      // --log-level says); the file stands in for the log collector reading it.
      '--set=decision_logs.console=true',
      '--log-level=error',
      '--skip-version-check',
      await opaPolicyDir(ctx),
    ],
    { outputFile: decisionLog },
  );
  await waitUntil(
    'OPA-Envoy to answer health',
    async () => (await fetch(`http://127.0.0.1:${httpPort}/health?plugins`)).ok,
    { timeoutMs: 30_000, child: opa },
  );
  const envoy = await startEnvoy(ctx, 'opa-envoy', { port: grpcPort });
  return {
    name: 'opa-envoy',
    url: envoy.url,
    adminUrl: envoy.adminUrl,
    decisionLog,
    pids: pidsOf([envoy.child, opa]),
    stop: stopInOrder([envoy.child, opa]),
  };
}

export async function startAuthzOnlySide(ctx: BenchContext): Promise<RunningSide> {
  // `authz serve` listens on TCP only with mutual TLS; a 0600 socket is how a node runs it.
  const socket = join(ctx.workDir, 'authz-only.sock');
  const authz = spawnChild(
    'authz-only',
    process.execPath,
    [
      '--import',
      'tsx',
      join(PROJECT_ROOT, 'cli', 'main.ts'),
      'authz',
      'serve',
      '--addr',
      `unix:${socket}`,
      '--policy-dir',
      join(PROJECT_ROOT, 'policies'),
      '--entrypoint',
      'chaperone/authz/decision',
      '--issuer',
      ctx.issuer.issuer,
      '--audience',
      ctx.issuer.audience,
      '--log-level',
      'warn',
    ],
    { cwd: PROJECT_ROOT, env: { ...process.env, NODE_ENV: 'production' } },
  );
  await waitUntil(`authz-only to listen on ${socket}`, () => tcpAccepts(socket), {
    timeoutMs: 120_000,
    child: authz,
  });
  const envoy = await startEnvoy(ctx, 'authz-only', { pipe: socket });
  return {
    name: 'authz-only',
    url: envoy.url,
    adminUrl: envoy.adminUrl,
    pids: pidsOf([envoy.child, authz]),
    stop: stopInOrder([envoy.child, authz]),
  };
}

function chaperoneYaml(ctx: BenchContext, p: Record<'listener' | 'admin' | 'api', number>) {
  return `# bench:gateway (generated): the dev issuer, the bench upstream as target "demo", the shipped
# policy library and the embedded audit store, as \`chaperone up --dev\` runs them; the authz server and
# the control plane on their default Unix sockets in the state directory, as on one node.
listeners:
  - name: egress
    address: 127.0.0.1
    port: ${p.listener}
identity:
  issuers:
    - issuer: ${ctx.issuer.issuer}
      audiences: [${ctx.issuer.audience}]
access:
  admins: [security]
  auditors: [security]
  reviewers: [security]
targets:
  - name: demo
    upstream: http://127.0.0.1:${ctx.upstreamPort}
    match:
      path_prefix: /demo
policy:
  dir: ${join(PROJECT_ROOT, 'policies')}
  entrypoint: chaperone/authz/decision
audit:
  store: embedded
  spool_dir: state/spool
authz:
  max_outstanding: ${ctx.authzMaxOutstanding}
control_plane:
  http_address: 127.0.0.1:${p.api}
envoy:
  admin_port: ${p.admin}
`;
}

export async function startChaperoneSide(
  ctx: BenchContext,
  name: 'chaperone' | 'chaperone-grpc-js',
  opts: SideOptions = {},
): Promise<RunningSide> {
  const [listener, admin, api] = await Promise.all(Array.from({ length: 3 }, () => freePort()));
  const ports = { listener: listener!, admin: admin!, api: api! };
  const dir = join(ctx.workDir, name);
  await mkdir(dir, { recursive: true });
  const config = join(dir, 'chaperone.yaml');
  await writeFile(config, chaperoneYaml(ctx, ports));
  const nodeArgs = [
    ...(opts.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfileDir}`] : []),
    '--import',
    'tsx',
    join(PROJECT_ROOT, 'cli', 'main.ts'),
    'up',
    '--config',
    config,
    '--log-level',
    'warn',
  ];
  const child = spawnChild(name, process.execPath, nodeArgs, {
    // tsx resolves from here; the config's relative paths resolve against the config file.
    cwd: PROJECT_ROOT,
    env: {
      ...process.env,
      NODE_ENV: 'production',
      ...(name === 'chaperone-grpc-js' ? { CHAPERONE_AUTHZ_TRANSPORT: 'grpc-js' } : {}),
    },
  });
  const apiUrl = `http://127.0.0.1:${ports.api}`;
  // /status is for the security group (carol, in the config's access section).
  const status = async (): Promise<unknown> =>
    (await fetch(`${apiUrl}/status`, { headers: { authorization: `Bearer ${ctx.tokens.carol}` } })).json();
  await waitUntil(
    `${name} to report ready (${apiUrl}/readyz)`,
    async () => (await fetch(`${apiUrl}/readyz`)).ok,
    {
      timeoutMs: 120_000,
      child,
    },
  );
  return {
    name,
    url: `http://127.0.0.1:${ports.listener}/demo/items`,
    adminUrl: `http://127.0.0.1:${ports.admin}`,
    pids: pidsOf([child]),
    status,
    settled: () =>
      waitUntil(
        `${name}: the audit spool and access logs to reach the store`,
        async () => {
          const s = (await status()) as {
            audit?: { spool?: { pending?: number }; access_logs?: { pending?: number } };
          };
          return s.audit?.spool?.pending === 0 && s.audit.access_logs?.pending === 0;
        },
        { timeoutMs: 120_000, child },
      ),
    // The gateway flushes its audit spool on SIGTERM before it exits (and writes the CPU profile).
    stop: stopInOrder([child], 60_000),
  };
}

export function startSide(ctx: BenchContext, name: SideName, opts: SideOptions = {}): Promise<RunningSide> {
  switch (name) {
    case 'envoy':
      return startEnvoyAlone(ctx);
    case 'opa-envoy':
      return startOpaEnvoySide(ctx);
    case 'authz-only':
      return startAuthzOnlySide(ctx);
    case 'chaperone':
    case 'chaperone-grpc-js':
      return startChaperoneSide(ctx, name, opts);
  }
}
