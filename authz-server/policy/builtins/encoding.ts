// Encoding builtins (hex.*, urlquery.*, base64url.encode_no_pad) with Go's exact rules: Go's
// url.QueryEscape/QueryUnescape/ParseQuery/Values.Encode, encoding/hex and encoding/base64, which is
// what OPA calls. Every failure returns undefined, as OPA's non-strict evaluation does.
import { bytesToString, isObject, isString, utf8 } from './values.ts';

const HEX = '0123456789ABCDEF';

function isHexDigit(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

function isUnreservedQueryByte(c: number): boolean {
  return (
    (c >= 0x30 && c <= 0x39) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    c === 0x2d || // -
    c === 0x5f || // _
    c === 0x2e || // .
    c === 0x7e // ~
  );
}

/** Go url.QueryEscape: everything but [A-Za-z0-9-_.~] is %XX (upper case), space is '+'. */
export function queryEscape(s: string): string {
  let out = '';
  for (const c of utf8(s)) {
    if (isUnreservedQueryByte(c)) out += String.fromCharCode(c);
    else if (c === 0x20) out += '+';
    else out += '%' + HEX[c >> 4] + HEX[c & 15];
  }
  return out;
}

/** Go url.QueryUnescape; undefined where Go returns an EscapeError. */
export function queryUnescape(s: string): string | undefined {
  const bytes = utf8(s);
  const out: number[] = [];
  for (let i = 0; i < bytes.length; ) {
    const c = bytes[i]!;
    if (c === 0x25) {
      if (i + 2 >= bytes.length || !isHexDigit(bytes[i + 1]!) || !isHexDigit(bytes[i + 2]!)) return undefined;
      out.push(Number.parseInt(String.fromCharCode(bytes[i + 1]!, bytes[i + 2]!), 16));
      i += 3;
    } else {
      out.push(c === 0x2b ? 0x20 : c);
      i++;
    }
  }
  return bytesToString(Uint8Array.from(out));
}

/** Go's default cap on query parameters (net/url urlmaxqueryparams, Go ≥ 1.24). */
const MAX_QUERY_PARAMS = 10000;

/** Go url.ParseQuery: '&'-separated, ';' is an error, any bad escape makes the whole parse fail. */
export function parseQuery(query: string): Record<string, string[]> | undefined {
  if (query.split('&').length > MAX_QUERY_PARAMS) return undefined;
  const out: Record<string, string[]> = Object.create(null);
  let failed = false;
  for (const part of query.split('&')) {
    if (part.includes(';')) {
      failed = true;
      continue;
    }
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = queryUnescape(eq < 0 ? part : part.slice(0, eq));
    const value = queryUnescape(eq < 0 ? '' : part.slice(eq + 1));
    if (key === undefined || value === undefined) {
      failed = true;
      continue;
    }
    const values = out[key] ?? [];
    values.push(value);
    out[key] = values;
  }
  return failed ? undefined : out;
}

/** Compare like Go's string ordering: by UTF-8 bytes, which is code point order, not UTF-16 order. */
export function compareGoStrings(a: string, b: string): number {
  return Buffer.compare(utf8(a), utf8(b));
}

function urlqueryEncodeObject(obj: unknown): string | undefined {
  if (!isObject(obj)) return undefined;
  const pairs: string[] = [];
  for (const key of Object.keys(obj).sort(compareGoStrings)) {
    const v = obj[key];
    // Sets arrive as arrays: OPA sees a set here too (ast.JSON turns it into a sorted list).
    const values = isString(v) ? [v] : Array.isArray(v) ? v : undefined;
    if (values === undefined || !values.every(isString)) return undefined;
    for (const value of values) pairs.push(queryEscape(key) + '=' + queryEscape(value));
  }
  return pairs.join('&');
}

/** Go base64.URLEncoding after OPA's RFC 7515 padding fix-up; undefined on any decoding error. */
export function decodeBase64Url(input: string): Buffer | undefined {
  let s = input;
  if (!s.endsWith('=')) {
    const rem = utf8(s).length % 4;
    if (rem === 1) return undefined;
    if (rem === 2) s += '==';
    if (rem === 3) s += '=';
  }
  // Go's decoder skips CR and LF anywhere; everything else must be in the alphabet.
  s = s.replace(/[\r\n]/g, '');
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9_-]*(?:[A-Za-z0-9_-]{2}==|[A-Za-z0-9_-]{3}=)?$/.test(s))
    return undefined;
  return Buffer.from(s, 'base64url');
}

export const encodingBuiltins = {
  'hex.encode': (x: unknown) => (isString(x) ? utf8(x).toString('hex') : undefined),
  'hex.decode': (x: unknown) => {
    if (!isString(x) || x.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(x)) return undefined;
    return bytesToString(Buffer.from(x, 'hex'));
  },
  'urlquery.encode': (x: unknown) => (isString(x) ? queryEscape(x) : undefined),
  'urlquery.decode': (x: unknown) => (isString(x) ? queryUnescape(x) : undefined),
  'urlquery.encode_object': urlqueryEncodeObject,
  'urlquery.decode_object': (x: unknown) => (isString(x) ? parseQuery(x) : undefined),
  'base64url.encode_no_pad': (x: unknown) => (isString(x) ? utf8(x).toString('base64url') : undefined),
};
