// The previous run's Envoy, found and stopped. `chaperone up` records the Envoy it starts (pid, the
// kernel's start time for that pid, its bootstrap path and base id); if the gateway dies without
// stopping it (SIGKILL, OOM) and the parent-death signal did not reach it, the next start finds that
// record and stops the process — only after checking, through /proc, that the pid still is that Envoy
// (same start time, same `-c <bootstrap>` and `--base-id`), never a process that reused the pid.
import { readFile, rm, writeFile } from 'node:fs/promises';

export interface EnvoyRecord {
  pid: number;
  /** /proc/<pid>/stat field 22: clock ticks after boot; a reused pid has another. */
  startTime: string;
  bootstrapPath: string;
  baseId: number;
}

async function procStat(pid: number): Promise<{ state: string; startTime: string } | null> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (text === null) return null;
  // The command name is in parentheses and may hold spaces: the fields after the last ')' are fixed.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '', startTime: fields[19] ?? '' };
}

async function cmdline(pid: number): Promise<string[]> {
  const text = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return text.split('\0').filter((s) => s !== '');
}

/** Alive and not a zombie (a killed orphan stays a zombie until init reaps it; its ports are free). */
async function running(pid: number): Promise<boolean> {
  const s = await procStat(pid);
  return s !== null && s.state !== 'Z' && s.state !== 'X';
}

/** The record for a process we just started, or null where /proc is not available. */
export async function recordOf(
  pid: number,
  bootstrapPath: string,
  baseId: number,
): Promise<EnvoyRecord | null> {
  const s = await procStat(pid);
  return s ? { pid, startTime: s.startTime, bootstrapPath, baseId } : null;
}

export async function writeEnvoyRecord(pidFile: string, r: EnvoyRecord): Promise<void> {
  await writeFile(pidFile, `${JSON.stringify(r)}\n`, { mode: 0o600 });
}

export async function removeEnvoyRecord(pidFile: string): Promise<void> {
  await rm(pidFile, { force: true });
}

/** Is `pid` still the Envoy `r` describes? */
export async function isRecordedEnvoy(r: EnvoyRecord): Promise<boolean> {
  const s = await procStat(r.pid);
  if (!s || s.state === 'Z' || s.startTime !== r.startTime) return false;
  const args = await cmdline(r.pid);
  const after = (flag: string) => args[args.indexOf(flag) + 1];
  return (
    /(^|\/)envoy$/.test(args[0] ?? '') &&
    after('-c') === r.bootstrapPath &&
    after('--base-id') === String(r.baseId)
  );
}

async function until(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return cond();
}

/**
 * Stops the Envoy a previous run recorded in `pidFile`, if it still runs (SIGTERM, SIGKILL after 5 s),
 * and removes the record. Returns the pid stopped, or null (no record, or the pid is not that Envoy).
 */
export async function reapRecordedEnvoy(pidFile: string): Promise<number | null> {
  const text = await readFile(pidFile, 'utf8').catch(() => null);
  if (text === null) return null;
  let r: EnvoyRecord;
  try {
    r = JSON.parse(text) as EnvoyRecord;
  } catch {
    await removeEnvoyRecord(pidFile);
    return null;
  }
  if (!Number.isInteger(r.pid) || r.pid <= 1 || !(await isRecordedEnvoy(r))) {
    await removeEnvoyRecord(pidFile);
    return null;
  }
  process.kill(r.pid, 'SIGTERM');
  if (!(await until(async () => !(await running(r.pid)), 5000))) {
    process.kill(r.pid, 'SIGKILL');
    await until(async () => !(await running(r.pid)), 5000);
  }
  await removeEnvoyRecord(pidFile);
  return r.pid;
}
