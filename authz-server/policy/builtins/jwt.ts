// JWT builtins: io.jwt.decode, io.jwt.decode_verify and io.jwt.verify_{rs,ps,es,hs}{256,384,512},
// io.jwt.verify_eddsa, following OPA's topdown/tokens.go step by step (which failures are errors,
// i.e. undefined, and which are a `false` verdict). opa-wasm calls builtins synchronously, so
// signatures are checked with node:crypto's synchronous verify/HMAC, not with jose's async API.
import {
  constants,
  createHmac,
  createPublicKey,
  verify as cryptoVerify,
  type KeyObject,
  timingSafeEqual,
  X509Certificate,
} from 'node:crypto';
import { ChaperoneError } from '../../../contracts/errors.ts';
import { decodeBase64Url } from './encoding.ts';
import { bytesToString, isObject, isString } from './values.ts';

type JsonObject = Record<string, unknown>;

interface Token {
  header: string;
  payload: string;
  signature: string;
}

/** A verification key: an asymmetric public key, or the bytes of a JWK `oct` key. */
interface VerificationKey {
  alg: string;
  kid: string;
  key: KeyObject | Buffer;
}

const TOKEN_ALGORITHMS = new Set([
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
  'EdDSA',
]);

/** OPA's builtin error for a token it cannot read: caught by `guarded`, the builtin's result is undefined. */
class JwtError extends ChaperoneError {
  constructor(why: string) {
    super('ERR_BUILTIN', why);
  }
}
const fail = (why: string): never => {
  throw new JwtError(why);
};

function splitToken(jwt: unknown): Token {
  if (!isString(jwt)) fail('token must be a string');
  const s = jwt as string;
  if (!s.includes('.')) fail('encoded JWT had no period separators');
  const parts = s.split('.');
  if (parts.length !== 3) fail(`encoded JWT must have 3 sections, found ${parts.length}`);
  return { header: parts[0]!, payload: parts[1]!, signature: parts[2]! };
}

function base64UrlBytes(part: string): Buffer {
  return decodeBase64Url(part) ?? fail('invalid base64url');
}

/** Go json.Unmarshal into an object (last duplicate key wins, as JSON.parse does). */
function jsonObject(text: string): JsonObject {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    fail('invalid JSON');
  }
  return isObject(v) ? v : fail('decoded JSON type was not an Object');
}

function decodeHeader(token: Token): JsonObject {
  const header = jsonObject(bytesToString(base64UrlBytes(token.header)));
  if ('enc' in header) fail('JWT is a JWE object, which is not supported');
  return header;
}

interface TokenHeader {
  alg: string;
  kid: string;
  cty: string;
  crit: Set<string>;
  unknown: string[];
}

/** OPA's parseTokenHeader: alg/kid/typ/cty must be strings, crit a non-empty list. */
function parseTokenHeader(header: JsonObject): TokenHeader {
  const out: TokenHeader = { alg: '', kid: '', cty: '', crit: new Set(), unknown: [] };
  for (const [k, v] of Object.entries(header)) {
    if (k === 'alg' || k === 'kid' || k === 'typ' || k === 'cty') {
      if (!isString(v)) fail(`${k}: must be a string`);
      if (k !== 'typ') out[k] = v as string;
    } else if (k === 'crit') {
      if (!Array.isArray(v)) fail('crit: must be a list');
      // OPA stops at the first non-string entry without reporting it.
      for (const e of v as unknown[]) {
        if (!isString(e)) break;
        out.crit.add(e);
      }
      if (out.crit.size === 0) fail('crit: must be a nonempty list');
    } else {
      out.unknown.push(k);
    }
  }
  return out;
}

function headerValid(h: TokenHeader): boolean {
  return h.alg !== '' && !h.unknown.some((u) => h.crit.has(u));
}

// Go's pem.Decode, for the one block we accept: text before the block is skipped, text after it
// (other than the END line's line break) is an error in OPA.
const PEM_BLOCK = /(?:^|\n)-----BEGIN ([^\n]*?)-----\r?\n([\s\S]*?)-----END \1-----[ \t]*(?:\r?\n)?/;

/** OPA's parseKeysFromCertOrJWK: a PEM certificate or public key, or a JWK / JWK set. */
export function parseKeys(certificate: string): VerificationKey[] {
  const pem = PEM_BLOCK.exec(certificate);
  if (pem) {
    const rest = certificate.slice(pem.index + pem[0].length);
    if (rest.length > 0) fail('extra data after a PEM certificate block');
    const block = pem[0].slice(pem[0].indexOf('-----BEGIN'));
    try {
      if (pem[1] === 'CERTIFICATE') return [{ alg: '', kid: '', key: new X509Certificate(block).publicKey }];
      if (pem[1] === 'PUBLIC KEY') return [{ alg: '', kid: '', key: createPublicKey(block) }];
    } catch {
      fail('failed to parse a PEM key');
    }
    fail('failed to extract a Key from the PEM certificate');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(certificate);
  } catch {
    fail('failed to parse a JWK key (set)');
  }
  if (!isObject(parsed)) fail('failed to parse a JWK key (set)');
  const set = parsed as JsonObject;
  const jwks = 'keys' in set ? set['keys'] : [set];
  if (!Array.isArray(jwks)) fail('failed to parse a JWK key set');
  const keys: VerificationKey[] = [];
  for (const jwk of jwks as unknown[]) {
    if (!isObject(jwk)) fail('failed to parse a JWK');
    const j = jwk as JsonObject;
    const alg = isString(j['alg']) ? j['alg'] : '';
    const kid = isString(j['kid']) ? j['kid'] : '';
    let key: KeyObject | Buffer;
    try {
      if (j['kty'] === 'oct')
        key = isString(j['k']) ? Buffer.from(j['k'], 'base64url') : fail('oct key without k');
      else key = createPublicKey({ key: j as import('node:crypto').JsonWebKey, format: 'jwk' });
    } catch {
      fail('failed to parse a JWK');
    }
    // Keys for algorithms OPA does not know are skipped, not an error.
    if (alg !== '' && !TOKEN_ALGORITHMS.has(alg)) continue;
    keys.push({ alg, kid, key: key! });
  }
  return keys;
}

// Policies pass the same key material and often the same token on every request (a service's JWKS,
// an agent's bearer token). Parsing keys and checking an RSA/ECDSA signature dominate the builtin's
// cost, and both are pure functions of their inputs, so both are memoised in bounded maps. Time-based
// checks (exp/nbf) are never cached: they run on every call.
const KEYS_CACHE_MAX = 64;
const SIGNATURE_CACHE_MAX = 10_000;
const keysCache = new Map<string, VerificationKey[]>();
const signatureCache = new Map<string, Map<string, boolean>>();

function remember<K, V>(map: Map<K, V>, key: K, value: V, max: number): V {
  if (map.size >= max) map.delete(map.keys().next().value as K); // oldest first (insertion order)
  map.set(key, value);
  return value;
}

/** parseKeys, memoised per key text (a parse error is thrown every time, never cached). */
export function parseKeysCached(certificate: string): VerificationKey[] {
  return (
    keysCache.get(certificate) ?? remember(keysCache, certificate, parseKeys(certificate), KEYS_CACHE_MAX)
  );
}

function verifiedCached(certificate: string, token: string, check: () => boolean): boolean {
  let perKey = signatureCache.get(certificate);
  if (!perKey) perKey = remember(signatureCache, certificate, new Map<string, boolean>(), KEYS_CACHE_MAX);
  const hit = perKey.get(token);
  if (hit !== undefined) return hit;
  return remember(perKey, token, check(), SIGNATURE_CACHE_MAX);
}

const HASH: Record<string, string> = { '256': 'sha256', '384': 'sha384', '512': 'sha512' };

function isKeyObject(k: KeyObject | Buffer): k is KeyObject {
  return !Buffer.isBuffer(k);
}

function hmacEqual(secret: Buffer, data: Buffer, sig: Buffer, hash: string): boolean {
  const mac = createHmac(hash, secret).update(data).digest();
  return mac.length === sig.length && timingSafeEqual(mac, sig);
}

/** DER for an ECDSA signature from r and s as Go's verifyES splits them: in half, any length. */
function ecdsaDer(signature: Buffer): Buffer {
  const n = Math.floor(signature.length / 2);
  const int = (b: Buffer): Buffer => {
    let i = 0;
    while (i < b.length && b[i] === 0) i++;
    let v = b.subarray(i);
    if (v.length === 0) v = Buffer.from([0]);
    if (v[0]! & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
    return Buffer.concat([Buffer.from([0x02]), derLength(v.length), v]);
  };
  const body = Buffer.concat([int(signature.subarray(0, n)), int(signature.subarray(n))]);
  return Buffer.concat([Buffer.from([0x30]), derLength(body.length), body]);
}

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/**
 * One signature check for `alg` (jwsbb.Verify in decode_verify, or the fixed algorithm of a
 * verify_* builtin). `lenientEs` is verify_es*'s split-in-half rule; jwsbb needs r||s of the
 * curve's exact size.
 */
function verifySignature(
  key: KeyObject | Buffer,
  alg: string,
  data: Buffer,
  sig: Buffer,
  lenientEs = false,
): boolean {
  const family = alg.slice(0, 2);
  const hash = HASH[alg.slice(2)];
  try {
    if (alg === 'EdDSA') {
      return isKeyObject(key) && key.asymmetricKeyType === 'ed25519' && cryptoVerify(null, data, key, sig);
    }
    if (hash === undefined) return false;
    if (family === 'HS') return Buffer.isBuffer(key) && hmacEqual(key, data, sig, hash);
    if (!isKeyObject(key)) return false;
    if (family === 'RS' && key.asymmetricKeyType === 'rsa') {
      return cryptoVerify(hash, data, { key, padding: constants.RSA_PKCS1_PADDING }, sig);
    }
    if (family === 'PS' && key.asymmetricKeyType === 'rsa') {
      return cryptoVerify(
        hash,
        data,
        { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO },
        sig,
      );
    }
    if (family === 'ES' && key.asymmetricKeyType === 'ec') {
      if (lenientEs) return cryptoVerify(hash, data, { key, dsaEncoding: 'der' }, ecdsaDer(sig));
      return cryptoVerify(hash, data, { key, dsaEncoding: 'ieee-p1363' }, sig);
    }
    return false;
  } catch {
    return false;
  }
}

function signingInput(token: Token): Buffer {
  return Buffer.from(token.header + '.' + token.payload, 'utf8');
}

/** Try the key whose kid matches the header's, else every key whose alg (if any) matches. */
function verifyWithKeys(
  keys: VerificationKey[],
  header: TokenHeader,
  check: (key: KeyObject | Buffer) => boolean,
): boolean {
  if (header.kid !== '') {
    const byKid = keys.find((k) => k.kid === header.kid);
    if (byKid) return check(byKid.key);
  }
  return keys.some((k) => (k.alg === '' || k.alg === header.alg) && check(k.key));
}

function jwtDecode(jwt: unknown): unknown[] {
  const token = splitToken(jwt);
  const header = decodeHeader(token);
  const payloadBytes = base64UrlBytes(token.payload);
  if ('cty' in header) {
    const cty = isString(header['cty']) ? header['cty'] : fail('cty: must be a string');
    if (cty === 'JWT') {
      // A nested token arrives quoted (jwt.io's habit): OPA trims quotes before decoding it.
      return jwtDecode(bytesToString(payloadBytes).replace(/^["']+|["']+$/g, ''));
    }
  }
  const payload = jsonObject(bytesToString(payloadBytes));
  return [header, payload, base64UrlBytes(token.signature).toString('hex')];
}

/** io.jwt.verify_<alg>: signature only, against a PEM/JWK(S) key or (HS*) a shared secret. */
function jwtVerify(alg: string, jwt: unknown, keyOrSecret: unknown): boolean {
  if (alg.startsWith('HS')) {
    if (!isString(jwt) || !isString(keyOrSecret)) fail('operands must be strings');
    const token = splitToken(jwt);
    return verifySignature(
      Buffer.from(keyOrSecret as string, 'utf8'),
      alg,
      signingInput(token),
      base64UrlBytes(token.signature),
    );
  }
  const token = splitToken(jwt);
  if (!isString(keyOrSecret)) fail('key must be a string');
  const keys = parseKeys(keyOrSecret as string);
  const signature = base64UrlBytes(token.signature);
  const header = parseTokenHeader(decodeHeader(token));
  const data = signingInput(token);
  return verifyWithKeys(keys, header, (key) => verifySignature(key, alg, data, signature, true));
}

interface Constraints {
  keys?: VerificationKey[];
  /** The key text the keys came from (the memo key). */
  cert?: string;
  secret: string;
  alg: string;
  iss: string;
  aud: string;
  timeNs: number;
}

function parseConstraints(o: JsonObject, nowNs: () => number): Constraints {
  const c: Constraints = { secret: '', alg: '', iss: '', aud: '', timeNs: -1 };
  for (const [name, value] of Object.entries(o)) {
    switch (name) {
      case 'cert':
        c.cert = isString(value) ? value : fail('cert constraint: must be a string');
        c.keys = parseKeysCached(c.cert);
        break;
      case 'secret':
      case 'alg':
      case 'iss':
      case 'aud':
        c[name] = isString(value) ? value : fail(`${name} constraint: must be a string`);
        break;
      case 'time':
        if (typeof value !== 'number' || value < 0)
          fail('token time constraint: must be a non-negative number');
        c.timeNs = value as number;
        break;
      default:
        fail(`unknown token validation constraint: ${name}`);
    }
  }
  if (c.timeNs === -1) c.timeNs = nowNs();
  const keySources = (c.keys !== undefined ? 1 : 0) + (c.secret !== '' ? 1 : 0);
  if (keySources !== 1) fail(keySources > 1 ? 'duplicate key constraints' : 'no key constraint');
  return c;
}

const UNVERIFIED: unknown[] = [false, {}, {}];

function jwtDecodeVerify(jwt: unknown, constraintsArg: unknown, nowNs: () => number): unknown[] {
  if (!isObject(constraintsArg)) fail('constraints must be an object');
  const c = parseConstraints(constraintsArg as JsonObject, nowNs);
  let current: unknown = jwt;
  let token: Token;
  let header: JsonObject;
  let payloadBytes: Buffer;
  for (;;) {
    token = splitToken(current);
    header = decodeHeader(token);
    const h = parseTokenHeader(header);
    if (!headerValid(h)) return UNVERIFIED;
    if (c.alg !== '' && c.alg !== h.alg) return UNVERIFIED;
    const signature = base64UrlBytes(token.signature);
    const data = signingInput(token);
    const keys = c.keys;
    const verified =
      keys !== undefined && c.cert !== undefined
        ? verifiedCached(c.cert, current as string, () =>
            verifyWithKeys(keys, h, (key) => verifySignature(key, h.alg, data, signature)),
          )
        : verifySignature(Buffer.from(c.secret, 'utf8'), h.alg, data, signature);
    if (!verified) return UNVERIFIED;
    payloadBytes = base64UrlBytes(token.payload);
    if (h.cty.toLowerCase() === 'jwt') {
      current = bytesToString(payloadBytes); // nested token: verify the inner one with the same constraints
      continue;
    }
    break;
  }
  const payload = jsonObject(bytesToString(payloadBytes));
  if (c.iss !== '') {
    if (!('iss' in payload)) return UNVERIFIED;
    if (!isString(payload['iss'])) fail('iss must be a string');
    if (payload['iss'] !== c.iss) return UNVERIFIED;
  }
  if ('aud' in payload) {
    const aud = payload['aud'];
    const ok = isString(aud)
      ? aud === c.aud
      : Array.isArray(aud) && aud.some((a) => isString(a) && a === c.aud);
    if (!ok) return UNVERIFIED;
  } else if (c.aud !== '') {
    return UNVERIFIED;
  }
  const nowSeconds = c.timeNs / 1e9;
  if ('exp' in payload) {
    const exp = payload['exp'];
    if (typeof exp !== 'number') fail('exp value must be a number');
    if (nowSeconds >= (exp as number)) return UNVERIFIED;
  }
  if ('nbf' in payload) {
    const nbf = payload['nbf'];
    if (typeof nbf !== 'number') fail('nbf value must be a number');
    if (nowSeconds < (nbf as number)) return UNVERIFIED;
  }
  return [true, header, payload];
}

/** Run a builtin body: a JwtError (OPA's builtin error) becomes undefined. */
function orUndefined<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (err instanceof JwtError) return undefined;
    throw err;
  }
}

export function createJwtBuiltins(nowNs: () => number) {
  const verifiers: Record<string, (jwt: unknown, key: unknown) => boolean | undefined> = {};
  for (const family of ['rs', 'ps', 'es', 'hs']) {
    for (const bits of ['256', '384', '512']) {
      const alg = family.toUpperCase() + bits;
      verifiers[`io.jwt.verify_${family}${bits}`] = (jwt, key) => orUndefined(() => jwtVerify(alg, jwt, key));
    }
  }
  verifiers['io.jwt.verify_eddsa'] = (jwt, key) => orUndefined(() => jwtVerify('EdDSA', jwt, key));
  return {
    'io.jwt.decode': (jwt: unknown) => orUndefined(() => jwtDecode(jwt)),
    'io.jwt.decode_verify': (jwt: unknown, constraints: unknown) =>
      orUndefined(() => jwtDecodeVerify(jwt, constraints, nowNs)),
    ...verifiers,
  };
}
