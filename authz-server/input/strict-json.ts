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

import { ChaperoneError } from '../../contracts/errors.ts';

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

/** Why a text is refused; thrown inside the scanner and returned by parseStrictJson as a result. */
export class StrictJsonError extends ChaperoneError {
  constructor(
    readonly problem: StrictJsonProblem,
    message: string,
  ) {
    super('ERR_BODY_UNPARSABLE', message);
  }
}

const refuse = (problem: StrictJsonProblem, message: string): never => {
  throw new StrictJsonError(problem, message);
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

const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;

/** One pass over the text that refuses what the rules above refuse; it builds no value. */
class Scanner {
  private i = 0;

  constructor(
    private readonly text: string,
    private readonly maxDepth: number,
  ) {}

  /** Throws StrictJsonError unless the whole text is one acceptable JSON value. */
  scan(): void {
    this.value(0);
    this.ws();
    if (this.i < this.text.length) refuse('syntax', 'data after the JSON value');
  }

  private ws(): void {
    for (;;) {
      const c = this.text.charCodeAt(this.i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.i++;
      else return;
    }
  }

  /** The escape at `slash`: where the text continues after it, and whether it spells printable ASCII. */
  private escape(slash: number): { end: number; ascii: boolean } {
    const { text } = this;
    const e = text.charCodeAt(slash + 1);
    if (e !== 0x75 /* u */) {
      // \" \\ \/ \b \f \n \r \t; the printable ones spell ASCII with an escape.
      if (e === 0x22 || e === 0x5c || e === 0x2f) return { end: slash + 2, ascii: true };
      if (e !== 0x62 && e !== 0x66 && e !== 0x6e && e !== 0x72 && e !== 0x74) refuse('syntax', 'bad escape');
      return { end: slash + 2, ascii: false };
    }
    const hex = text.slice(slash + 2, slash + 6);
    if (hex.length !== 4 || ![0, 1, 2, 3].every((k) => isHex(hex.charCodeAt(k))))
      refuse('syntax', 'bad \\u escape');
    const unit = Number.parseInt(hex, 16);
    const ascii = unit >= 0x20 && unit <= 0x7e;
    if (unit >= 0xdc00 && unit <= 0xdfff) refuse('unpaired_surrogate', 'unpaired surrogate escape');
    if (unit < 0xd800 || unit > 0xdbff) return { end: slash + 6, ascii };
    // A high surrogate must be followed at once by an escaped low surrogate.
    const next = text.slice(slash + 6, slash + 8) === '\\u' ? text.slice(slash + 8, slash + 12) : '';
    const low = next.length === 4 ? Number.parseInt(next, 16) : Number.NaN;
    if (!(low >= 0xdc00 && low <= 0xdfff)) refuse('unpaired_surrogate', 'unpaired surrogate escape');
    return { end: slash + 12, ascii };
  }

  /** Scans a string starting at the opening quote; returns its decoded text when `decode`. */
  private string(decode: boolean): { value: string; asciiEscape: boolean } {
    const { text } = this;
    const start = this.i + 1;
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
      const e = this.escape(slash);
      if (e.ascii) asciiEscape = true;
      j = e.end;
    }
    // Raw control characters are left to JSON.parse, which runs on every accepted text.
    this.i = j + 1;
    if (!decode) return { value: '', asciiEscape };
    const raw = text.slice(start, j);
    return { value: escaped ? (JSON.parse(`"${raw}"`) as string) : raw, asciiEscape };
  }

  private number(): void {
    NUMBER.lastIndex = this.i;
    const m = NUMBER.exec(this.text);
    if (!m || m[0] === '-' || m[0] === '') refuse('syntax', 'unexpected character');
    const literal = m![0];
    const value = Number(literal);
    if (!Number.isFinite(value)) refuse('ambiguous_number', `number ${literal.slice(0, 32)} overflows`);
    if (m![1] === undefined && m![2] === undefined && !Number.isSafeInteger(value))
      refuse('ambiguous_number', `integer ${literal.slice(0, 32)} is beyond 2^53 and would be rounded`);
    this.i += literal.length;
  }

  private literal(word: string): void {
    if (this.text.startsWith(word, this.i)) this.i += word.length;
    else refuse('syntax', 'unexpected character');
  }

  private value(depth: number): void {
    this.ws();
    const c = this.text.charCodeAt(this.i);
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (depth >= this.maxDepth) refuse('too_deep', `nested deeper than ${this.maxDepth} levels`);
      this.i++;
      this.ws();
      if (c === 0x7b) this.object(depth + 1);
      else this.array(depth + 1);
      return;
    }
    if (c === 0x22) this.string(false);
    else if (c === 0x74) this.literal('true');
    else if (c === 0x66) this.literal('false');
    else if (c === 0x6e) this.literal('null');
    else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) this.number();
    else refuse('syntax', this.i >= this.text.length ? 'unexpected end of JSON' : 'unexpected character');
  }

  /** A key of an object; `folded` holds the object's keys so far, by their case-folded form. */
  private key(folded: Map<string, string>): void {
    if (this.text.charCodeAt(this.i) !== 0x22) refuse('syntax', 'expected a key');
    const key = this.string(true);
    if (key.asciiEscape) refuse('escaped_key', 'an object key spells ASCII with escapes');
    const f = foldKey(key.value);
    const prior = folded.get(f);
    if (prior === key.value) refuse('duplicate_key', `duplicate key ${JSON.stringify(key.value)}`);
    if (prior !== undefined)
      refuse(
        'case_variant_key',
        `keys ${JSON.stringify(prior)} and ${JSON.stringify(key.value)} differ only in case`,
      );
    folded.set(f, key.value);
  }

  private object(depth: number): void {
    if (this.text.charCodeAt(this.i) === 0x7d) {
      this.i++;
      return;
    }
    const folded = new Map<string, string>();
    for (;;) {
      this.ws();
      this.key(folded);
      this.ws();
      if (this.text.charCodeAt(this.i) !== 0x3a) refuse('syntax', 'expected ":"');
      this.i++;
      this.value(depth);
      if (this.separator(0x7d)) return;
    }
  }

  private array(depth: number): void {
    if (this.text.charCodeAt(this.i) === 0x5d) {
      this.i++;
      return;
    }
    for (;;) {
      this.value(depth);
      if (this.separator(0x5d)) return;
    }
  }

  /** After a member: true at the closing `close`, false at a comma; anything else is refused. */
  private separator(close: number): boolean {
    this.ws();
    const c = this.text.charCodeAt(this.i);
    this.i++;
    if (c === 0x2c) return false;
    if (c === close) return true;
    return refuse('syntax', close === 0x7d ? 'expected "," or "}"' : 'expected "," or "]"');
  }
}

/** Reads one JSON value from `text` under the rules above. Never throws for bad input. */
export function parseStrictJson(text: string, maxDepth = STRICT_JSON_MAX_DEPTH): StrictJsonResult {
  try {
    new Scanner(text, maxDepth).scan();
  } catch (err) {
    if (err instanceof StrictJsonError) return { ok: false, problem: err.problem, message: err.message };
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
