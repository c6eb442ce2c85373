// One fixed-rate, open-loop run of vegeta (`attack | report -type=json`): requests leave on schedule
// whether or not earlier ones have been answered, so an overloaded gateway shows up as latency,
// timeouts and error statuses rather than as a lower request rate.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { locateTool } from '../../lib/tools.ts';
import { spawnChild } from '../authz/processes.ts';

export interface RateResult {
  rate: number;
  requests: number;
  /** Achieved request rate (vegeta's `rate`): below the target when vegeta itself could not keep up. */
  sentPerSec: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Non-2xx answers plus requests without an answer (timeouts, connection errors: status 0). */
  errors: number;
  statusCodes: Record<string, number>;
  /** vegeta's distinct error strings (timeouts, resets), at most a few. */
  errorKinds: string[];
}

interface VegetaReport {
  requests: number;
  rate: number;
  latencies: Record<string, number>;
  status_codes: Record<string, number>;
  errors: string[] | null;
}

const NS_PER_MS = 1e6;

export interface AttackOptions {
  url: string;
  headers: Record<string, string>;
  rate: number;
  durationSec: number;
  /** Per-request timeout; an unanswered request counts as an error. */
  timeoutSec: number;
  workDir: string;
}

export async function attack(o: AttackOptions): Promise<RateResult> {
  const vegeta = locateTool('vegeta');
  const id = process.hrtime.bigint();
  const targets = join(o.workDir, `targets-${id}.txt`);
  const results = join(o.workDir, `results-${id}.bin`);
  const report = join(o.workDir, `report-${id}.json`);
  await writeFile(
    targets,
    `GET ${o.url}\n${Object.entries(o.headers)
      .map(([k, v]) => `${k}: ${v}`)
      .join('\n')}\n`,
  );
  try {
    const run = spawnChild('vegeta attack', vegeta, [
      'attack',
      `-targets=${targets}`,
      `-rate=${o.rate}/1s`,
      `-duration=${o.durationSec}s`,
      `-timeout=${o.timeoutSec}s`,
      `-output=${results}`,
    ]);
    const code = await run.exited;
    if (code !== 0) throw new Error(`vegeta attack exited with ${code}:\n${run.tail()}`);
    const rep = spawnChild('vegeta report', vegeta, ['report', '-type=json', `-output=${report}`, results]);
    const rcode = await rep.exited;
    if (rcode !== 0) throw new Error(`vegeta report exited with ${rcode}:\n${rep.tail()}`);
    const r = JSON.parse(await readFile(report, 'utf8')) as VegetaReport;
    const statusCodes = r.status_codes ?? {};
    const errors = Object.entries(statusCodes).reduce(
      (n, [status, count]) => (Number(status) >= 200 && Number(status) < 300 ? n : n + count),
      0,
    );
    return {
      rate: o.rate,
      requests: r.requests,
      sentPerSec: r.rate,
      p50Ms: (r.latencies['50th'] ?? 0) / NS_PER_MS,
      p90Ms: (r.latencies['90th'] ?? 0) / NS_PER_MS,
      p99Ms: (r.latencies['99th'] ?? 0) / NS_PER_MS,
      maxMs: (r.latencies['max'] ?? 0) / NS_PER_MS,
      errors,
      statusCodes,
      errorKinds: (r.errors ?? []).slice(0, 5),
    };
  } finally {
    await Promise.all([targets, results, report].map((f) => rm(f, { force: true })));
  }
}
