// The request headers of a CheckRequest, read one way for every consumer: the identity step, the input
// builder (body, protocol decoders), the result mapper (which client headers to strip) and the decision
// log. Envoy sends them as `http.headers` (a name → value map), or, with `encode_raw_headers`, as
// `http.headerMap.headers` (a list of {key, value | rawValue}); whatever the policy can see, the
// identity step sees too, so a token cannot hide from one of them in the other encoding.

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export interface RequestHeaders {
  /** Value by lower-case name; repeated headers joined with ',' as Envoy joins them in `headers`. */
  get(name: string): string | undefined;
  /** Every header as lower-case name → value, for consumers that take a plain map. */
  readonly all: Readonly<Record<string, string>>;
}

/** `http.headers`: kept as is when every value is a string (the common case costs no copy). */
function fromHeaders(headers: Obj): Record<string, string> {
  for (const v of Object.values(headers)) {
    if (typeof v !== 'string') return fromEntries(Object.entries(headers));
  }
  return headers as Record<string, string>;
}

/** `http.headerMap.headers`: names lower-cased, `rawValue` bytes decoded as UTF-8, repeats joined. */
function fromHeaderMap(list: unknown[]): Record<string, string> {
  const entries: [string, unknown][] = [];
  for (const h of list) {
    if (!isObject(h) || typeof h['key'] !== 'string') continue;
    const value =
      typeof h['value'] === 'string' && h['value'] !== ''
        ? h['value']
        : h['rawValue'] instanceof Uint8Array
          ? Buffer.from(h['rawValue']).toString('utf8')
          : undefined;
    if (value !== undefined) entries.push([h['key'].toLowerCase(), value]);
  }
  return fromEntries(entries);
}

/** A null-prototype map of the string values, repeated names joined with ','. */
function fromEntries(entries: [string, unknown][]): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  for (const [name, value] of entries) {
    if (typeof value !== 'string') continue;
    out[name] = Object.hasOwn(out, name) ? `${out[name]},${value}` : value;
  }
  return out;
}

/** Reads the headers of `attributes.request.http` (anything else reads as no headers). */
export function readRequestHeaders(http: unknown): RequestHeaders {
  let all: Record<string, string> = Object.create(null);
  if (isObject(http)) {
    const map = http['headerMap'];
    if (isObject(http['headers'])) all = fromHeaders(http['headers']);
    else if (isObject(map) && Array.isArray(map['headers'])) all = fromHeaderMap(map['headers']);
  }
  return {
    all,
    get: (name) => (Object.hasOwn(all, name) ? all[name] : undefined),
  };
}
