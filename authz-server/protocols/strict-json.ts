// A strict JSON reader for protocol envelopes. JSON.parse accepts what a policy must not: a duplicate
// key (it keeps the last, an upstream may keep the first), keys written with escapes ("m\u0065thod"),
// and — when a caller splits input loosely — several concatenated values. This scanner walks the text
// once and reports those, so a request that two parsers could read differently never reaches a policy.

export type StrictJsonProblem =
  | 'duplicate_key'
  | 'case_variant_key'
  | 'escaped_key'
  | 'trailing_data'
  | 'batch'
  | 'invalid';

export class StrictJsonError extends Error {
  constructor(
    readonly problem: StrictJsonProblem,
    message: string,
  ) {
    super(message);
    this.name = 'StrictJsonError';
  }
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

/**
 * Checks `text` holds exactly one JSON object (BOM and whitespace around it allowed) with no duplicate,
 * case-variant or escaped keys at any depth. Throws StrictJsonError; returns nothing (use JSON.parse
 * for the value once this passed).
 */
export function assertStrictJsonObject(text: string): void {
  let i = 0;
  if (text.charCodeAt(0) === 0xfeff) i = 1;
  const skip = () => {
    while (i < text.length && WS.has(text.charCodeAt(i))) i++;
  };
  const fail = (problem: StrictJsonProblem, message: string): never => {
    throw new StrictJsonError(problem, message);
  };
  const string = (): { raw: string; escaped: boolean } => {
    const start = ++i;
    let escaped = false;
    while (i < text.length) {
      const c = text[i];
      if (c === '"') {
        const raw = text.slice(start, i);
        i++;
        return { raw, escaped };
      }
      if (c === '\\') {
        escaped = true;
        i += 2;
        continue;
      }
      i++;
    }
    return fail('invalid', 'unterminated string');
  };
  const value = (depth: number): void => {
    if (depth > 64) fail('invalid', 'nested too deeply');
    skip();
    const c = text[i];
    if (c === '{') {
      i++;
      const seen = new Set<string>();
      const folded = new Set<string>();
      skip();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        skip();
        if (text[i] !== '"') fail('invalid', 'expected a key');
        const key = string();
        if (key.escaped) fail('escaped_key', 'object keys must be written without escapes');
        if (seen.has(key.raw)) fail('duplicate_key', `duplicate key "${key.raw}"`);
        if (folded.has(key.raw.toLowerCase()))
          fail('case_variant_key', `keys differ only in case ("${key.raw}")`);
        seen.add(key.raw);
        folded.add(key.raw.toLowerCase());
        skip();
        if (text[i] !== ':') fail('invalid', 'expected ":"');
        i++;
        value(depth + 1);
        skip();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return;
        }
        fail('invalid', 'expected "," or "}"');
      }
    }
    if (c === '[') {
      i++;
      skip();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value(depth + 1);
        skip();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return;
        }
        fail('invalid', 'expected "," or "]"');
      }
    }
    if (c === '"') {
      string();
      return;
    }
    const m = /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
    if (!m) fail('invalid', 'unexpected character');
    i += m![0].length;
  };
  skip();
  if (text[i] === '[') fail('batch', 'JSON-RPC batches are not accepted');
  if (text[i] !== '{') fail('invalid', 'expected a JSON object');
  value(0);
  skip();
  if (i < text.length) fail('trailing_data', 'data after the JSON value (concatenated JSON)');
}
