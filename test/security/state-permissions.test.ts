// State on disk belongs to the user running Chaperone alone. The real `chaperone up` starts under a
// permissive umask (022) on a state directory an earlier version left open (0755, a 0644 key file); once
// it is up, the directory is 0700 and nothing in it — the embedded database's files, the spool, the
// signing key, the anchor — has a group or other permission bit. Another local user (created here
// when the suite runs as root) can neither list, read nor write any of it. A state directory that
// cannot be made private — shared (sticky, like /tmp) or owned by another user — is refused at start.
import { execFile } from 'node:child_process';
import { chmod, chown, lstat, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  apiFetch,
  devGatewayYaml,
  devToken,
  type GatewayPorts,
  type GatewayProcess,
  startGatewayProcess,
} from '../support/gateway-process.ts';
import { startGatewayOnFreePorts } from '../support/gateway-retry.ts';
import { waitFor } from '../support/wait.ts';

const run = promisify(execFile);
const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;
const PROBE_USER = 'chaperone-probe';
/** Appended to a root-only test's title when it is skipped. */
const ROOT_ONLY = IS_ROOT ? '' : ' (skipped: not running as root, no second local user can be created)';

let root: string;
let stateDir: string;
let gw: GatewayProcess;
let umaskBefore: number;

/** `chaperone up` with its state directory (the parent of spool_dir) at `state`. */
const withStateDir = (state: string) => (p: Parameters<typeof devGatewayYaml>[0]) =>
  devGatewayYaml(p).replace('  spool_dir: spool\n', `  spool_dir: ${join(state, 'spool')}\n`);

/** Every entry under `dir` (not following links) with its permission bits. */
async function modes(dir: string): Promise<{ path: string; dir: boolean; mode: number }[]> {
  const out = [{ path: dir, dir: true, mode: (await lstat(dir)).mode & 0o7777 }];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const path = join(e.parentPath, e.name);
    const s = await lstat(path).catch(() => null);
    if (s && !s.isSymbolicLink()) out.push({ path, dir: s.isDirectory(), mode: s.mode & 0o7777 });
  }
  return out;
}

/** A start expected to fail on its state directory (tried again on fresh ports if those were taken). */
async function startRefused(yaml: (p: GatewayPorts) => string): Promise<GatewayProcess> {
  for (let attempt = 1; ; attempt++) {
    const gw = await startGatewayProcess({ yaml, wait: false });
    await gw.exited;
    if (attempt === 3 || !/already in use/i.test(gw.output())) return gw;
    await gw.cleanup();
  }
}

/** Runs `argv` as the probe user; resolves with its exit code and output. */
async function asOtherUser(argv: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run('runuser', ['-u', PROBE_USER, '--', ...argv]);
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: Number(e.code ?? 1), out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

beforeAll(async () => {
  umaskBefore = process.umask(0o022);
  // The place the state directory lives in is open to everyone (as /var/lib is), so only the state
  // directory's own modes stand between another user and its contents.
  root = await mkdtemp(join(tmpdir(), 'chaperone-state-'));
  await chmod(root, 0o755);
  stateDir = join(root, 'state');
  // What an earlier version (or a careless copy) left behind.
  await mkdir(stateDir, { mode: 0o755 });
  await chmod(stateDir, 0o755);
  await mkdir(join(stateDir, 'keys'), { mode: 0o755 });
  await chmod(join(stateDir, 'keys'), 0o755);
  await writeFile(join(stateDir, 'keys', 'trusted.jwks'), '{"keys": []}', { mode: 0o644 });
  // Not Chaperone's: left as it is, but out of other users' reach behind the 0700 directory.
  await writeFile(join(stateDir, 'notes.txt'), 'mine', { mode: 0o644 });
  if (IS_ROOT) {
    const exists = await run('id', ['-u', PROBE_USER]).then(
      () => true,
      () => false,
    );
    // Another run may create it at the same moment: what matters is that it exists afterwards.
    if (!exists)
      await run('useradd', [
        '--system',
        '--no-create-home',
        '--shell',
        '/usr/sbin/nologin',
        PROBE_USER,
      ]).catch(() => run('id', ['-u', PROBE_USER]));
  }
  gw = await startGatewayOnFreePorts({ yaml: withStateDir(stateDir) });
  // One decision through Envoy, so the spool, the store and the anchor all hold something.
  const { token } = (await (await fetch(`${gw.api}/dev/token?user=alice`)).json()) as { token: string };
  const carol = await devToken(gw, 'carol');
  await fetch(`${gw.egress}/demo/items`, { headers: { authorization: `Bearer ${token}` } });
  await waitFor(
    async () =>
      (
        (await (await apiFetch(gw, carol, `/status`)).json()) as {
          audit: { anchor: { decisions: number | null } };
        }
      ).audit.anchor.decisions === 1,
    { what: 'the first decision anchored' },
  );
}, 180_000);

afterAll(async () => {
  await gw?.cleanup();
  if (root) await rm(root, { recursive: true, force: true });
  process.umask(umaskBefore);
});

describe('the state directory', () => {
  it('is 0700 and holds nothing open to group or others, whatever the umask', async () => {
    const entries = await modes(stateDir);
    const names = entries.map((e) => e.path.slice(stateDir.length + 1));
    // The database, the spool, the signing key and the anchor are all there…
    for (const expected of ['audit/PG_VERSION', 'keys/agent-signing.json', 'spool', 'audit-checkpoint.json'])
      expect(names).toContain(expected);
    expect(names.some((n) => /^spool\/\d{10}\.jsonl$/.test(n))).toBe(true);
    expect(entries.length).toBeGreaterThan(100); // PGlite's own files among them
    // …and none is open (but the file that is not Chaperone's, left as it was).
    expect(
      entries.filter((e) => (e.mode & 0o077) !== 0).map((e) => `${e.path} ${e.mode.toString(8)}`),
    ).toEqual([`${join(stateDir, 'notes.txt')} 644`]);
    expect(entries[0]!.mode).toBe(0o700);
    // The start said what it narrowed.
    expect(gw.output()).toMatch(/state directory entries were open to other users; narrowed to owner-only/);
  });

  it.skipIf(!IS_ROOT)(`cannot be listed, read or written by another local user${ROOT_ONLY}`, async () => {
    // The probe works: the other user reads what is world-readable.
    expect((await asOtherUser(['cat', '/etc/hostname'])).code).toBe(0);
    expect((await asOtherUser(['ls', root])).code).toBe(0);
    const targets = [
      join(stateDir, 'keys', 'agent-signing.json'),
      join(stateDir, 'audit', 'PG_VERSION'),
      join(stateDir, 'audit-checkpoint.json'),
      join(stateDir, 'keys', 'trusted.jwks'),
      join(stateDir, 'notes.txt'),
    ];
    const listed = await asOtherUser(['ls', stateDir]);
    expect(listed.code).not.toBe(0);
    expect(listed.out).toMatch(/Permission denied/);
    for (const file of targets) {
      const read = await asOtherUser(['cat', file]);
      expect([file, read.code !== 0, /Permission denied/.test(read.out)]).toEqual([file, true, true]);
      const write = await asOtherUser(['sh', '-c', `echo x >> '${file}'`]);
      expect([file, write.code !== 0]).toEqual([file, true]);
    }
    const create = await asOtherUser(['touch', join(stateDir, 'spool', 'injected.jsonl')]);
    expect(create.code).not.toBe(0);
  });

  it('is refused at start when it is a shared directory (sticky bit, like /tmp)', async () => {
    const shared = join(root, 'shared');
    await mkdir(shared);
    await chmod(shared, 0o1777);
    const refused = await startRefused(withStateDir(shared));
    try {
      expect(await refused.exited).not.toBe(0);
      expect(refused.output()).toMatch(
        /state directory .*shared is a shared directory \(sticky bit, like \/tmp\)/,
      );
      expect((await lstat(shared)).mode & 0o7777).toBe(0o1777); // left as it was
    } finally {
      await refused.cleanup();
    }
  });

  it.skipIf(!IS_ROOT)(`is refused at start when another user owns it${ROOT_ONLY}`, async () => {
    const theirs = join(root, 'theirs');
    await mkdir(theirs, { mode: 0o700 });
    const { stdout } = await run('id', ['-u', PROBE_USER]);
    const uid = Number(stdout.trim());
    await chown(theirs, uid, uid);
    const refused = await startRefused(withStateDir(theirs));
    try {
      expect(await refused.exited).not.toBe(0);
      expect(refused.output()).toMatch(
        new RegExp(`state directory .*theirs belongs to uid ${uid}, not to this user`),
      );
    } finally {
      await refused.cleanup();
    }
  });
});
