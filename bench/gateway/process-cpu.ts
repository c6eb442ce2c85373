// CPU time a side spent, from /proc: the benchmark's figure that other work on a shared machine does
// not move (latency does). Each side's processes are a tree (Envoy, the authz server, `chaperone up` with
// the Envoy it starts and its worker threads); utime + stime of every live process in it is summed,
// split into Envoy and the rest.
import { readdir, readFile } from 'node:fs/promises';

export interface CpuSample {
  /** CPU milliseconds of the Envoy processes in the tree. */
  envoyMs: number;
  /** CPU milliseconds of every other process in the tree (authz server, gateway, OPA-Envoy). */
  serverMs: number;
  /**
   * The same, by thread name, for processes that are not Envoy: Node's `MainThread` (where Checks are
   * answered), `WorkerThread` (the embedded database), `libuv-worker` (file I/O), `V8Worker` (GC).
   */
  serverThreadsMs: Record<string, number>;
}

/** Clock ticks per second of /proc's utime and stime (USER_HZ: 100 on every Linux build in use). */
const TICKS_PER_SEC = 100;

interface ProcStat {
  pid: number;
  ppid: number;
  comm: string;
  cpuMs: number;
}

async function readStat(pid: number, task?: number): Promise<ProcStat | null> {
  const path = task === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${task}/stat`;
  const text = await readFile(path, 'utf8').catch(() => null);
  if (!text) return null;
  // comm is in parentheses and may contain spaces: the fields after it are space-separated.
  const close = text.lastIndexOf(')');
  const comm = text.slice(text.indexOf('(') + 1, close);
  const rest = text.slice(close + 2).split(' ');
  const ppid = Number(rest[1]);
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return { pid, ppid, comm, cpuMs: ((utime + stime) * 1000) / TICKS_PER_SEC };
}

/** The CPU time of the processes rooted at `roots` (and all their descendants) so far. */
export async function treeCpu(roots: readonly number[]): Promise<CpuSample> {
  const stats: ProcStat[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const s = await readStat(Number(entry));
    if (s) stats.push(s);
  }
  const children = new Map<number, ProcStat[]>();
  for (const s of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s]);
  const byPid = new Map(stats.map((s) => [s.pid, s]));
  const out: CpuSample = { envoyMs: 0, serverMs: 0, serverThreadsMs: {} };
  const seen = new Set<number>();
  const servers: number[] = [];
  const visit = (s: ProcStat | undefined) => {
    if (!s || seen.has(s.pid)) return;
    seen.add(s.pid);
    if (s.comm.startsWith('envoy')) out.envoyMs += s.cpuMs;
    else {
      out.serverMs += s.cpuMs;
      servers.push(s.pid);
    }
    for (const c of children.get(s.pid) ?? []) visit(c);
  };
  for (const r of roots) visit(byPid.get(r));
  for (const pid of servers) {
    const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
    for (const t of tasks) {
      const s = await readStat(pid, Number(t));
      if (s) out.serverThreadsMs[s.comm] = (out.serverThreadsMs[s.comm] ?? 0) + s.cpuMs;
    }
  }
  return out;
}

/** CPU milliseconds per 1,000 requests between two samples. */
export function cpuPer1k(before: CpuSample, after: CpuSample, requests: number) {
  const per = (a: number, b: number) => (requests > 0 ? ((b - a) * 1000) / requests : 0);
  const threads: Record<string, number> = {};
  for (const [name, ms] of Object.entries(after.serverThreadsMs)) {
    const v = per(before.serverThreadsMs[name] ?? 0, ms);
    if (v > 0) threads[name] = Math.round(v);
  }
  return {
    envoyMsPer1k: per(before.envoyMs, after.envoyMs),
    serverMsPer1k: per(before.serverMs, after.serverMs),
    serverThreadsMsPer1k: threads,
  };
}
