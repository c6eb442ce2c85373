// The digest OPA's bundle signatures list for each file (OPA v1/bundle/hash.go, reproduced from its
// documented behaviour): plain files are hashed as bytes; structured files (data.json, data.yaml,
// .manifest, signatures.json — by base name) are parsed and hashed in a canonical form, so whitespace
// and key order do not matter: `{` key `:` value `,` … `}` with keys sorted, `[` … `]`, and every
// primitive as Go's encoding/json writes it. Numbers keep the text they were written with (OPA decodes
// with UseNumber), which is why the parse goes through lossless-json and not JSON.parse.
import { createHash, type Hash } from 'node:crypto';
import { isLosslessNumber, parse } from 'lossless-json';
import { BundleSignatureError } from '../../contracts/errors.ts';

/** OPA's names for the hash functions; MD5 and SHA-1 are refused (OPA accepts them). */
const HASHES: Readonly<Record<string, string>> = {
  'SHA-224': 'sha224',
  'SHA-256': 'sha256',
  'SHA-384': 'sha384',
  'SHA-512': 'sha512',
  'SHA-512-224': 'sha512-224',
  'SHA-512-256': 'sha512-256',
};

export const DEFAULT_HASH = 'SHA-256';

/** OPA's IsStructuredDoc: by base name (note: data.yml is not, data.yaml is). */
export function isStructuredDoc(path: string): boolean {
  const base = path.slice(path.lastIndexOf('/') + 1);
  return base === 'data.json' || base === 'data.yaml' || base === 'signatures.json' || base === '.manifest';
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** A string as Go's encoder writes it (HTML escaping off): U+2028/2029 escaped, lone surrogates → U+FFFD. */
function goString(s: string): string {
  return JSON.stringify(s.replace(LONE_SURROGATE, '\uFFFD'))
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** Go's sort.Strings order: by UTF-8 bytes (code points), not UTF-16 code units. */
function byCodePoint(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function walk(v: unknown, h: Hash): void {
  if (isLosslessNumber(v)) h.update((v as { value: string }).value);
  else if (Array.isArray(v)) {
    h.update('[');
    v.forEach((e, i) => {
      if (i > 0) h.update(',');
      walk(e, h);
    });
    h.update(']');
  } else if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    h.update('{');
    Object.keys(o)
      .sort(byCodePoint)
      .forEach((k, i) => {
        if (i > 0) h.update(',');
        h.update(goString(k));
        h.update(':');
        walk(o[k], h);
      });
    h.update('}');
  } else if (typeof v === 'string') h.update(goString(v));
  else h.update(JSON.stringify(v)); // true, false, null
}

/** The hex digest OPA records for the file at `path` (bundle-relative, no leading slash). */
export function opaFileHash(path: string, bytes: Buffer, algorithm = DEFAULT_HASH): string {
  const fn = HASHES[algorithm];
  if (!fn) {
    throw new BundleSignatureError(
      /^(MD5|SHA-1)$/.test(algorithm)
        ? `${path}: hash algorithm ${algorithm} is too weak to trust`
        : `${path}: unsupported hash algorithm ${JSON.stringify(algorithm)}`,
    );
  }
  const h = createHash(fn);
  if (!isStructuredDoc(path)) return h.update(bytes).digest('hex');
  if (path.endsWith('.yaml'))
    throw new BundleSignatureError(`${path}: signed YAML data files are not supported`);
  let value: unknown;
  try {
    value = parse(bytes.toString('utf8'));
  } catch (err) {
    throw new BundleSignatureError(`${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  walk(value, h);
  return h.digest('hex');
}
