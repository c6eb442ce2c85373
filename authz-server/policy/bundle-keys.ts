// Keys for bundle signatures, configured the way OPA configures them (`keys: {<id>: {algorithm, key,
// scope}}` plus the bundle's `signing: {keyid, scope, exclude_files}`): a PEM public key (or
// certificate) for RS*/PS*/ES*, a shared secret for HS*. Key material is a reference — `file:/path`,
// `env:NAME` — or, for public keys only, the PEM itself: a secret never sits in a config file.
import { createPrivateKey, createPublicKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { BundleSigningConfig } from '../../config/types.ts';
import { BundleSignatureError, ChaperoneError } from '../../contracts/errors.ts';

/** OPA's bundle signing algorithms (jwx names), all of which jose implements. */
export const BUNDLE_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'HS256',
  'HS384',
  'HS512',
] as const;

/** OPA's default when a key names no algorithm. */
export const DEFAULT_BUNDLE_ALGORITHM = 'RS256';

export interface VerificationKey {
  id: string;
  algorithm: string;
  key: KeyObject | Uint8Array;
  scope: string | null;
}

/** What a bundle must satisfy to be loaded, resolved from the configuration. */
export interface BundleVerification {
  keys: Map<string, VerificationKey>;
  /** The key to use whatever the signature says (OPA's `signing.keyid`); null: the JWT's `kid`. */
  keyid: string | null;
  /** The scope the signature must carry; null: the key's own scope (or none). */
  scope: string | null;
  /** Files not covered by the signature (OPA's `exclude_files`, filepath.Match patterns). */
  excludeFiles: string[];
}

export interface SigningKey {
  algorithm: string;
  key: KeyObject | Uint8Array;
  /** In the JWT's `kid` header and the (deprecated) `keyid` claim, as `opa sign` writes them. */
  keyid: string;
  /** The `scope` claim, when given. */
  scope?: string;
}

const isHmac = (alg: string) => alg.startsWith('HS');

function assertAlgorithm(alg: string, what: string): void {
  if (!(BUNDLE_ALGORITHMS as readonly string[]).includes(alg))
    throw new BundleSignatureError(
      `${what}: unsupported algorithm ${JSON.stringify(alg)} (one of ${BUNDLE_ALGORITHMS.join(', ')})`,
    );
}

/** The bytes a reference points at: `env:NAME`, `file:/path`, or (public keys) an inline PEM. */
export function readKeyMaterial(ref: string, what: string, allowInlinePem: boolean): Buffer {
  if (ref.startsWith('env:')) {
    const v = process.env[ref.slice(4)];
    if (v === undefined || v === '')
      throw new ChaperoneError('ERR_CONFIG_INVALID', `${what}: ${ref} is not set`);
    return Buffer.from(v, 'utf8');
  }
  if (ref.startsWith('file:')) {
    try {
      return readFileSync(ref.slice(5));
    } catch (err) {
      throw new ChaperoneError(
        'ERR_CONFIG_INVALID',
        `${what}: cannot read ${ref.slice(5)} (${(err as NodeJS.ErrnoException).code ?? 'EIO'})`,
      );
    }
  }
  if (allowInlinePem && ref.trimStart().startsWith('-----BEGIN ')) return Buffer.from(ref, 'utf8');
  throw new ChaperoneError(
    'ERR_CONFIG_INVALID',
    `${what}: must be env:NAME or file:/path${allowInlinePem ? ', or an inline PEM public key' : ''}`,
  );
}

function publicKeyOf(pem: Buffer, what: string): KeyObject {
  try {
    if (pem.includes('-----BEGIN CERTIFICATE-----')) return new X509Certificate(pem).publicKey;
    // A private key is accepted too, as OPA does: its public half verifies.
    return createPublicKey(pem);
  } catch (err) {
    throw new BundleSignatureError(`${what}: not a PEM public key, certificate or private key`, {
      cause: err,
    });
  }
}

/** The configured keys, resolved once (at start-up: a bad key stops the start, not a later reload). */
export function resolveVerification(cfg: BundleSigningConfig): BundleVerification {
  const keys = new Map<string, VerificationKey>();
  for (const [id, k] of Object.entries(cfg.keys)) {
    const what = `policy.signing.keys.${id}`;
    assertAlgorithm(k.algorithm, `${what}.algorithm`);
    const material = readKeyMaterial(k.key, `${what}.key`, !isHmac(k.algorithm));
    keys.set(id, {
      id,
      algorithm: k.algorithm,
      key: isHmac(k.algorithm) ? new Uint8Array(material) : publicKeyOf(material, `${what}.key`),
      scope: k.scope,
    });
  }
  if (keys.size === 0)
    throw new BundleSignatureError('policy.signing.keys: at least one verification key is needed');
  if (cfg.keyid !== null && !keys.has(cfg.keyid))
    throw new BundleSignatureError(`policy.signing.keyid: no key "${cfg.keyid}" in policy.signing.keys`);
  return { keys, keyid: cfg.keyid, scope: cfg.scope, excludeFiles: cfg.excludeFiles };
}

/** A signing key for `chaperone policy publish`: a PEM private key, or an HMAC secret. */
export function resolveSigningKey(o: {
  ref: string;
  algorithm: string;
  keyid: string;
  scope?: string;
}): SigningKey {
  assertAlgorithm(o.algorithm, '--signing-alg');
  const material = readKeyMaterial(o.ref, '--signing-key', false);
  let key: KeyObject | Uint8Array;
  if (isHmac(o.algorithm)) key = new Uint8Array(material);
  else {
    try {
      key = createPrivateKey(material);
    } catch (err) {
      throw new BundleSignatureError('--signing-key: not a PEM private key', { cause: err });
    }
  }
  return { algorithm: o.algorithm, key, keyid: o.keyid, ...(o.scope ? { scope: o.scope } : {}) };
}
