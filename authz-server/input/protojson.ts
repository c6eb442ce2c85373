// Turns the decoded CheckRequest attributes (proto-loader: camelCase, longs as numbers, bytes as
// Buffers, Timestamp as {seconds, nanos}, Struct as {fields}) into the protojson form OPA-Envoy
// policies read. Only the few fields whose encoding differs are rewritten, each on a shallow copy of
// its parents: the rest of the object graph is shared, because this runs on every Check.

export type ProtojsonResult =
  | { ok: true; attributes: Record<string, unknown> }
  | { ok: false; reason: string };

// google.protobuf.Timestamp's range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
const MIN_SECONDS = -62135596800;
const MAX_SECONDS = 253402300799;

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, exactly as protojson prints a Timestamp. */
export function timestampToRfc3339(ts: { seconds?: unknown; nanos?: unknown }): string | null {
  const seconds = Number(ts.seconds ?? 0);
  const nanos = Number(ts.nanos ?? 0);
  if (!Number.isInteger(seconds) || seconds < MIN_SECONDS || seconds > MAX_SECONDS) return null;
  if (!Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999) return null;
  const whole = new Date(seconds * 1000).toISOString().slice(0, 19);
  let frac = '';
  if (nanos === 0) frac = '';
  else if (nanos % 1_000_000 === 0) frac = `.${String(nanos / 1_000_000).padStart(3, '0')}`;
  else if (nanos % 1000 === 0) frac = `.${String(nanos / 1000).padStart(6, '0')}`;
  else frac = `.${String(nanos).padStart(9, '0')}`;
  return `${whole}${frac}Z`;
}

const MAX_STRUCT_DEPTH = 64;

/** Assignment that keeps a key such as "__proto__" as data, the way JSON.parse does. */
function setOwn(obj: Obj, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** google.protobuf.Value as decoded by proto-loader → plain JSON. */
function valueToJson(v: unknown, depth: number): unknown {
  if (!isObject(v) || depth > MAX_STRUCT_DEPTH) return null;
  if ('stringValue' in v) return v['stringValue'];
  if ('numberValue' in v) return v['numberValue'];
  if ('boolValue' in v) return v['boolValue'];
  if ('structValue' in v) return structToJson(v['structValue'], depth + 1);
  if ('listValue' in v) {
    const values = isObject(v['listValue']) ? v['listValue']['values'] : undefined;
    return Array.isArray(values) ? values.map((x) => valueToJson(x, depth + 1)) : [];
  }
  return null;
}

/** google.protobuf.Struct ({fields}) → plain JSON object, as protojson prints it. */
export function structToJson(s: unknown, depth = 0): Obj {
  const out: Obj = {};
  const fields = isObject(s) ? s['fields'] : undefined;
  if (!isObject(fields) || depth > MAX_STRUCT_DEPTH) return out;
  for (const key of Object.keys(fields)) {
    setOwn(out, key, valueToJson(fields[key], depth));
  }
  return out;
}

/** config.core.v3.Metadata: filterMetadata holds Structs; typedFilterMetadata holds Anys. */
function metadataToJson(m: unknown): unknown {
  if (!isObject(m)) return m;
  const out: Obj = { ...m };
  if (isObject(m['filterMetadata'])) {
    const filters: Obj = {};
    for (const [ns, struct] of Object.entries(m['filterMetadata'])) setOwn(filters, ns, structToJson(struct));
    out['filterMetadata'] = filters;
  }
  if (isObject(m['typedFilterMetadata'])) {
    // Without the message types, an Any is shown as its type URL and base64 bytes.
    const typed: Obj = {};
    for (const [ns, any] of Object.entries(m['typedFilterMetadata'])) {
      const shown = isObject(any)
        ? {
            '@type': any['typeUrl'] ?? '',
            value: any['value'] instanceof Uint8Array ? base64(any['value']) : (any['value'] ?? ''),
          }
        : any;
      setOwn(typed, ns, shown);
    }
    out['typedFilterMetadata'] = typed;
  }
  return out;
}

/** config.core.v3.HeaderMap (sent instead of `headers` with encode_raw_headers): rawValue is bytes. */
function headerMapToJson(hm: unknown): unknown {
  if (!isObject(hm) || !Array.isArray(hm['headers'])) return hm;
  return {
    ...hm,
    headers: hm['headers'].map((h: unknown) =>
      isObject(h) && h['rawValue'] instanceof Uint8Array ? { ...h, rawValue: base64(h['rawValue']) } : h,
    ),
  };
}

/** `attributes` must already be known to hold request.http as objects. */
export function attributesToProtojson(attributes: Obj, request: Obj, http: Obj): ProtojsonResult {
  let outHttp = http;
  if (http['rawBody'] instanceof Uint8Array || http['headerMap'] !== undefined) {
    outHttp = { ...http };
    if (http['rawBody'] instanceof Uint8Array) outHttp['rawBody'] = base64(http['rawBody']);
    if (http['headerMap'] !== undefined) outHttp['headerMap'] = headerMapToJson(http['headerMap']);
  }
  let outRequest = request;
  const time = request['time'];
  if (isObject(time) || outHttp !== http) {
    outRequest = { ...request, http: outHttp };
    if (isObject(time)) {
      const text = timestampToRfc3339(time);
      if (text === null) return { ok: false, reason: 'request time is out of range' };
      outRequest['time'] = text;
    }
  }
  const hasMetadata =
    attributes['metadataContext'] !== undefined || attributes['routeMetadataContext'] !== undefined;
  if (outRequest === request && !hasMetadata) return { ok: true, attributes };
  const out: Obj = { ...attributes, request: outRequest };
  if (attributes['metadataContext'] !== undefined)
    out['metadataContext'] = metadataToJson(attributes['metadataContext']);
  if (attributes['routeMetadataContext'] !== undefined) {
    out['routeMetadataContext'] = metadataToJson(attributes['routeMetadataContext']);
  }
  return { ok: true, attributes: out };
}
