// OPA-compatible bundle signatures. A signed bundle carries /.signatures.json: `{"signatures": [JWT]}`
// with exactly one compact JWS whose payload lists every file with its digest
// (`{"files": [{"name", "hash", "algorithm"}], "keyid"?, "scope"?}`; digests per bundle-hash.ts).
// Verification follows OPA's documented rules: the key is the configured `keyid`, else the JWT's
// `kid`, else the payload's `keyid`; the signature must verify with that key's algorithm; the scope
// must equal the configured one (else the key's); every file of the bundle, except /.signatures.json
// and `exclude_files`, must be listed with a matching digest, and every listed file must be present.
// JWS is jose's; nothing here trusts a header field to pick an algorithm.
import { CompactSign, compactVerify, decodeProtectedHeader, errors as joseErrors } from 'jose';
import { BundleSignatureError } from '../../contracts/errors.ts';
import type { BundleFiles } from './bundle-archive.ts';
import { DEFAULT_HASH, opaFileHash } from './bundle-hash.ts';
import type { BundleVerification, SigningKey, VerificationKey } from './bundle-keys.ts';

export const SIGNATURES_FILE = '/.signatures.json';

interface SignedFile {
  name: string;
  hash: string;
  algorithm: string;
}

interface SignaturePayload {
  files?: SignedFile[];
  keyid?: string;
  scope?: string;
}

/** filepath.Match patterns (what OPA's `exclude_files` uses): `*` and `?` stop at `/`, `[…]` classes. */
function globRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end === -1) re += '\\[';
      else {
        const body = pattern.slice(i + 1, end);
        re += body.startsWith('^') ? `[^/${body.slice(1)}]` : `[${body}]`;
        i = end;
      }
    } else if (c === '\\' && i + 1 < pattern.length) re += `\\${pattern[++i]}`;
    else re += c.replace(/[.+^${}()|\]]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

function readSignatures(files: BundleFiles): string {
  for (const path of files.keys()) {
    // OPA treats any path ending in "signatures.json" as the signatures file; so do we, by refusing it.
    if (path !== SIGNATURES_FILE && path.endsWith('signatures.json'))
      throw new BundleSignatureError(`bundle has a second signatures file ${path}`);
  }
  const raw = files.get(SIGNATURES_FILE);
  if (!raw)
    throw new BundleSignatureError(
      'bundle is not signed (no .signatures.json) and a verification key is configured',
    );
  let doc: { signatures?: unknown; plugin?: unknown };
  try {
    doc = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new BundleSignatureError('.signatures.json is not valid JSON');
  }
  if (doc.plugin !== undefined && doc.plugin !== '' && doc.plugin !== '_default')
    throw new BundleSignatureError(
      `.signatures.json: signature plugin ${JSON.stringify(doc.plugin)} is not supported`,
    );
  const list = Array.isArray(doc.signatures) ? doc.signatures : [];
  if (list.length !== 1 || typeof list[0] !== 'string')
    throw new BundleSignatureError(`.signatures.json: expected exactly one JWT, found ${list.length}`);
  return list[0];
}

function decodePayload(token: string): SignaturePayload {
  try {
    const part = token.split('.')[1] ?? '';
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as SignaturePayload;
  } catch {
    throw new BundleSignatureError('.signatures.json: the JWT payload is not JSON');
  }
}

function keyFor(token: string, payload: SignaturePayload, v: BundleVerification): VerificationKey {
  let kid: unknown;
  try {
    kid = decodeProtectedHeader(token).kid;
  } catch {
    throw new BundleSignatureError('.signatures.json: the JWT is malformed');
  }
  const id = v.keyid ?? (typeof kid === 'string' && kid ? kid : null) ?? (payload.keyid || null);
  if (!id)
    throw new BundleSignatureError(
      'bundle signature names no key (no kid) and policy.signing.keyid is not set',
    );
  const key = v.keys.get(id);
  if (!key)
    throw new BundleSignatureError(
      `bundle is signed with key "${id}", which is not a configured verification key`,
    );
  return key;
}

async function verifyJws(token: string, key: VerificationKey): Promise<void> {
  try {
    await compactVerify(token, key.key, { algorithms: [key.algorithm] });
  } catch (err) {
    const why =
      err instanceof joseErrors.JOSEAlgNotAllowed
        ? `it is not signed with ${key.algorithm}`
        : 'the signature does not verify (tampered, or another key)';
    throw new BundleSignatureError(`bundle signature refused by key "${key.id}": ${why}`, { cause: err });
  }
}

function checkFiles(files: BundleFiles, payload: SignaturePayload, excludeFiles: string[]): number {
  const signed = new Map<string, SignedFile>();
  for (const f of Array.isArray(payload.files) ? payload.files : []) {
    if (f && typeof f.name === 'string') signed.set(f.name, f);
  }
  const excluded = excludeFiles.map(globRegExp);
  let checked = 0;
  for (const [path, bytes] of files) {
    if (path === SIGNATURES_FILE) continue;
    const name = path.slice(1);
    const entry = signed.get(name);
    signed.delete(name);
    if (excluded.some((re) => re.test(name))) continue;
    if (!entry) throw new BundleSignatureError(`${name} is in the bundle but not covered by its signature`);
    if (!entry.algorithm) throw new BundleSignatureError(`${name}: the signature gives no hash algorithm`);
    if (opaFileHash(name, bytes, entry.algorithm) !== String(entry.hash).toLowerCase())
      throw new BundleSignatureError(`${name}: digest mismatch (the file was changed after signing)`);
    checked++;
  }
  if (signed.size > 0)
    throw new BundleSignatureError(
      `file(s) ${[...signed.keys()].join(', ')} are signed but missing from the bundle`,
    );
  return checked;
}

/** Checks the bundle's signature; resolves with the key that verified it, throws BundleSignatureError. */
export async function verifyBundleSignature(
  files: BundleFiles,
  v: BundleVerification,
): Promise<{ keyid: string; files: number }> {
  const token = readSignatures(files);
  const payload = decodePayload(token);
  const key = keyFor(token, payload, v);
  await verifyJws(token, key);
  const scope = v.scope ?? key.scope ?? '';
  if ((payload.scope ?? '') !== scope)
    throw new BundleSignatureError(
      `bundle signature scope ${JSON.stringify(payload.scope ?? '')} is not the expected ${JSON.stringify(scope)}`,
    );
  return { keyid: key.id, files: checkFiles(files, payload, v.excludeFiles) };
}

/** `files` with a fresh /.signatures.json over all of them, as `opa sign` would write it. */
export async function signBundleFiles(files: BundleFiles, k: SigningKey): Promise<BundleFiles> {
  const out: BundleFiles = new Map([...files].filter(([p]) => p !== SIGNATURES_FILE));
  const list: SignedFile[] = [...out].map(([path, bytes]) => ({
    name: path.slice(1),
    hash: opaFileHash(path.slice(1), bytes),
    algorithm: DEFAULT_HASH,
  }));
  const payload = { files: list, keyid: k.keyid, ...(k.scope ? { scope: k.scope } : {}) };
  const token = await new CompactSign(Buffer.from(JSON.stringify(payload)))
    .setProtectedHeader({ alg: k.algorithm, kid: k.keyid, typ: 'JWT' })
    .sign(k.key);
  out.set(SIGNATURES_FILE, Buffer.from(JSON.stringify({ signatures: [token], plugin: '_default' }, null, 1)));
  return out;
}
