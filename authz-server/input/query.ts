// application/x-www-form-urlencoded decoding, shared by `parsed_query` and form bodies. Values are
// always arrays (a repeated key accumulates, in order), as in OPA-Envoy. The result object has no
// prototype, so a key such as `__proto__` or `constructor` is plain data and pollutes nothing.

export type FormValues = Record<string, string[]>;
export type FormParse = { ok: true; values: FormValues } | { ok: false; reason: string };

/** '+' is a space and %XX a UTF-8 byte; null when the escapes are invalid. */
function decodeFormComponent(s: string): string | null {
  if (s.indexOf('%') === -1 && s.indexOf('+') === -1) return s;
  try {
    return decodeURIComponent(s.includes('+') ? s.replaceAll('+', ' ') : s);
  } catch {
    return null;
  }
}

/** Parses `a=1&a=2&b` into { a: ["1", "2"], b: [""] }; empty pairs ("&&") are skipped. */
export function parseFormEncoded(text: string): FormParse {
  const values: FormValues = Object.create(null);
  if (text.length === 0) return { ok: true, values };
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf('&', start);
    if (end === -1) end = text.length;
    if (end > start) {
      // Search '=' within the pair only: a search over the rest of the text would make many
      // '='-less pairs quadratic.
      const pair = text.slice(start, end);
      const eq = pair.indexOf('=');
      const key = decodeFormComponent(eq === -1 ? pair : pair.slice(0, eq));
      const value = eq === -1 ? '' : decodeFormComponent(pair.slice(eq + 1));
      if (key === null || value === null) return { ok: false, reason: 'invalid percent-encoding' };
      const list = values[key];
      if (list) list.push(value);
      else values[key] = [value];
    }
    start = end + 1;
  }
  return { ok: true, values };
}
