// The state directory holds what another local user must never read or change: the private signing
// key, the embedded database (approvals, revocations, the audit trail), the spool and the audit
// anchor. It is the running user's alone — the directory 0700, everything in it owner-only — whatever
// the umask or an earlier version left behind. Checked at every start: modes that are too wide are
// narrowed (and reported, so the operator learns they were open); a directory another user owns, or
// a shared one like /tmp, is refused, because no mode set by us would make it private.
import { chmod, lstat, mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ChaperoneError } from '../contracts/errors.ts';

export class StateDirError extends ChaperoneError {
  constructor(message: string) {
    super('ERR_STATE_DIR', message);
  }
}

/** Group and other permission bits: none may be set on anything in the state directory. */
const SHARED_BITS = 0o077;
const STICKY = 0o1000;

const currentUid = (): number | null => (typeof process.getuid === 'function' ? process.getuid() : null);

/**
 * Makes `dir` (created if missing) private to the current user: the directory 0700, every directory
 * below 0700 and every file below without group/other bits (0600 for a normal file). `only` limits the
 * walk to those entries of `dir` (Chaperone's own): a state directory that is also, say, a project
 * directory keeps its other files as they are — unreachable by other users through the 0700 directory
 * all the same. Symbolic links inside are left alone (not followed). Returns the paths whose mode was
 * narrowed; throws StateDirError when the directory cannot be made private (owned by another user, a
 * shared sticky directory such as /tmp, not a directory, or an entry whose mode cannot be changed).
 */
export async function securePrivateDir(dir: string, o: { only?: readonly string[] } = {}): Promise<string[]> {
  const uid = currentUid();
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const top = await stat(dir);
  if (!top.isDirectory()) throw new StateDirError(`state directory ${dir} is not a directory`);
  if (uid === null) return []; // no POSIX owners (Windows): nothing this check can say
  if (top.uid !== uid)
    throw new StateDirError(
      `state directory ${dir} belongs to uid ${top.uid}, not to this user (uid ${uid}): whoever owns it controls the keys and the audit trail; give Chaperone a directory of its own`,
    );
  if (top.mode & STICKY)
    throw new StateDirError(
      `state directory ${dir} is a shared directory (sticky bit, like /tmp): give Chaperone a directory of its own (the parent of audit.spool_dir)`,
    );
  const fixed: string[] = [];
  await narrow(dir, top.mode, true, fixed);
  await walk(dir, uid, fixed, o.only ? new Set(o.only) : null);
  return fixed;
}

async function narrow(path: string, mode: number, isDir: boolean, fixed: string[]): Promise<void> {
  if ((mode & SHARED_BITS) === 0) return;
  try {
    await chmod(path, isDir ? 0o700 : mode & 0o700);
  } catch (err) {
    throw new StateDirError(
      `${path} is open to other users (mode ${(mode & 0o777).toString(8)}) and its mode cannot be changed: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  fixed.push(path);
}

async function walk(
  dir: string,
  uid: number,
  fixed: string[],
  only: Set<string> | null = null,
): Promise<void> {
  for (const name of await readdir(dir)) {
    if (only && !only.has(name)) continue;
    const path = join(dir, name);
    const s = await lstat(path).catch(() => null); // gone meanwhile (a temporary file): nothing to fix
    if (!s || s.isSymbolicLink()) continue;
    if (s.uid !== uid && uid !== 0)
      throw new StateDirError(`${path} in the state directory belongs to uid ${s.uid}, not to this user`);
    await narrow(path, s.mode, s.isDirectory(), fixed);
    if (s.isDirectory()) await walk(path, uid, fixed);
  }
}

/**
 * Sets the process umask to 077 so every file created from now on — by Chaperone, by the embedded
 * database (which creates files at run time) and by child processes such as Envoy — is owner-only.
 * Returns the previous umask, or null where the umask cannot be set (a worker thread).
 */
export function useOwnerOnlyUmask(): number | null {
  try {
    return process.umask(0o077);
  } catch {
    return null;
  }
}
