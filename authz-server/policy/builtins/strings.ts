// String and regex builtins: strings.any_prefix_match/any_suffix_match and regex.replace. Go's regexp
// is RE2; JavaScript's RegExp is not (lookarounds, backreferences, `.` vs `\r`, `\s`, ReplaceAll's
// empty-match rule), so regex.replace runs Google's RE2 (re2-wasm) and re-implements Go's
// ReplaceAllString loop and `$name` template expansion on top of it.
import { RE2 } from 're2-wasm';
import { isString } from './values.ts';

/** A string or a collection of strings (sets arrive as arrays); undefined on any other shape. */
function stringOrStrings(v: unknown): string[] | undefined {
  if (isString(v)) return [v];
  if (Array.isArray(v) && v.every(isString)) return v;
  return undefined;
}

function anyAffixMatch(search: unknown, base: unknown, suffix: boolean): boolean | undefined {
  const strs = stringOrStrings(search);
  const bases = stringOrStrings(base);
  if (strs === undefined || bases === undefined) return undefined;
  return strs.some((s) => bases.some((b) => (suffix ? s.endsWith(b) : s.startsWith(b))));
}

// re2-wasm accepts some JavaScript-only escapes (\uXXXX, \cX) and RE2-only \C that Go rejects.
function hasEscapeGoRejects(pattern: string): boolean {
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === '\\') {
      const next = pattern[i + 1];
      if (next === 'u' || next === 'c' || next === 'C') return true;
      i++;
    }
  }
  return false;
}

const REGEX_CACHE_MAX = 256;
// Compiled RE2 objects live in wasm memory and must be freed explicitly: keep a small LRU.
const regexCache = new Map<string, RE2 | null>();

function compileGoRegex(pattern: string): RE2 | null {
  const cached = regexCache.get(pattern);
  if (cached !== undefined) {
    regexCache.delete(pattern);
    regexCache.set(pattern, cached);
    return cached;
  }
  let re: RE2 | null = null;
  if (!hasEscapeGoRejects(pattern)) {
    try {
      re = new RE2(pattern, 'gu');
    } catch {
      re = null; // invalid RE2 syntax: OPA's regexp.Compile fails too
    }
  }
  regexCache.set(pattern, re);
  if (regexCache.size > REGEX_CACHE_MAX) {
    const [oldestKey, oldest] = regexCache.entries().next().value as [string, RE2 | null];
    regexCache.delete(oldestKey);
    (oldest as unknown as { wrapper?: { delete?: () => void } } | null)?.wrapper?.delete?.();
  }
  return re;
}

const NAME_CHAR = /[\p{L}\p{Nd}_]/u;

/** Go regexp.Expand: `$1`, `${1}`, `$name`, `${name}`, `$$`; unknown or unmatched groups expand to "". */
type GroupMatch = { readonly [i: number]: string | undefined; readonly groups?: Record<string, string> };

function expandTemplate(template: string, match: GroupMatch): string {
  let out = '';
  let t = template;
  for (;;) {
    const dollar = t.indexOf('$');
    if (dollar < 0) break;
    out += t.slice(0, dollar);
    t = t.slice(dollar + 1);
    if (t.startsWith('$')) {
      out += '$';
      t = t.slice(1);
      continue;
    }
    const brace = t.startsWith('{');
    const chars = Array.from(brace ? t.slice(1) : t);
    let n = 0;
    while (n < chars.length && NAME_CHAR.test(chars[n]!)) n++;
    const name = chars.slice(0, n).join('');
    if (n === 0 || (brace && chars[n] !== '}')) {
      out += '$'; // malformed: the '$' is literal
      continue;
    }
    t = chars.slice(n + (brace ? 1 : 0)).join('');
    // Go: all ASCII digits, no leading zero, below 1e8 → group number; otherwise a group name.
    const isNumber = /^(?:0|[1-9][0-9]{0,7})$/.test(name);
    if (isNumber) {
      out += match[Number(name)] ?? '';
    } else {
      out += match.groups?.[name] ?? '';
    }
  }
  return out + t;
}

/** Go (*Regexp).ReplaceAllString, indices in code points as re2-wasm reports them. */
function goReplaceAll(re: RE2, src: string, template: string): string {
  const cps = Array.from(src);
  let out = '';
  let lastMatchEnd = 0;
  let pos = 0;
  let prevMatchEnd = -1;
  while (pos <= cps.length) {
    re.lastIndex = pos;
    const m = re.exec(src);
    if (m === null) break;
    const start = m.index;
    const end = start + Array.from(m[0] ?? '').length;
    let accept = true;
    if (end === start) {
      // An empty match right after the previous match is not a match (Go's allMatches rule).
      if (start === prevMatchEnd) accept = false;
      pos = start + 1;
    } else {
      pos = end;
    }
    prevMatchEnd = end;
    if (accept) {
      out += cps.slice(lastMatchEnd, start).join('') + expandTemplate(template, m);
      lastMatchEnd = end;
    }
  }
  return out + cps.slice(lastMatchEnd).join('');
}

export const stringBuiltins = {
  'strings.any_prefix_match': (search: unknown, base: unknown) => anyAffixMatch(search, base, false),
  'strings.any_suffix_match': (search: unknown, base: unknown) => anyAffixMatch(search, base, true),
  'regex.replace': (s: unknown, pattern: unknown, value: unknown) => {
    if (!isString(s) || !isString(pattern) || !isString(value)) return undefined;
    const re = compileGoRegex(pattern);
    return re === null ? undefined : goReplaceAll(re, s, value);
  },
};
