// Reads a V8 .cpuprofile (node --cpu-prof) and lists where the time went: self time by function
// and by file, as a share of all samples, so a slow run points at the code to change.
import { readFile } from 'node:fs/promises';
import { PROJECT_ROOT } from '../../lib/tools.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface HotSpot {
  where: string;
  percent: number;
}

export interface ProfileSummary {
  totalMs: number;
  /** Share of samples the process was idle (waiting on I/O), excluded from nothing. */
  idlePercent: number;
  byFunction: HotSpot[];
  byFile: HotSpot[];
}

function shortUrl(url: string): string {
  if (!url) return '(native)';
  const path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('/node_modules/');
  if (nm !== -1) return path.slice(nm + '/node_modules/'.length);
  if (path.startsWith(`${PROJECT_ROOT}/`)) return path.slice(PROJECT_ROOT.length + 1);
  return path;
}

function top(map: Map<string, number>, total: number, n: number): HotSpot[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([where, us]) => ({ where, percent: (100 * us) / total }));
}

export async function summariseProfile(file: string, topN = 15): Promise<ProfileSummary> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  let total = 0;
  let idle = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    const frame = nodes.get(id)?.callFrame;
    if (!frame) return;
    total += us;
    if (frame.functionName === '(idle)') {
      idle += us;
      return;
    }
    const file = shortUrl(frame.url);
    const fn = `${file}:${frame.functionName || '(anonymous)'}:${frame.lineNumber + 1}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
    byFile.set(file, (byFile.get(file) ?? 0) + us);
  });
  const safeTotal = total || 1;
  return {
    totalMs: total / 1000,
    idlePercent: (100 * idle) / safeTotal,
    byFunction: top(byFunction, safeTotal, topN),
    byFile: top(byFile, safeTotal, topN),
  };
}
