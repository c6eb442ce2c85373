// Drives one ghz run against a Check server and reads its JSON report. ghz speaks gRPC from Go with
// its own connection handling, so both servers are loaded by the same client, independent of Node.
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ENVOY_PROTO_INCLUDE_DIRS, EXT_AUTHZ_PROTO } from '../../lib/envoy-proto.ts';
import { locateTool } from '../../lib/tools.ts';
import { spawnChild } from './processes.ts';

export interface LoadSettings {
  /** Seconds of measured load. */
  durationSec: number;
  concurrency: number;
  /** HTTP/2 connections the workers share (Envoy keeps few connections to ext_authz). */
  connections: number;
  /** CPUs ghz is pinned to (taskset), or undefined. */
  cpus?: string;
}

export interface LoadResult {
  count: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Calls that failed at the gRPC level (not denies: a deny is a successful Check). */
  errors: number;
  errorKinds: Record<string, number>;
}

interface GhzReport {
  count: number;
  rps: number;
  latencyDistribution: { percentage: number; latency: number }[] | null;
  statusCodeDistribution: Record<string, number> | null;
  errorDistribution: Record<string, number> | null;
}

const NS_PER_MS = 1e6;

function percentile(report: GhzReport, p: number): number {
  const hit = report.latencyDistribution?.find((d) => d.percentage === p);
  if (!hit) throw new Error(`ghz report has no p${p}`);
  return hit.latency / NS_PER_MS;
}

/** Runs ghz with the request in `dataFile` against `address`; rejects when ghz itself fails. */
export async function runGhz(
  address: string,
  dataFile: string,
  settings: LoadSettings,
  workDir: string,
): Promise<LoadResult> {
  const ghz = locateTool('ghz');
  const out = join(workDir, `ghz-${process.hrtime.bigint()}.json`);
  const proto = join(ENVOY_PROTO_INCLUDE_DIRS[0]!, EXT_AUTHZ_PROTO);
  const args = [
    '--insecure',
    `--proto=${proto}`,
    `--import-paths=${ENVOY_PROTO_INCLUDE_DIRS.join(',')}`,
    '--call=envoy.service.auth.v3.Authorization.Check',
    `--data-file=${dataFile}`,
    `--concurrency=${settings.concurrency}`,
    `--connections=${settings.connections}`,
    `--duration=${settings.durationSec}s`,
    // Calls in flight when the duration ends are left out instead of counted as cancelled errors.
    '--duration-stop=ignore',
    '--timeout=5s',
    '--format=json',
    `--output=${out}`,
    address,
  ];
  const child = spawnChild('ghz', ghz, args, settings.cpus ? { cpus: settings.cpus } : {});
  const code = await child.exited;
  if (code !== 0) throw new Error(`ghz exited with ${code}:\n${child.tail()}`);
  const report = JSON.parse(await readFile(out, 'utf8')) as GhzReport;
  await rm(out, { force: true });
  const errorKinds = report.errorDistribution ?? {};
  const statuses = report.statusCodeDistribution ?? {};
  const errors = Object.entries(statuses).reduce((n, [status, k]) => (status === 'OK' ? n : n + k), 0);
  return {
    count: report.count,
    rps: report.rps,
    p50Ms: percentile(report, 50),
    p99Ms: percentile(report, 99),
    errors,
    errorKinds,
  };
}
