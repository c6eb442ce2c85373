// The one JSON reader for everything a policy judges: `parsed_body` and every protocol view. JSON.parse
// accepts documents that other parsers read differently, and each difference is a way past a policy:
// - a duplicate key: JSON.parse keeps the last, many servers keep the first;
// - keys that differ only in case ("model" / "Model"): Go's encoding/json matches struct fields
//   case-insensitively (with Unicode simple folding, so "ſ" is "s" and "K" is "k");
// - a key that spells printable ASCII with escapes ("m\u0065thod"): only a disguise does that;
// - an unpaired UTF-16 surrogate escape ("\ud800"): Go and Rust decode it to U+FFFD, JSON.parse keeps it;
// - an integer beyond 2^53 (JSON.parse rounds it, Python keeps it exact) or a number that overflows to
//   Infinity (the policy would see null);
// - nesting deep enough to exhaust a consumer's stack.
// The scanner checks the text once for these, then JSON.parse (native, fast) builds the value: the
// value is exactly JSON.parse's whenever the text is accepted.

/** Containers nested deeper than this are refused. */
export const STRICT_JSON_MAX_DEPTH = 64;

export type StrictJsonProblem =
  | 'syntax'
  | 'duplicate_key'
  | 'case_variant_key'
  | 'escaped_key'
  | 'ambiguous_number'
  | 'unpaired_surrogate'
  | 'too_deep';

export type StrictJsonResult =
  | { ok: true; value: unknown }
  | { ok: false; problem: StrictJsonProblem; message: string };

class Refusal {
  constructor(
    readonly problem: StrictJsonProblem,
    readonly message: string,
  ) {}
}

const refuse = (problem: StrictJsonProblem, message: string): never => {
  throw new Refusal(problem, message);
};

/**
 * How a case-insensitive decoder compares keys. Upper then lower case maps "ς" to "σ", "ſ" to "s" and
 * "K" (Kelvin) to "k" as simple folding does; it also folds "ß" to "ss", which only ever refuses more.
 */
export function foldKey(key: string): string {
  return key.toUpperCase().toLowerCase();
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/** Reads one JSON value from `text` under the rules above. Never throws for bad input. */
export function parseStrictJson(text: string, maxDepth = STRICT_JSON_MAX_DEPTH): StrictJsonResult {
  const n = text.length;
  let i = 0;

  const ws = () => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else return;
    }
  };

  /** Scans a string starting at the opening quote; returns its decoded text when `decode`. */
  const string = (decode: boolean): { value: string; asciiEscape: boolean } => {
    const start = i + 1;
    let j = start;
    let escaped = false;
    let asciiEscape = false;
    for (;;) {
      const quote = text.indexOf('"', j);
      const slash = text.indexOf('\\', j);
      if (quote === -1) refuse('syntax', 'unterminated string');
      if (slash === -1 || quote < slash) {
        j = quote;
        break;
      }
      escaped = true;
      const e = text.charCodeAt(slash + 1);
      if (e === 0x75 /* u */) {
        const hex = text.slice(slash + 2, slash + 6);
        if (hex.length !== 4 || ![0, 1, 2, 3].every((k) => isHex(hex.charCodeAt(k))))
          refuse('syntax', 'bad \\u escape');
        const unit = Number.parseInt(hex, 16);
        if (unit >= 0x20 && unit <= 0x7e) asciiEscape = true;
        if (unit >= 0xd800 && unit <= 0xdbff) {
          // A high surrogate must be followed at once by an escaped low surrogate.
          const next = text.slice(slash + 6, slash + 8) === '\\u' ? text.slice(slash + 8, slash + 12) : '';
          const low = next.length === 4 ? Number.parseInt(next, 16) : Number.NaN;
          if (!(low >= 0xdc00 && low <= 0xdfff)) refuse('unpaired_surrogate', 'unpaired surrogate escape');
          j = slash + 12;
        } else if (unit >= 0xdc00 && unit <= 0xdfff) {
          refuse('unpaired_surrogate', 'unpaired surrogate escape');
        } else j = slash + 6;
      } else {
        // \" \\ \/ \b \f \n \r \t; the printable ones spell ASCII with an escape.
        if (e === 0x22 || e === 0x5c || e === 0x2f) asciiEscape = true;
        else if (e !== 0x62 && e !== 0x66 && e !== 0x6e && e !== 0x72 && e !== 0x74)
          refuse('syntax', 'bad escape');
        j = slash + 2;
      }
    }
    // Raw control characters are left to JSON.parse, which runs on every accepted text.
    i = j + 1;
    if (!decode) return { value: '', asciiEscape };
    const raw = text.slice(start, j);
    return { value: escaped ? (JSON.parse(`"${raw}"`) as string) : raw, asciiEscape };
  };

  const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
  const number = () => {
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m || m[0] === '-' || m[0] === '') refuse('syntax', 'unexpected character');
    const literal = m![0];
    const value = Number(literal);
    if (!Number.isFinite(value)) refuse('ambiguous_number', `number ${literal.slice(0, 32)} overflows`);
    if (m![1] === undefined && m![2] === undefined && !Number.isSafeInteger(value))
      refuse('ambiguous_number', `integer ${literal.slice(0, 32)} is beyond 2^53 and would be rounded`);
    i += literal.length;
  };

  const literal = (word: string) => {
    if (text.startsWith(word, i)) i += word.length;
    else refuse('syntax', 'unexpected character');
  };

  const value = (depth: number): void => {
    ws();
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (depth >= maxDepth) refuse('too_deep', `nested deeper than ${maxDepth} levels`);
      i++;
      ws();
      if (c === 0x7b) object(depth + 1);
      else array(depth + 1);
      return;
    }
    if (c === 0x22) {
      string(false);
      return;
    }
    if (c === 0x74) literal('true');
    else if (c === 0x66) literal('false');
    else if (c === 0x6e) literal('null');
    else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) number();
    else refuse('syntax', i >= n ? 'unexpected end of JSON' : 'unexpected character');
  };

  const object = (depth: number) => {
    if (text.charCodeAt(i) === 0x7d) {
      i++;
      return;
    }
    const folded = new Map<string, string>();
    for (;;) {
      ws();
      if (text.charCodeAt(i) !== 0x22) refuse('syntax', 'expected a key');
      const key = string(true);
      if (key.asciiEscape) refuse('escaped_key', 'an object key spells ASCII with escapes');
      const f = foldKey(key.value);
      const prior = folded.get(f);
      if (prior !== undefined) {
        if (prior === key.value) refuse('duplicate_key', `duplicate key ${JSON.stringify(key.value)}`);
        refuse(
          'case_variant_key',
          `keys ${JSON.stringify(prior)} and ${JSON.stringify(key.value)} differ only in case`,
        );
      }
      folded.set(f, key.value);
      ws();
      if (text.charCodeAt(i) !== 0x3a) refuse('syntax', 'expected ":"');
      i++;
      value(depth);
      ws();
      const c = text.charCodeAt(i);
      i++;
      if (c === 0x2c) continue;
      if (c === 0x7d) return;
      refuse('syntax', 'expected "," or "}"');
    }
  };

  const array = (depth: number) => {
    if (text.charCodeAt(i) === 0x5d) {
      i++;
      return;
    }
    for (;;) {
      value(depth);
      ws();
      const c = text.charCodeAt(i);
      i++;
      if (c === 0x2c) continue;
      if (c === 0x5d) return;
      refuse('syntax', 'expected "," or "]"');
    }
  };

  try {
    value(0);
    ws();
    if (i < n) refuse('syntax', 'data after the JSON value');
  } catch (err) {
    if (err instanceof Refusal) return { ok: false, problem: err.problem, message: err.message };
    // JSON.parse of a key's escapes, or a stack overflow on hostile input: refuse, never crash.
    return { ok: false, problem: 'syntax', message: 'invalid JSON' };
  }
  try {
    // JSON.parse defines "__proto__" as an own data key, never as the prototype: no pollution.
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, problem: 'syntax', message: 'invalid JSON' };
  }
}
