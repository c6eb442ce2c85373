// Small signed and unsigned policy bundles for the policy-distribution tests: a policy directory whose
// answer names its version (data.fleet.version), keys written as PEM files, bundles built and signed by
// the real OPA CLI (`opa build -b -t wasm --signing-key`), and tampering done on the archive itself.
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readBundleArchive, writeBundleArchive } from '../../authz-server/policy/bundle-archive.ts';
import { locateTool, PROJECT_ROOT } from '../../lib/tools.ts';

const run = promisify(execFile);

export const FLEET_ENTRYPOINT = 'fleet/decision';
export const CAPABILITIES = join(PROJECT_ROOT, 'policies', 'capabilities.json');

/** A policy directory: allows everything but /blocked, with `reason` naming `version`. */
export async function writeFleetPolicy(
  dir: string,
  version: string,
  extraData: Record<string, unknown> = {},
) {
  await mkdir(join(dir, 'fleet'), { recursive: true });
  await writeFile(
    join(dir, 'fleet', 'policy.rego'),
    [
      'package fleet',
      '',
      'default decision := {"allowed": false, "reason": "blocked"}',
      '',
      'decision := {"allowed": true, "reason": sprintf("policy %s", [data.fleet.version])} if {',
      '\tinput.parsed_path[0] != "blocked"',
      '}',
      '',
    ].join('\n'),
  );
  await writeFile(join(dir, 'fleet', 'data.json'), JSON.stringify({ version, ...extraData }));
  return dir;
}

export interface KeyFiles {
  privatePem: string;
  publicPem: string;
}

export async function writeKeyPair(dir: string, kind: 'rsa' | 'ec', name: string = kind): Promise<KeyFiles> {
  const pair =
    kind === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const privatePem = join(dir, `${name}.key.pem`);
  const publicPem = join(dir, `${name}.pub.pem`);
  await writeFile(privatePem, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await writeFile(publicPem, pair.publicKey.export({ type: 'spki', format: 'pem' }));
  return { privatePem, publicPem };
}

/** `opa build -b -t wasm` of `dir` into `out`, signed when `signing` is given (as a CI job would). */
export async function opaBuild(
  dir: string,
  out: string,
  signing?: { key: string; alg?: string; claimsFile?: string },
): Promise<string> {
  const args = [
    'build',
    '-b',
    '-t',
    'wasm',
    '-e',
    FLEET_ENTRYPOINT,
    '--capabilities',
    CAPABILITIES,
    '-o',
    out,
  ];
  if (signing) {
    args.push('--signing-key', signing.key, '--signing-alg', signing.alg ?? 'RS256');
    if (signing.claimsFile) args.push('--claims-file', signing.claimsFile);
  }
  await run(locateTool('opa'), [...args, '.'], { cwd: dir, env: { ...process.env, OPA_TELEMETRY: 'false' } });
  return out;
}

/** `opa build -b <bundle> --verification-key …`: does OPA itself accept the signed bundle? */
export async function opaVerifies(bundle: string, publicPem: string, alg = 'RS256'): Promise<boolean> {
  try {
    await run(locateTool('opa'), [
      'build',
      '-b',
      bundle,
      '--verification-key',
      publicPem,
      '--signing-alg',
      alg,
      '-o',
      `${bundle}.verified.tar.gz`,
    ]);
    return true;
  } catch {
    return false;
  }
}

/** The bundle with one file changed, everything else (the signature included) as it was. */
export async function tamper(bundle: string, out: string, path: string, change: (b: Buffer) => Buffer) {
  const files = readBundleArchive(await readFile(bundle));
  const before = files.get(path);
  if (!before) throw new Error(`${bundle} has no ${path}`);
  files.set(path, change(before));
  await writeFile(out, writeBundleArchive(files));
  return out;
}
