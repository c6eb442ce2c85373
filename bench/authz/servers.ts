// Starts the two Check servers under test as separate processes, each on its own loopback port:
// ours through the CLI (`chaperone authz serve`), and OPA-Envoy (`opa-envoy-plugin run --server`).
// Both load the same Rego directory and evaluate the same rule, `envoy/authz/allow`.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { locateTool, PROJECT_ROOT } from '../../lib/tools.ts';
import { ENTRYPOINT } from './cases.ts';
import { type CheckClient, checkClient } from './check-client.ts';
import { type Child, freePort, spawnChild, waitUntil } from './processes.ts';

/**
 * `node-floor` is the bare @grpc/grpc-js server of grpc-floor.ts (no policy): the Node ceiling on
 * that library; `http2-floor` the same on the lean node:http2 transport (authz-server/transport/).
 * `ours` is ours with `--transport grpc-js`, `ours-http2` with `--transport http2` (the default). `connect-floor` is the same floor on
 * @connectrpc/connect-node (evaluation only; set up with bench/authz/connect-eval/setup.mjs).
 */
export type Side = 'ours' | 'ours-http2' | 'opa-envoy' | 'node-floor' | 'http2-floor' | 'connect-floor';
export const SIDES: readonly Side[] = [
  'ours',
  'ours-http2',
  'opa-envoy',
  'node-floor',
  'http2-floor',
  'connect-floor',
];

export interface RunningServer {
  side: Side;
  address: string;
  child: Child;
  client: CheckClient;
}

export interface StartOptions {
  /** CPUs the server is pinned to (taskset), or undefined. */
  cpus?: string;
  /** Write a V8 CPU profile of our server into this directory when it exits. */
  cpuProfileDir?: string;
  /** How long the server may take to answer its first Check (ours compiles Rego to WASM). */
  readyTimeoutMs?: number;
  /** Ours only: the Check transport (`authz serve --transport`). */
  transport?: 'grpc-js' | 'http2';
}

async function untilReady(server: RunningServer, probe: unknown, timeoutMs: number): Promise<RunningServer> {
  await waitUntil(
    `${server.side} to answer Check on ${server.address}`,
    async () => {
      await server.client.statusOf(probe, 1000);
      return true;
    },
    { timeoutMs, child: server.child },
  );
  return server;
}

export async function startOurs(
  policyDir: string,
  probe: unknown,
  opts: StartOptions = {},
): Promise<RunningServer> {
  const address = `127.0.0.1:${await freePort()}`;
  const nodeArgs = [
    ...(opts.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfileDir}`] : []),
    '--import',
    'tsx',
    join(PROJECT_ROOT, 'cli', 'main.ts'),
    'authz',
    'serve',
    '--addr',
    address,
    // Plaintext TCP like the servers it is compared with (the product's TCP is mutual TLS).
    '--plaintext-tcp',
    '--policy-dir',
    policyDir,
    '--entrypoint',
    ENTRYPOINT,
    '--log-level',
    'warn',
    ...(opts.transport ? ['--transport', opts.transport] : []),
  ];
  const side: Side = opts.transport === 'http2' ? 'ours-http2' : 'ours';
  const child = spawnChild(side, process.execPath, nodeArgs, {
    cwd: PROJECT_ROOT,
    env: { ...process.env, NODE_ENV: 'production' },
    ...(opts.cpus ? { cpus: opts.cpus } : {}),
  });
  const server: RunningServer = { side, address, child, client: checkClient(address) };
  try {
    return await untilReady(server, probe, opts.readyTimeoutMs ?? 90_000);
  } catch (err) {
    // cli/main.ts skips a command group whose modules fail to load, so a broken import shows up as
    // "unknown option"; CHAPERONE_DEBUG=1 makes it print the import error instead.
    const hint = /unknown (option|command)/.test(child.tail())
      ? '\n(the `authz` command group did not load: run `CHAPERONE_DEBUG=1 node --import tsx cli/main.ts authz serve --help` to see why)'
      : '';
    throw new Error(`${err instanceof Error ? err.message : String(err)}${hint}`);
  }
}

export async function startOpaEnvoy(
  policyDir: string,
  probe: unknown,
  opts: StartOptions = {},
): Promise<RunningServer> {
  const grpcAddress = `127.0.0.1:${await freePort()}`;
  const httpAddress = `127.0.0.1:${await freePort()}`;
  const args = [
    'run',
    '--server',
    `--addr=${httpAddress}`,
    `--set=plugins.envoy_ext_authz_grpc.addr=${grpcAddress}`,
    `--set=plugins.envoy_ext_authz_grpc.path=${ENTRYPOINT}`,
    // Decision logging off on both sides: ours logs decisions at info, and runs at warn.
    '--set=decision_logs.console=false',
    '--log-level=error',
    '--skip-version-check',
    '--ignore=.*',
    policyDir,
  ];
  const child = spawnChild(
    'opa-envoy',
    locateTool('opa-envoy-plugin'),
    args,
    opts.cpus ? { cpus: opts.cpus } : {},
  );
  const server: RunningServer = {
    side: 'opa-envoy',
    address: grpcAddress,
    child,
    client: checkClient(grpcAddress),
  };
  return untilReady(server, probe, opts.readyTimeoutMs ?? 30_000);
}

export async function startNodeFloor(
  probe: unknown,
  opts: StartOptions = {},
  transport: 'grpc-js' | 'http2' = 'grpc-js',
): Promise<RunningServer> {
  const address = `127.0.0.1:${await freePort()}`;
  const script = join(PROJECT_ROOT, 'bench', 'authz', 'grpc-floor.ts');
  const side: Side = transport === 'http2' ? 'http2-floor' : 'node-floor';
  const child = spawnChild(side, process.execPath, ['--import', 'tsx', script, address, transport], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, NODE_ENV: 'production' },
    ...(opts.cpus ? { cpus: opts.cpus } : {}),
  });
  const server: RunningServer = { side, address, child, client: checkClient(address) };
  return untilReady(server, probe, opts.readyTimeoutMs ?? 30_000);
}

export async function startConnectFloor(probe: unknown, opts: StartOptions = {}): Promise<RunningServer> {
  const dir = join(PROJECT_ROOT, 'bench', 'authz', 'connect-eval');
  if (!existsSync(join(dir, 'gen')) || !existsSync(join(dir, 'node_modules'))) {
    throw new Error('connect-floor is not set up: run `node bench/authz/connect-eval/setup.mjs` first');
  }
  const address = `127.0.0.1:${await freePort()}`;
  const child = spawnChild('connect-floor', process.execPath, [join(dir, 'connect-floor.mjs'), address], {
    cwd: dir,
    env: { ...process.env, NODE_ENV: 'production' },
    ...(opts.cpus ? { cpus: opts.cpus } : {}),
  });
  const server: RunningServer = { side: 'connect-floor', address, child, client: checkClient(address) };
  return untilReady(server, probe, opts.readyTimeoutMs ?? 30_000);
}
