// Shared helpers for host builtins: how Rego values cross the opa-wasm boundary. Arguments arrive as
// JSON (sets as arrays, numbers as JS doubles); results leave through JSON.stringify, except that an
// ArrayBuffer is handed to the module's JSON parser verbatim, which keeps integers beyond 2^53 exact.
import { ChaperoneError } from '../../../contracts/errors.ts';

/**
 * A builtin's failure. OPA (non-strict) turns a builtin error into an undefined expression; host
 * builtins mirror that by returning `undefined` (opa-wasm passes a null pointer back, which the
 * compiled policy treats as undefined). This class marks the few cases where we cannot reproduce
 * OPA's result: it is thrown, so the whole evaluation aborts and the engine denies (fail closed).
 */
export class HostBuiltinError extends ChaperoneError {
  constructor(
    readonly builtin: string,
    detail: string,
  ) {
    super('ERR_BUILTIN', `${builtin}: ${detail}`);
  }
}

/** JSON text that opa-wasm parses inside the module instead of going through JSON.stringify. */
export function rawJson(text: string): ArrayBuffer {
  const bytes = new TextEncoder().encode(text);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/** An integer result, exact even beyond Number.MAX_SAFE_INTEGER (nanosecond timestamps are ~2^60). */
export function exactInteger(value: bigint): number | ArrayBuffer {
  const asNumber = Number(value);
  return Number.isSafeInteger(asNumber) ? asNumber : rawJson(value.toString());
}

export function isString(v: unknown): v is string {
  return typeof v === 'string';
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Go strings are bytes; ours are UTF-16. Inputs are always valid Unicode (they came through JSON). */
export function utf8(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}

/**
 * Bytes back to a Rego string. Go keeps invalid UTF-8 bytes in a string, but JSON cannot carry them:
 * OPA's JSON output replaces each invalid byte with U+FFFD (Go's utf8.DecodeRune rule, one per byte),
 * which is what this does too — WHATWG decoders would merge some runs, so we decode by hand.
 */
export function bytesToString(b: Uint8Array): string {
  let out = '';
  let i = 0;
  while (i < b.length) {
    const c0 = b[i]!;
    if (c0 < 0x80) {
      out += String.fromCharCode(c0);
      i++;
      continue;
    }
    const cp = decodeMultiByte(b, i, c0);
    if (cp === undefined) {
      out += '\uFFFD';
      i++;
    } else {
      out += String.fromCodePoint(cp.codePoint);
      i += cp.size;
    }
  }
  return out;
}

function decodeMultiByte(
  b: Uint8Array,
  i: number,
  c0: number,
): { codePoint: number; size: number } | undefined {
  const cont = (k: number, lo = 0x80, hi = 0xbf): number | undefined => {
    const c = b[i + k];
    return c !== undefined && c >= lo && c <= hi ? c & 0x3f : undefined;
  };
  if (c0 >= 0xc2 && c0 <= 0xdf) {
    const c1 = cont(1);
    return c1 === undefined ? undefined : { codePoint: ((c0 & 0x1f) << 6) | c1, size: 2 };
  }
  if (c0 >= 0xe0 && c0 <= 0xef) {
    // Second-byte ranges exclude overlong forms (E0) and UTF-16 surrogates (ED).
    const c1 = cont(1, c0 === 0xe0 ? 0xa0 : 0x80, c0 === 0xed ? 0x9f : 0xbf);
    const c2 = c1 === undefined ? undefined : cont(2);
    if (c1 === undefined || c2 === undefined) return undefined;
    return { codePoint: ((c0 & 0x0f) << 12) | (c1 << 6) | c2, size: 3 };
  }
  if (c0 >= 0xf0 && c0 <= 0xf4) {
    const c1 = cont(1, c0 === 0xf0 ? 0x90 : 0x80, c0 === 0xf4 ? 0x8f : 0xbf);
    const c2 = c1 === undefined ? undefined : cont(2);
    const c3 = c2 === undefined ? undefined : cont(3);
    if (c1 === undefined || c2 === undefined || c3 === undefined) return undefined;
    return { codePoint: ((c0 & 0x07) << 18) | (c1 << 12) | (c2 << 6) | c3, size: 4 };
  }
  return undefined;
}
