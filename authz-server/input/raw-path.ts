// The canonical-path gate. The policy decides on `parsed_path`; the upstream acts on the raw path.
// Both must name the same resource, so any path an upstream could read differently from us is
// refused before the policy runs: dot segments, empty segments, encoded slashes and backslashes,
// path parameters (`;`), control characters, bad or double percent-encoding. No URL parser is used:
// one once read `//admin/x` as host `admin` and path `/x` (an OPA-Envoy policy bypass).

export type RawPathCheck = { ok: true; segments: string[] } | { ok: false; reason: string };

const SLASH = 0x2f;
const PERCENT = 0x25;

// Character classes of the raw path (ASCII). RFC 3986 `pchar` is allowed, minus `;`.
const C_OK = 0;
const C_PERCENT = 1;
const C_CONTROL = 2;
const C_BACKSLASH = 3;
const C_SEMICOLON = 4;
const C_FRAGMENT = 5;
const C_OTHER = 6;
const C_NON_ASCII = 7;

const CHAR_REASON: Record<number, string> = {
  [C_CONTROL]: 'control character in path',
  [C_BACKSLASH]: 'backslash in path',
  [C_SEMICOLON]: 'semicolon (path parameter) in path',
  [C_FRAGMENT]: 'fragment in path',
  [C_OTHER]: 'character not allowed in a path (must be percent-encoded)',
  [C_NON_ASCII]: 'non-ASCII character in path (must be percent-encoded)',
};

const CLASS = new Uint8Array(128).fill(C_OTHER);
for (let c = 0; c < 0x20; c++) CLASS[c] = C_CONTROL;
CLASS[0x7f] = C_CONTROL;
for (const ch of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@") {
  CLASS[ch.charCodeAt(0)] = C_OK;
}
CLASS[PERCENT] = C_PERCENT;
CLASS[0x5c] = C_BACKSLASH;
CLASS[0x3b] = C_SEMICOLON;
CLASS[0x23] = C_FRAGMENT;

// Percent-encoded bytes that are refused, with why. Unreserved letters, digits, '-', '.', '_' have
// one canonical form (unencoded, RFC 3986 §2.3); encoding them hides a name from any check on the
// raw path. '~' is spared: older clients encode it and it means nothing special anywhere.
const ESCAPE_REASON = new Map<number, string>([
  [0x2f, 'encoded slash (%2F) in path'],
  [0x5c, 'encoded backslash (%5C) in path'],
  [0x3b, 'encoded semicolon (%3B) in path'],
]);
for (let b = 0; b < 0x20; b++) ESCAPE_REASON.set(b, 'encoded control character in path');
ESCAPE_REASON.set(0x7f, 'encoded control character in path');
for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._') {
  ESCAPE_REASON.set(ch.charCodeAt(0), 'percent-encoded unreserved character in path');
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

function isDotSegment(decoded: string): boolean {
  return decoded === '.' || decoded === '..';
}

/** Validates and decodes one segment holding at least one '%'. */
function decodeSegment(seg: string): { ok: true; value: string } | { ok: false; reason: string } {
  const bytes: number[] = [];
  for (let i = 0; i < seg.length; i++) {
    if (seg.charCodeAt(i) !== PERCENT) continue;
    const hi = hexValue(seg.charCodeAt(i + 1));
    const lo = hexValue(seg.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) return { ok: false, reason: 'invalid percent-encoding in path' };
    bytes.push((hi << 4) | lo);
    i += 2;
  }
  let value: string;
  try {
    value = decodeURIComponent(seg);
  } catch {
    // Escapes that do not form UTF-8 (overlong forms such as %C0%AE included).
    return { ok: false, reason: 'invalid percent-encoding in path (not UTF-8)' };
  }
  // Reported first: "%2e%2e" is a traversal attempt, whatever else it is.
  if (isDotSegment(value)) return { ok: false, reason: 'dot segment in path' };
  for (const b of bytes) {
    const reason = ESCAPE_REASON.get(b);
    if (reason) return { ok: false, reason };
  }
  // "%252e" decodes to "%2e": an upstream that decodes twice would see something else than we do.
  for (let i = value.indexOf('%'); i !== -1; i = value.indexOf('%', i + 1)) {
    if (hexValue(value.charCodeAt(i + 1)) >= 0 && hexValue(value.charCodeAt(i + 2)) >= 0) {
      return { ok: false, reason: 'double percent-encoding in path' };
    }
  }
  return { ok: true, value };
}

/**
 * Checks that a raw request path (the part before '?') is canonical and splits it into
 * percent-decoded segments: "/" → [""], "/a/b" → ["a", "b"], "/a/" → ["a", ""] (a trailing slash
 * keeps its empty last segment, as in OPA-Envoy, so policies can tell "/a/" from "/a").
 * Pure; the reason is safe to show a client (it never quotes the path).
 */
export function checkRawPath(raw: string): RawPathCheck {
  if (raw.length === 0) return { ok: false, reason: 'path is empty' };
  if (raw.charCodeAt(0) !== SLASH) return { ok: false, reason: 'path must start with "/"' };
  const segments: string[] = [];
  let start = 1;
  let hasPercent = false;
  for (let i = 1; i <= raw.length; i++) {
    const c = i < raw.length ? raw.charCodeAt(i) : SLASH;
    if (c !== SLASH) {
      const cls = c < 128 ? CLASS[c] : C_NON_ASCII;
      if (cls === C_OK) continue;
      if (cls === C_PERCENT) {
        hasPercent = true;
        continue;
      }
      return { ok: false, reason: CHAR_REASON[cls] };
    }
    if (start === i) {
      // Only the last segment may be empty: "/" and "/a/" are fine, "//a" and "/a//b" are not.
      if (i !== raw.length) return { ok: false, reason: 'empty path segment ("//")' };
      segments.push('');
    } else {
      const seg = raw.slice(start, i);
      if (hasPercent) {
        const decoded = decodeSegment(seg);
        if (!decoded.ok) return decoded;
        segments.push(decoded.value);
      } else {
        if (isDotSegment(seg)) return { ok: false, reason: 'dot segment in path' };
        segments.push(seg);
      }
    }
    start = i + 1;
    hasPercent = false;
  }
  return { ok: true, segments };
}
