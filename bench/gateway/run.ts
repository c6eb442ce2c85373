// `npm run bench:gateway`: the whole gateway under an open-loop, fixed-rate load through a real Envoy,
// against Envoy alone and Envoy + OPA-Envoy, in one run. Every side sends `GET /demo/items` with
// alice's token from the dev issuer to the same upstream; each side is started, checked for correct
// answers (alice 200, bob 403, no token 401), warmed up, then measured at each rate in turn with
// vegeta, and stopped before the next side starts. Per rate: p50/p99, the latency added over Envoy
// alone, errors (non-2xx and unanswered), and Envoy's own ext_authz/ext_proc counters. Each side's
// maximum sustainable rate is the highest rate it held, with every lower rate, at p99 ≤ the limit and
// zero errors.
//
// Flags: --rates 500,1000,2000,4000,8000  --duration <s> (10)  --warmup <s> (3)  --timeout <s> (5)
//        --sides envoy,opa-envoy,chaperone[,authz-only,chaperone-grpc-js]  --p99-limit <ms> (10)
//        --quick (rates 500,1000, 3 s each, 1 s warm-up: a smoke run)  --profile (CPU profile of
//        `chaperone up`)  --keep-going (run the higher rates after a side lost half its requests)
//        --opa-policy shipped|direct (OPA-Envoy runs the shipped library, or the same decision as one
//        hand-written rule)  --authz-max-outstanding <n> (the authz cluster's circuit breaker on every
//        side with an authz server; default Chaperone's, 1024 is Envoy's own default)
//        --json <file> (default: a file in the temp dir, printed at the end)
import { createReadStream } from 'node:fs';
import { copyFile, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEV_DEFAULTS } from '../../cli/dev/dev-config.ts';
import { type DevIdp, startDevIdp } from '../../cli/dev/dev-idp.ts';
import { CONFIG_DEFAULTS } from '../../config/defaults.ts';
import { PROJECT_ROOT } from '../../lib/tools.ts';
import {
  killAllNow,
  runningChildren,
  spawnChild,
  stopAll,
  stopChildrenSince,
  waitUntil,
} from '../authz/processes.ts';
import { summariseProfile } from '../authz/profile-summary.ts';
import { activeDownstreamRequests, type Counters, envoyCounters, movedCounters } from './envoy-stats.ts';
import { cpuPer1k, treeCpu } from './process-cpu.ts';
import {
  type BenchContext,
  freePort,
  type RunningSide,
  SIDE_NAMES,
  type SideName,
  startSide,
} from './sides.ts';
import { attack, type RateResult } from './vegeta.ts';

interface Options {
  rates: number[];
  durationSec: number;
  warmupSec: number;
  timeoutSec: number;
  sides: SideName[];
  p99LimitMs: number;
  profile: boolean;
  keepGoing: boolean;
  opaPolicy: 'shipped' | 'direct';
  authzMaxOutstanding: number;
  json: string;
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

function opaPolicyOf(raw: string | undefined): 'shipped' | 'direct' {
  if (raw === undefined || raw === 'shipped' || raw === 'direct') return raw ?? 'shipped';
  throw new UsageError(`--opa-policy takes shipped or direct, got "${raw}"`);
}

/** The schema's range of `authz.max_outstanding`. */
function maxOutstandingOf(raw: string | undefined): number {
  if (raw === undefined) return CONFIG_DEFAULTS.authzMaxOutstanding;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 16 || n > 4096)
    throw new UsageError(`--authz-max-outstanding takes a whole number from 16 to 4096, got "${raw}"`);
  return n;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      rates: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      timeout: { type: 'string' },
      sides: { type: 'string' },
      'p99-limit': { type: 'string' },
      quick: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      'keep-going': { type: 'boolean', default: false },
      'opa-policy': { type: 'string' },
      'authz-max-outstanding': { type: 'string' },
      json: { type: 'string' },
    },
    strict: true,
  });
  const quick = values.quick;
  const rates = (values.rates ?? (quick ? '500,1000' : '500,1000,2000,4000,8000'))
    .split(',')
    .map((r) => positive('rates', r.trim(), 0));
  const sides = (values.sides ?? 'envoy,opa-envoy,chaperone').split(',').map((s) => s.trim());
  const bad = sides.find((s) => !SIDE_NAMES.includes(s as SideName));
  if (bad !== undefined) throw new UsageError(`--sides takes ${SIDE_NAMES.join(', ')}, got "${bad}"`);
  if (!sides.includes('envoy'))
    throw new UsageError('--sides must include envoy: every figure is read against it');
  return {
    rates: [...new Set(rates)].sort((a, b) => a - b),
    durationSec: positive('duration', values.duration, quick ? 3 : 10),
    warmupSec: positive('warmup', values.warmup, quick ? 1 : 3),
    timeoutSec: positive('timeout', values.timeout, 5),
    // Envoy alone first: the anchor is measured before anything else has warmed the machine.
    sides: SIDE_NAMES.filter((s) => sides.includes(s)),
    p99LimitMs: positive('p99-limit', values['p99-limit'], 10),
    profile: values.profile,
    keepGoing: values['keep-going'],
    opaPolicy: opaPolicyOf(values['opa-policy']),
    authzMaxOutstanding: maxOutstandingOf(values['authz-max-outstanding']),
    json:
      values.json ??
      join(tmpdir(), `chaperone-bench-gateway-${new Date().toISOString().replace(/[:.]/g, '-')}.json`),
  };
}

interface MeasuredRate extends RateResult {
  /** One-minute load average when the rate started: other work on the machine shows here. */
  loadAvg1: number;
  envoyCounters: Counters;
  /**
   * CPU milliseconds per 1,000 requests of the side's Envoy and of everything else it runs (authz
   * server, gateway), over the rate and the drain after it: unlike latency, hardly moved by other work.
   */
  cpu: { envoyMsPer1k: number; serverMsPer1k: number; serverThreadsMsPer1k: Record<string, number> };
  /** OPA-Envoy only: decision log lines written during the rate. */
  decisionLogLines?: number;
  /** Chaperone only: its /status after the rate (authz metrics, audit spool and store). */
  status?: unknown;
}

interface SideResult {
  name: SideName;
  rates: MeasuredRate[];
  /** Highest rate held (with every lower one) at p99 ≤ limit and zero errors; 0 if none. */
  maxSustainableRate: number;
  /**
   * Highest rate held (with every lower one) with zero errors, whatever the p99: on a shared machine
   * whose own noise keeps every p99 above the limit, what still tells the sides apart.
   */
  maxErrorFreeRate: number;
  profile?: { file: string; byFile: unknown; byFunction: unknown; idlePercent: number };
  failure?: string;
}

async function countLines(file: string): Promise<number> {
  let n = 0;
  for await (const chunk of createReadStream(file)) {
    for (const byte of chunk as Buffer) if (byte === 0x0a) n++;
  }
  return n;
}

/** A benchmark of wrong answers is worthless: alice is allowed, bob and an anonymous caller are not. */
async function verify(side: RunningSide, ctx: BenchContext): Promise<string[]> {
  const wrong: string[] = [];
  const expect = async (label: string, token: string | null, status: number) => {
    const res = await fetch(side.url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
    const body = await res.text();
    if (res.status !== status)
      wrong.push(`${side.name}: ${label}: expected ${status}, got ${res.status} ${body.slice(0, 200)}`);
  };
  await expect('alice', ctx.tokens.alice, 200);
  if (side.name !== 'envoy') {
    await expect('bob (contractors)', ctx.tokens.bob, 403);
    await expect('no token', null, 401);
  }
  return wrong;
}

/**
 * Ports are picked free and bound a moment later; on a machine where the previous rate left tens of
 * thousands of client sockets behind (or other work binds ports), one may be taken in between.
 */
async function startWithRetry(
  start: () => Promise<RunningSide>,
  log: (s: string) => void,
): Promise<RunningSide> {
  for (let attempt = 1; ; attempt++) {
    const before = runningChildren();
    try {
      return await start();
    } catch (err) {
      await stopChildrenSince(before);
      const text = err instanceof Error ? err.message : String(err);
      if (attempt >= 3 || !/address already in use|EADDRINUSE|is in use/i.test(text)) throw err;
      log(`  a port was taken before it could be bound; starting again (attempt ${attempt + 1})`);
    }
  }
}

async function untilIdle(side: RunningSide): Promise<void> {
  await waitUntil(
    `${side.name}: Envoy to finish the requests in flight`,
    async () => (await activeDownstreamRequests(side.adminUrl)) === 0,
    {
      timeoutMs: 60_000,
    },
  );
}

function sustainable(rates: MeasuredRate[], p99LimitMs: number): number {
  let best = 0;
  for (const r of rates) {
    if (r.errors > 0 || r.p99Ms > p99LimitMs) break;
    best = r.rate;
  }
  return best;
}

async function runSide(
  name: SideName,
  ctx: BenchContext,
  opts: Options,
  log: (s: string) => void,
): Promise<SideResult> {
  const result: SideResult = { name, rates: [], maxSustainableRate: 0, maxErrorFreeRate: 0 };
  const profileDir =
    opts.profile && name.startsWith('chaperone') ? join(ctx.workDir, `profile-${name}`) : undefined;
  log(`[${name}] starting`);
  const side = await startWithRetry(
    () => startSide(ctx, name, profileDir ? { cpuProfileDir: profileDir } : {}),
    log,
  );
  const headers = { authorization: `Bearer ${ctx.tokens.alice}` };
  try {
    const wrong = await verify(side, ctx);
    if (wrong.length > 0) {
      result.failure = `wrong answers, not measured:\n  ${wrong.join('\n  ')}`;
      return result;
    }
    await attack({
      url: side.url,
      headers,
      rate: opts.rates[0]!,
      durationSec: opts.warmupSec,
      timeoutSec: opts.timeoutSec,
      workDir: ctx.workDir,
    });
    for (const rate of opts.rates) {
      await untilIdle(side);
      if (side.decisionLog) await truncate(side.decisionLog, 0);
      const loadAvg1 = loadavg()[0] ?? 0;
      const before = await envoyCounters(side.adminUrl);
      const cpuBefore = await treeCpu(side.pids);
      const r = await attack({
        url: side.url,
        headers,
        rate,
        durationSec: opts.durationSec,
        timeoutSec: opts.timeoutSec,
        workDir: ctx.workDir,
      });
      await untilIdle(side).catch((err: unknown) =>
        log(`[${name}] ${err instanceof Error ? err.message : String(err)}`),
      );
      await side
        .settled?.()
        .catch((err: unknown) => log(`[${name}] ${err instanceof Error ? err.message : String(err)}`));
      const cpu = cpuPer1k(cpuBefore, await treeCpu(side.pids), r.requests);
      const measured: MeasuredRate = {
        ...r,
        loadAvg1,
        cpu,
        envoyCounters: movedCounters(before, await envoyCounters(side.adminUrl)),
        ...(side.decisionLog ? { decisionLogLines: await countLines(side.decisionLog) } : {}),
        ...(side.status
          ? { status: await side.status().catch((err: unknown) => ({ error: String(err) })) }
          : {}),
      };
      result.rates.push(measured);
      const collapsed = !opts.keepGoing && r.errors >= r.requests / 2;
      log(
        `[${name}] ${String(rate).padStart(5)} rps: p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms  ` +
          `errors ${r.errors}/${r.requests} ${JSON.stringify(r.statusCodes)}  load ${loadAvg1.toFixed(1)}  ` +
          `cpu/1k req: envoy ${cpu.envoyMsPer1k.toFixed(0)} ms, server ${cpu.serverMsPer1k.toFixed(0)} ms ` +
          `${JSON.stringify(cpu.serverThreadsMsPer1k)}` +
          (measured.decisionLogLines !== undefined
            ? `  decision log lines ${measured.decisionLogLines}`
            : ''),
      );
      if (collapsed) {
        // Past this point an open-loop generator only piles up sockets and timeouts on a machine the
        // next side shares; the higher rates would fail at least as badly.
        log(
          `[${name}] half or more of the requests failed at ${rate} rps: higher rates not run (--keep-going runs them)`,
        );
        break;
      }
    }
  } finally {
    await side.stop();
  }
  result.maxSustainableRate = sustainable(result.rates, opts.p99LimitMs);
  result.maxErrorFreeRate = sustainable(result.rates, Number.POSITIVE_INFINITY);
  if (profileDir) {
    const files = (await readdir(profileDir).catch(() => [] as string[])).filter((f) =>
      f.endsWith('.cpuprofile'),
    );
    if (files.length === 0) log(`[${name}] no CPU profile was written in ${profileDir}`);
    else {
      const kept = join(tmpdir(), `chaperone-bench-gateway-${name}.cpuprofile`);
      await copyFile(join(profileDir, files[0]!), kept);
      const s = await summariseProfile(kept);
      result.profile = { file: kept, byFile: s.byFile, byFunction: s.byFunction, idlePercent: s.idlePercent };
      log(
        `[${name}] CPU profile of chaperone up: ${kept} (${s.totalMs.toFixed(0)} ms, idle ${s.idlePercent.toFixed(1)}%)`,
      );
      for (const h of s.byFile) log(`    ${h.percent.toFixed(1).padStart(5)}%  ${h.where}`);
      log('  self time by function:');
      for (const h of s.byFunction) log(`    ${h.percent.toFixed(1).padStart(5)}%  ${h.where}`);
    }
  }
  return result;
}

/** CPU ms per 1,000 requests, Envoy + the rest of each side, per rate: the machine-load-proof figure. */
function cpuTable(results: SideResult[], opts: Options): string {
  const measured = results.filter((r) => !r.failure);
  const header = ['rate', ...measured.map((r) => `${r.name} cpu ms/1k req (envoy + server)`)];
  const rows = opts.rates.map((rate) => [
    String(rate),
    ...measured.map((side) => {
      const r = side.rates.find((x) => x.rate === rate);
      return r ? `${r.cpu.envoyMsPer1k.toFixed(0)} + ${r.cpu.serverMsPer1k.toFixed(0)}` : '-';
    }),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => `${'-'.repeat(w + 1)}:`).join('|')}|`, ...rows.map(line)].join(
    '\n',
  );
}

const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(2));

function table(results: SideResult[], opts: Options): string {
  const anchor = results.find((r) => r.name === 'envoy');
  const others = results.filter((r) => r.name !== 'envoy' && !r.failure);
  const opa = others.find((r) => r.name === 'opa-envoy');
  const chaperones = others.filter((r) => r.name !== 'opa-envoy');
  const header = [
    'rate',
    'envoy p50/p99 ms',
    ...others.flatMap((o) => [`${o.name} p50/p99 ms`, 'added p50/p99', 'errors']),
    ...(opa ? chaperones.map((c) => `added ${c.name}/opa p50, p99`) : []),
  ];
  const rows = opts.rates.map((rate) => {
    const at = (s: SideResult | undefined) => s?.rates.find((r) => r.rate === rate);
    const a = at(anchor);
    const added = (r: MeasuredRate | undefined) =>
      r && a ? { p50: r.p50Ms - a.p50Ms, p99: r.p99Ms - a.p99Ms } : null;
    const cells = [String(rate), a ? `${ms(a.p50Ms)} / ${ms(a.p99Ms)}` : '-'];
    for (const o of others) {
      const r = at(o);
      const d = added(r);
      cells.push(
        r ? `${ms(r.p50Ms)} / ${ms(r.p99Ms)}` : '-',
        d ? `+${ms(d.p50)} / +${ms(d.p99)}` : '-',
        r
          ? r.errors === 0
            ? '0'
            : `${r.errors} (${((100 * r.errors) / Math.max(1, r.requests)).toFixed(1)}%)`
          : '-',
      );
    }
    if (opa) {
      const dOpa = added(at(opa));
      for (const c of chaperones) {
        const d = added(at(c));
        const ratio = (x: number, y: number) => (y > 0 ? `${(x / y).toFixed(1)}x` : '-');
        cells.push(d && dOpa ? `${ratio(d.p50, dOpa.p50)}, ${ratio(d.p99, dOpa.p99)}` : '-');
      }
    }
    return cells;
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i]!)).join(' | ')} |`;
  const sustained = results
    .filter((r) => !r.failure)
    .map((r) => `${r.name} ${r.maxSustainableRate > 0 ? `${r.maxSustainableRate} rps` : `none of the rates`}`)
    .join(', ');
  const ratio =
    opa && opa.maxSustainableRate > 0
      ? chaperones
          .map((c) => `${c.name}/opa-envoy ${(c.maxSustainableRate / opa.maxSustainableRate).toFixed(2)}x`)
          .join(', ')
      : '';
  return [
    line(header),
    `|${widths.map((w) => `${'-'.repeat(w + 1)}:`).join('|')}|`,
    ...rows.map(line),
    '',
    cpuTable(results, opts),
    '',
    `maximum sustainable rate (p99 ≤ ${opts.p99LimitMs} ms, zero errors, at every rate up to it): ${sustained}${ratio ? `; ${ratio}` : ''}`,
    `maximum error-free rate (zero errors at every rate up to it, any p99): ${results
      .filter((r) => !r.failure)
      .map((r) => `${r.name} ${r.maxErrorFreeRate > 0 ? `${r.maxErrorFreeRate} rps` : 'none of the rates'}`)
      .join(', ')}`,
    ...results.filter((r) => r.failure).map((r) => `${r.name}: NOT MEASURED: ${r.failure}`),
  ].join('\n');
}

async function cpuModel(): Promise<string> {
  const info = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  return /^model name\s*:\s*(.+)$/m.exec(info)?.[1]?.trim() ?? 'unknown CPU';
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
  const workDir = await mkdtemp(join(tmpdir(), 'chaperone-bench-gateway-'));
  let idp: DevIdp | null = null;
  const cleanup = async () => {
    await stopAll();
    await idp?.close().catch(() => undefined);
    await rm(workDir, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    log(`\n${signal}: stopping every process the benchmark started`);
    void cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', killAllNow);

  const machine = {
    cpus: availableParallelism(),
    cpuModel: await cpuModel(),
    memGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    loadAvgAtStart: loadavg(),
  };
  log(
    `chaperone gateway bench: ${machine.cpus} CPUs (${machine.cpuModel}), ${machine.memGiB} GiB, node ${machine.node}, ` +
      `load average ${machine.loadAvgAtStart.map((l) => l.toFixed(1)).join(' ')}; rates ${opts.rates.join(', ')} rps, ` +
      `${opts.durationSec} s each after a ${opts.warmupSec} s warm-up; sides one after another: ${opts.sides.join(', ')}`,
  );
  const results: SideResult[] = [];
  let exitCode = 0;
  try {
    const upstreamPort = await freePort();
    const upstream = spawnChild(
      'upstream',
      process.execPath,
      ['--import', 'tsx', join(PROJECT_ROOT, 'bench', 'gateway', 'upstream.ts'), String(upstreamPort)],
      {
        cwd: PROJECT_ROOT,
        env: { ...process.env, NODE_ENV: 'production' },
      },
    );
    await waitUntil(
      'the bench upstream',
      async () => (await fetch(`http://127.0.0.1:${upstreamPort}/demo/items`)).ok,
      {
        timeoutMs: 20_000,
        child: upstream,
      },
    );
    // The dev issuer of `chaperone up --dev`, in this process: it is idle while load runs (the
    // gateway fetches its keys once, OPA-Envoy gets them as data).
    idp = await startDevIdp({
      port: 0,
      users: DEV_DEFAULTS.users.map((u) => ({ ...u, groups: [...u.groups] })),
      audience: DEV_DEFAULTS.audience,
    });
    const ctx: BenchContext = {
      workDir,
      upstreamPort,
      issuer: { issuer: idp.issuer, audience: DEV_DEFAULTS.audience, jwks: idp.jwks() },
      opaPolicy: opts.opaPolicy,
      authzMaxOutstanding: opts.authzMaxOutstanding,
      tokens: {
        alice: await idp.tokenFor('alice', { ttlSec: 4 * 3600 }),
        bob: await idp.tokenFor('bob', { ttlSec: 4 * 3600 }),
        carol: await idp.tokenFor('carol', { ttlSec: 4 * 3600 }),
      },
    };
    for (const name of opts.sides) {
      const r = await runSide(name, ctx, opts, log);
      if (r.failure) {
        log(`[${name}] ${r.failure}`);
        exitCode = 1;
      }
      results.push(r);
      if (name === 'envoy' && r.failure) break;
    }
  } catch (err) {
    if (!interrupted) log(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    exitCode = 1;
  } finally {
    await cleanup();
  }
  if (results.length > 0) process.stdout.write(`\n${table(results, opts)}\n`);
  await writeFile(
    opts.json,
    `${JSON.stringify({ date: new Date().toISOString(), machine, options: opts, results }, null, 2)}\n`,
  );
  log(`results: ${opts.json}`);
  return exitCode;
}

process.exitCode = await main();
