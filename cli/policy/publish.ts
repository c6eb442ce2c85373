// `chaperone policy publish|revisions|rollback`: the fleet's policy revisions in the shared store.
// Publishing writes the store directly — as `policy replay` reads it — rather than going through a
// node's HTTP API: the CI job that publishes needs no running node and no user token, only the
// database role and (for a signed fleet) the signing key. Trust does not rest on the database: every
// node verifies the signature before it serves a revision, so a row written without the key is refused.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { hostname, tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { decodeProtectedHeader } from 'jose';
import pino from 'pino';
import { type AuditStore, openAuditStore } from '../../audit/store.ts';
import { readBundleArchive, writeBundleArchive } from '../../authz-server/policy/bundle-archive.ts';
import { resolveSigningKey } from '../../authz-server/policy/bundle-keys.ts';
import { bundleFromFiles, type PolicyBundle } from '../../authz-server/policy/bundle-reader.ts';
import { SIGNATURES_FILE, signBundleFiles } from '../../authz-server/policy/bundle-signing.ts';
import { buildWasmBundle, formatIssue } from '../../authz-server/policy/opa-runner.ts';
import { PolicyEngine } from '../../authz-server/policy/policy-engine.ts';
import { ChaperoneError } from '../../contracts/errors.ts';
import { PolicyRevisionStore } from '../../fleet/policy-revisions.ts';
import { SharedState } from '../../fleet/shared-state.ts';

export interface StoreOptions {
  store?: string;
  dataDir: string;
}

/** The PostgreSQL URL, or null for the embedded store at `dataDir` (which must exist). */
export function storeUrlOf(o: StoreOptions): string | null {
  if (o.store) {
    const url = o.store.startsWith('env:') ? process.env[o.store.slice(4)] : o.store;
    if (!url)
      throw new ChaperoneError('ERR_CONFIG_INVALID', `--store refers to ${o.store}, which is not set`);
    return url;
  }
  // Never a fresh embedded store by accident: publishing into it would reach no node.
  if (!existsSync(o.dataDir))
    throw new ChaperoneError(
      'ERR_CONFIG_INVALID',
      `no store: give --store postgres://… (or env:NAME), or --data-dir of a stopped gateway (${o.dataDir} does not exist)`,
    );
  return null;
}

/** `--store postgres://…|env:NAME`, else the embedded store of a stopped gateway (`--data-dir`). */
export function openStoreFrom(o: StoreOptions): Promise<AuditStore> {
  const url = storeUrlOf(o);
  return openAuditStore(url ? { url } : { dataDir: o.dataDir });
}

/** Runs `fn` with the revisions of the store named by `o`, migrated, then closes everything. */
export async function withRevisions<T>(
  o: StoreOptions,
  fn: (revisions: PolicyRevisionStore, store: AuditStore) => Promise<T>,
): Promise<T> {
  const store = await openStoreFrom(o);
  let state: SharedState | null = null;
  try {
    await store.migrate();
    const who = `${userInfo().username}@${hostname()} (chaperone policy)`;
    state = await SharedState.open(store.sql, who, pino({ level: 'silent' }));
    return await fn(new PolicyRevisionStore(state), store);
  } finally {
    await state?.close();
    await store.close();
  }
}

export interface PreparedBundle {
  bytes: Buffer;
  bundle: PolicyBundle;
  /** The key id the signature names, or null when unsigned. */
  signedBy: string | null;
}

export interface PrepareOptions {
  input: string;
  entrypoint: string;
  capabilities: string;
  signingKey?: string;
  signingAlg: string;
  keyId: string;
  scope?: string;
}

async function buildOrRead(o: PrepareOptions, tmp: string): Promise<Buffer> {
  const info = await stat(o.input).catch(() => null);
  if (!info) throw new ChaperoneError('ERR_BUNDLE_INVALID', `${o.input} does not exist`);
  if (!info.isDirectory()) return readFile(o.input);
  const built = await buildWasmBundle({
    dir: o.input,
    entrypoints: [o.entrypoint],
    out: join(tmp, 'bundle.tar.gz'),
    capabilities: o.capabilities,
  });
  if (!built.ok) {
    throw new ChaperoneError(
      'ERR_BUNDLE_INVALID',
      `policy build failed:\n  ${built.errors.map(formatIssue).join('\n  ')}`,
    );
  }
  return readFile(built.bundlePath);
}

function signatureKid(sigFile: Buffer | undefined): string | null {
  if (!sigFile) return null;
  try {
    const token = (JSON.parse(sigFile.toString('utf8')) as { signatures?: string[] }).signatures?.[0] ?? '';
    const kid = decodeProtectedHeader(token).kid;
    return typeof kid === 'string' && kid ? kid : 'signed';
  } catch {
    return 'signed';
  }
}

/**
 * The bundle to publish: a directory built with Chaperone's capabilities, or a built bundle; signed
 * here when a key is given (an existing signature — `opa sign`, `opa build --signing-key` — is kept
 * otherwise). It must load with the entrypoint the fleet evaluates, exactly as a node will load it.
 */
export async function preparePublish(o: PrepareOptions): Promise<PreparedBundle> {
  const tmp = await mkdtemp(join(tmpdir(), 'chaperone-publish-'));
  try {
    let bytes = await buildOrRead(o, tmp);
    let files = readBundleArchive(bytes, o.input);
    if (o.signingKey) {
      const key = resolveSigningKey({
        ref: o.signingKey,
        algorithm: o.signingAlg,
        keyid: o.keyId,
        ...(o.scope ? { scope: o.scope } : {}),
      });
      files = await signBundleFiles(files, key);
      bytes = writeBundleArchive(files);
    }
    const bundle = bundleFromFiles(files, bytes, o.input);
    await PolicyEngine.load(bundle, o.entrypoint);
    return { bytes, bundle, signedBy: signatureKid(files.get(SIGNATURES_FILE)) };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
