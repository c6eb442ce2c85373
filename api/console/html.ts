// HTML for the console's server-rendered pages, escaped by default: `html` is a tagged template whose
// interpolations are escaped (text and quoted attribute values alike) unless they are already SafeHtml
// made by `html` itself. Arrays are joined, null/undefined/false render nothing. No template engine:
// the pages are a few small functions, and one rule — every value goes through `html` — is easy to
// review; a library would add a second syntax for the same thing.

const SAFE = Symbol('safe-html');

export interface SafeHtml {
  readonly [SAFE]: true;
  readonly text: string;
}

const safe = (text: string): SafeHtml => ({ [SAFE]: true, text });

export const isSafe = (v: unknown): v is SafeHtml =>
  typeof v === 'object' && v !== null && (v as Record<symbol, unknown>)[SAFE] === true;

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
};

export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"'`]/g, (c) => ESCAPES[c]!);
}

type Value = SafeHtml | string | number | boolean | null | undefined | readonly Value[];

function render(v: Value): string {
  if (v === null || v === undefined || v === false) return '';
  if (Array.isArray(v)) return v.map(render).join('');
  if (isSafe(v)) return v.text;
  return escapeHtml(v);
}

export function html(strings: TemplateStringsArray, ...values: Value[]): SafeHtml {
  let out = strings[0] ?? '';
  values.forEach((v, i) => {
    out += render(v) + (strings[i + 1] ?? '');
  });
  return safe(out);
}

/** A path with a query built from `params` (empty values left out); always starts with `/`. */
export function href(path: string, params: Record<string, string | number | null | undefined> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params))
    if (v !== null && v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** Pretty JSON, escaped, for a <pre>. */
export const json = (v: unknown): SafeHtml => html`${JSON.stringify(v, null, 2) ?? 'null'}`;
