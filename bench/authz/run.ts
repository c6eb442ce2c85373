// `npm run bench:authz`: our ext_authz server against OPA-Envoy, same Rego, same requests, same
// load generator (ghz). For each case both servers run as separate processes; each is first checked
// for correct answers, then measured alternately with identical settings (a warm-up run, then the
// measured run). Prints one table row per case with both sides' figures and the ratios.
//
// Flags: --duration <s> (10) --warmup <s> (3) --concurrency <n> (50) --connections <n> (1)
//        --cases a,b (all) --sides ours,opa-envoy[,ours-http2,node-floor,http2-floor,connect-floor]
//        --rounds <n> (1) --pin (server on CPU 0, ghz on CPU 1)
//        --profile (V8 CPU profile of our server, summarised at the end) --json <file>
import { copyFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type BenchCase, CASES, type PreparedCase } from './cases.ts';
import { RPC_OK, RPC_PERMISSION_DENIED } from './check-client.ts';
import { type LoadResult, type LoadSettings, runGhz } from './ghz.ts';
import { killAllNow, stopAll, stopChild } from './processes.ts';
import { summariseProfile } from './profile-summary.ts';
import {
  type RunningServer,
  SIDES,
  type Side,
  startConnectFloor,
  startNodeFloor,
  startOpaEnvoy,
  startOurs,
} from './servers.ts';

interface Options {
  durationSec: number;
  warmupSec: number;
  concurrency: number;
  connections: number;
  cases: BenchCase[];
  sides: Side[];
  rounds: number;
  pin: boolean;
  profile: boolean;
  json: string | null;
}

class UsageError extends Error {
  readonly code = 'ERR_USAGE';
}

function positive(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(String(raw).replace(/s$/, ''));
  if (!Number.isFinite(value) || value <= 0)
    throw new UsageError(`--${name} must be a positive number, got "${raw}"`);
  return value;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      concurrency: { type: 'string' },
      connections: { type: 'string' },
      cases: { type: 'string' },
      sides: { type: 'string' },
      rounds: { type: 'string' },
      pin: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      json: { type: 'string' },
    },
    strict: true,
  });
  const names = values.cases ? values.cases.split(',').map((s) => s.trim()) : CASES.map((c) => c.name);
  const unknown = names.filter((n) => !CASES.some((c) => c.name === n));
  if (unknown.length > 0) {
    throw new UsageError(
      `unknown case(s) ${unknown.join(', ')}; known: ${CASES.map((c) => c.name).join(', ')}`,
    );
  }
  const sides = (values.sides ?? 'ours,opa-envoy').split(',').map((s) => s.trim());
  const badSide = sides.find((s) => !SIDES.includes(s as Side));
  if (badSide !== undefined || sides.length === 0) {
    throw new UsageError(`--sides takes ${SIDES.join(', ')} (comma-separated), got "${values.sides}"`);
  }
  return {
    durationSec: positive('duration', values.duration, 10),
    warmupSec: positive('warmup', values.warmup, 3),
    concurrency: Math.round(positive('concurrency', values.concurrency, 50)),
    connections: Math.round(positive('connections', values.connections, 1)),
    cases: CASES.filter((c) => names.includes(c.name)),
    sides: sides as Side[],
    rounds: Math.round(positive('rounds', values.rounds, 1)),
    pin: values.pin,
    profile: values.profile,
    json: values.json ?? null,
  };
}

interface CaseResult {
  name: string;
  summary: string;
  /** Why the case was not measured (a wrong answer or a server that failed), or null. */
  failure: string | null;
  runs: Record<Side, LoadResult[]>;
}

const expectCode = (expect: 'allow' | 'deny') => (expect === 'allow' ? RPC_OK : RPC_PERMISSION_DENIED);

/** A benchmark of wrong answers is worthless: each server must decide every check as expected. */
async function verify(server: RunningServer, prepared: PreparedCase): Promise<string[]> {
  // The floor has no policy and allows everything by design; it is a transport reference only.
  if (server.side.endsWith('-floor')) return [];
  const wrong: string[] = [];
  const checks = [
    { label: 'measured request', request: prepared.measured, expect: 'allow' as const },
    ...prepared.checks,
  ];
  for (const check of checks) {
    const code = await server.client.statusOf(check.request);
    if (code !== expectCode(check.expect)) {
      wrong.push(`${server.side}: ${check.label}: expected ${check.expect}, got status.code ${code}`);
    }
  }
  return wrong;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function aggregate(runs: LoadResult[]): LoadResult {
  return {
    count: runs.reduce((n, r) => n + r.count, 0),
    rps: median(runs.map((r) => r.rps)),
    p50Ms: median(runs.map((r) => r.p50Ms)),
    p99Ms: median(runs.map((r) => r.p99Ms)),
    errors: runs.reduce((n, r) => n + r.errors, 0),
    errorKinds: Object.assign({}, ...runs.map((r) => r.errorKinds)),
  };
}

async function runCase(
  bench: BenchCase,
  opts: Options,
  workDir: string,
  log: (s: string) => void,
): Promise<CaseResult> {
  const result: CaseResult = {
    name: bench.name,
    summary: bench.summary,
    failure: null,
    runs: {
      ours: [],
      'ours-http2': [],
      'opa-envoy': [],
      'node-floor': [],
      'http2-floor': [],
      'connect-floor': [],
    },
  };
  const prepared = await bench.prepare(workDir);
  const dataFile = join(workDir, `${bench.name}.request.json`);
  await writeFile(dataFile, JSON.stringify(prepared.measured));
  const serverCpus = opts.pin ? { cpus: '0' } : {};
  const profileDir = opts.profile ? join(workDir, `profile-${bench.name}`) : undefined;
  const servers: RunningServer[] = [];
  try {
    log(`[${bench.name}] starting servers`);
    for (const transport of ['grpc-js', 'http2'] as const) {
      if (!opts.sides.includes(transport === 'http2' ? 'ours-http2' : 'ours')) continue;
      servers.push(
        await startOurs(prepared.policyDir, prepared.measured, {
          ...serverCpus,
          ...(profileDir ? { cpuProfileDir: join(profileDir, transport) } : {}),
          // Always named: `ours` is @grpc/grpc-js, `ours-http2` the lean transport (the default).
          transport,
        }),
      );
    }
    if (opts.sides.includes('opa-envoy')) {
      servers.push(await startOpaEnvoy(prepared.policyDir, prepared.measured, serverCpus));
    }
    if (opts.sides.includes('node-floor')) servers.push(await startNodeFloor(prepared.measured, serverCpus));
    if (opts.sides.includes('http2-floor'))
      servers.push(await startNodeFloor(prepared.measured, serverCpus, 'http2'));
    if (opts.sides.includes('connect-floor'))
      servers.push(await startConnectFloor(prepared.measured, serverCpus));
    const wrong = (await Promise.all(servers.map((s) => verify(s, prepared)))).flat();
    for (const s of servers) s.client.close();
    if (wrong.length > 0) {
      result.failure = `wrong answers, not measured:\n  ${wrong.join('\n  ')}`;
      return result;
    }
    const load: LoadSettings = {
      durationSec: opts.durationSec,
      concurrency: opts.concurrency,
      connections: opts.connections,
      ...(opts.pin ? { cpus: '1' } : {}),
    };
    for (let round = 0; round < opts.rounds; round++) {
      // Alternate which side goes first, so drift (thermal, page cache) does not favour one side.
      const order = round % 2 === 0 ? servers : [...servers].reverse();
      for (const server of order) {
        await runGhz(server.address, dataFile, { ...load, durationSec: opts.warmupSec }, workDir);
        const measured = await runGhz(server.address, dataFile, load, workDir);
        result.runs[server.side].push(measured);
        log(
          `[${bench.name}] round ${round + 1} ${server.side.padEnd(9)} ${measured.rps.toFixed(0).padStart(7)} rps  ` +
            `p50 ${measured.p50Ms.toFixed(2)} ms  p99 ${measured.p99Ms.toFixed(2)} ms  errors ${measured.errors}`,
        );
      }
    }
  } finally {
    await Promise.all(servers.map((s) => stopChild(s.child)));
  }
  if (profileDir) {
    for (const transport of ['grpc-js', 'http2']) {
      if (opts.sides.includes(transport === 'http2' ? 'ours-http2' : 'ours'))
        await reportProfile(`${bench.name}-${transport}`, join(profileDir, transport), log);
    }
  }
  return result;
}

async function reportProfile(name: string, dir: string, log: (s: string) => void): Promise<void> {
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) {
    log(`[${name}] no CPU profile was written in ${dir}`);
    return;
  }
  // Kept outside the work directory (which is removed) for a closer look in a profiler UI.
  const kept = join(tmpdir(), `chaperone-bench-authz-${name}.cpuprofile`);
  await copyFile(join(dir, files[0]!), kept);
  const s = await summariseProfile(kept);
  log(
    `[${name}] CPU profile of our server: ${kept} (${s.totalMs.toFixed(0)} ms, idle ${s.idlePercent.toFixed(1)}%)`,
  );
  log('  self time by file:');
  for (const h of s.byFile) log(`    ${h.percent.toFixed(1).padStart(5)}%  ${h.where}`);
  log('  self time by function:');
  for (const h of s.byFunction) log(`    ${h.percent.toFixed(1).padStart(5)}%  ${h.where}`);
}

function fmt(r: LoadResult | null): string[] {
  if (!r) return ['-', '-', '-'];
  return [r.rps.toFixed(0), r.p50Ms.toFixed(2), r.p99Ms.toFixed(2)];
}

/**
 * One row per case: rps, p50 and p99 of every side measured (in SIDES order), then each of our
 * servers against OPA-Envoy (rps and p99 ratios), then the gRPC errors per side.
 */
function table(results: CaseResult[]): string {
  const measured = SIDES.filter((side) => results.some((c) => c.runs[side].length > 0));
  const compared = measured.filter(
    (s) => (s === 'ours' || s === 'ours-http2') && measured.includes('opa-envoy'),
  );
  const header = [
    'case',
    ...measured.flatMap((s) => [`${s} rps`, 'p50 ms', 'p99 ms']),
    ...compared.flatMap((s) => [`rps ${s}/opa`, `p99 ${s}/opa`]),
    `errors ${measured.join('/')}`,
  ];
  const rows = results.map((c) => {
    if (c.failure) return [c.name, 'NOT MEASURED', ...header.slice(2).map(() => '')];
    const agg = (side: Side) => (c.runs[side].length > 0 ? aggregate(c.runs[side]) : null);
    const theirs = agg('opa-envoy');
    return [
      c.name,
      ...measured.flatMap((s) => fmt(agg(s))),
      ...compared.flatMap((s) => {
        const ours = agg(s);
        return ours && theirs
          ? [`${(ours.rps / theirs.rps).toFixed(2)}x`, `${(ours.p99Ms / theirs.p99Ms).toFixed(2)}x`]
          : ['-', '-'];
      }),
      measured.map((s) => String(agg(s)?.errors ?? '-')).join('/'),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [
    line(header),
    `|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
    ...rows.map(line),
  ].join('\n');
}

/** Set on Ctrl-C/SIGTERM: the failures that follow (killed children) are expected, not errors. */
let interrupted = false;

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const workDir = await mkdtemp(join(tmpdir(), 'chaperone-bench-'));
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    log(`\n${signal}: stopping every process the benchmark started`);
    void stopAll()
      .then(() => rm(workDir, { recursive: true, force: true }))
      .finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', killAllNow);

  const cpuModel = cpus()[0]?.model ?? 'unknown CPU';
  log(
    `chaperone authz bench: ${availableParallelism()} CPUs (${cpuModel}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ` +
      `node ${process.version}; ${opts.durationSec}s measured after ${opts.warmupSec}s warm-up, ` +
      `concurrency ${opts.concurrency} over ${opts.connections} connection(s), ${opts.rounds} round(s), ` +
      (opts.pin ? 'server pinned to CPU 0 and ghz to CPU 1' : 'server and ghz share all CPUs') +
      '; the two servers are measured one after the other, never at the same time',
  );
  const results: CaseResult[] = [];
  let exitCode = 0;
  try {
    for (const bench of opts.cases) {
      const r = await runCase(bench, opts, workDir, log);
      if (r.failure) {
        log(`[${bench.name}] ${r.failure}`);
        exitCode = 1;
      }
      if (Object.values(r.runs).some((runs) => runs.some((x) => x.errors > 0))) exitCode = 1;
      results.push(r);
    }
  } catch (err) {
    if (!interrupted) log(`error: ${err instanceof Error ? err.message : String(err)}`);
    exitCode = 1;
  } finally {
    await stopAll();
    await rm(workDir, { recursive: true, force: true });
  }
  if (results.length > 0) process.stdout.write(`\n${table(results)}\n`);
  if (opts.json) {
    await writeFile(
      opts.json,
      `${JSON.stringify({ date: new Date().toISOString(), cpus: availableParallelism(), cpuModel, options: { ...opts, cases: opts.cases.map((c) => c.name) }, results }, null, 2)}\n`,
    );
  }
  return exitCode;
}

process.exitCode = await main();
