// A second local user for the data-plane attacker tests, and a way to run the probe
// (test/support/dataplane-probe.mjs) as that user or as any process. Creating the user needs root
// (`useradd`); where the suite does not run as root, `otherLocalUser` returns null and the tests that
// need one say so.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../lib/tools.ts';

export interface LocalUser {
  name: string;
  uid: number;
  gid: number;
}

const PROBE = join(PROJECT_ROOT, 'test/support/dataplane-probe.mjs');
const NAME = 'chaperone-probe';

function exec(file: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(file, args, { timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

/** The unprivileged user `chaperone-probe` (created, without a home, if missing), or null when not root. */
export async function otherLocalUser(): Promise<LocalUser | null> {
  if (process.getuid?.() !== 0) return null;
  let id = await exec('id', ['-u', NAME]);
  if (id.code !== 0) {
    await exec('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', NAME]);
    id = await exec('id', ['-u', NAME]);
    if (id.code !== 0) return null;
  }
  const gid = await exec('id', ['-g', NAME]);
  return { name: NAME, uid: Number(id.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

export const NOT_ROOT_REASON = 'needs root to create and switch to a second local user';

/** Runs the probe (as `user` when given, else as this process) and returns the JSON line it printed. */
export async function probe(args: string[], user?: LocalUser): Promise<Record<string, unknown>> {
  const node = process.execPath;
  const res = user
    ? await exec('setpriv', [
        `--reuid=${user.uid}`,
        `--regid=${user.gid}`,
        '--clear-groups',
        '--',
        node,
        PROBE,
        ...args,
      ])
    : await exec(node, [PROBE, ...args]);
  const line = res.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    throw new Error(
      `probe ${args.join(' ')} printed no result (exit ${res.code}): ${res.stderr}${res.stdout}`,
    );
  }
}

/** The gRPC methods of the data-plane services, as the probe calls them (empty messages). */
export const DATA_PLANE_CALLS = {
  check: ['envoy.service.auth.v3.Authorization/Check', 'unary'],
  accessLog: ['envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs', 'client'],
  ads: ['envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources', 'bidi'],
  extProc: ['envoy.service.ext_proc.v3.ExternalProcessor/Process', 'bidi'],
} as const;
