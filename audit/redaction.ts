// The one redaction pass over everything the audit trail keeps. Every decision record and every
// administrative record goes through `Redactor.decision` before it is spooled, every access-log entry
// through `Redactor.accessLog` before it is stored; nothing reaches the spool, the store, an export or
// a decision log any other way. What it removes:
// - request paths keep no query string (the query survives only as `parsed_query`, masked below);
// - header maps lose credential headers (a built-in list, the configured token header, upstream
//   credential headers and `audit.redact_headers`) and any value that is an authentication scheme
//   with its credentials;
// - at any depth (parsed query and body, protocol views such as MCP tool arguments, identity claims,
//   administrative details, policy results): values under a secret-looking name (`password`,
//   `*_token`, `api_key`, `signature`, … or a redacted header's name) and strings shaped like a
//   credential (a JWT, `Bearer …`, well-known API-key formats, a PEM private key), inside longer text
//   too, and secret-named `name=value` pairs in any text (a path with its query in a reason);
// - raw bodies.
// The live request is never changed: everything is copied.
import {
  AUTH_SCHEME_VALUE,
  decodeName,
  REDACTED,
  REDACTED_IN_QUERY,
  redactPath,
  redactText,
  SECRET_HEADERS,
  SECRET_NAME,
} from '../lib/secret-text.ts';
import type { AccessLogEntry } from './access-log-service.ts';
import type { DecisionRecord } from './records.ts';

export { REDACTED, redactPath, redactText, SECRET_HEADERS, SECRET_NAME } from '../lib/secret-text.ts';

/** `a=1&client_secret=x` with secret-named values replaced (URL-encoded, so the string stays a query). */
function maskQueryString(q: string): string {
  return q
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq === -1) return pair;
      const name = pair.slice(0, eq);
      return SECRET_NAME.test(decodeName(name)) ? `${name}=${REDACTED_IN_QUERY}` : pair;
    })
    .join('&');
}

const isPlainObject = (v: object): boolean => {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
};

/**
 * Sets own enumerable `k` even when it is `__proto__` (a JSON body may carry one). Plain assignment for
 * every other key: defining each property was most of the redaction's cost, and left every copied object
 * in V8's slow dictionary mode for the JSON serialisation after it.
 */
function put(out: Record<string, unknown>, k: string, value: unknown): void {
  if (k === '__proto__')
    Object.defineProperty(out, k, { value, enumerable: true, writable: true, configurable: true });
  else out[k] = value;
}

/**
 * Bounded memo of a pure function over short strings. Every decision repeats most of its strings
 * (header values, claims, policy reasons) and all of its key names; both tests are regular-expression
 * scans. Emptied when full, so it never grows past `max` entries.
 */
class Memo<T> {
  private readonly map = new Map<string, T>();
  constructor(
    private readonly max: number,
    private readonly maxLength: number,
  ) {}

  get(key: string, compute: (key: string) => T, keep: (value: T) => boolean = () => true): T {
    const hit = this.map.get(key);
    if (hit !== undefined) return hit;
    const value = compute(key);
    if (key.length <= this.maxLength && keep(value)) {
      if (this.map.size >= this.max) this.map.clear();
      this.map.set(key, value);
    }
    return value;
  }
}

/**
 * Text with nothing to redact, remembered: only strings that come out unchanged are kept, so the memo
 * never holds a credential (one is scanned again each time it is seen).
 */
const cleanText = new Memo<string>(8192, 512);
const redactTextMemo = (s: string): string => cleanText.get(s, redactText, (out) => out === s);

export class Redactor {
  private readonly secretHeaders: Set<string>;

  /** `extraHeaders`: more header names whose values are secret (case-insensitive). */
  constructor(extraHeaders: readonly string[] = []) {
    this.secretHeaders = new Set([...SECRET_HEADERS, ...extraHeaders.map((h) => h.toLowerCase())]);
  }

  /** The record as it may be kept: every field a secret could reach, redacted. */
  decision(r: DecisionRecord): DecisionRecord {
    return {
      ...r,
      path: typeof r.path === 'string' ? redactPath(r.path) : r.path,
      reason: typeof r.reason === 'string' ? redactText(r.reason) : r.reason,
      actor: this.sweep(r.actor ?? null, false),
      input: this.input(r.input),
      result: this.result(r.result),
    };
  }

  /** An access-log entry as it may be kept (Envoy sends the path with its query). */
  accessLog(e: AccessLogEntry): AccessLogEntry {
    return {
      ...e,
      path: redactPath(e.path),
      authority: redactText(e.authority),
      responseCodeDetails: redactText(e.responseCodeDetails),
      metadata: this.sweep(e.metadata ?? {}, false) as Record<string, unknown>,
    };
  }

  /**
   * The policy input as kept: raw bodies dropped, the path without its query, credential headers
   * removed, then the sweep (secret names and credential-shaped text at any depth).
   */
  input(input: unknown): unknown {
    if (!input || typeof input !== 'object' || Array.isArray(input)) return this.sweep(input ?? null, false);
    const src = input as Record<string, any>;
    const out: Record<string, unknown> = { ...src };
    const http = src['attributes']?.request?.http;
    if (http && typeof http === 'object') {
      const { rawBody: _raw, body: _body, headerMap: _hm, ...rest } = http;
      const masked: Record<string, unknown> = {
        ...rest,
        path: typeof rest.path === 'string' ? redactPath(rest.path) : rest.path,
        headers: this.headers(http.headers),
      };
      if (typeof rest.query === 'string' && rest.query) masked['query'] = maskQueryString(rest.query);
      out['attributes'] = { ...src['attributes'], request: { ...src['attributes'].request, http: masked } };
    }
    return this.sweep(out, false);
  }

  /** The policy result as kept: headers it sets for the upstream or the client may hold credentials. */
  result(result: unknown): unknown {
    if (!result || typeof result !== 'object' || Array.isArray(result))
      return this.sweep(result ?? null, false);
    const out: Record<string, unknown> = { ...(result as Record<string, unknown>) };
    for (const key of ['headers', 'response_headers_to_add'])
      if (key in out) out[key] = this.headers(out[key]);
    return this.sweep(out, false);
  }

  private headers(headers: unknown): unknown {
    if (!headers || typeof headers !== 'object' || Array.isArray(headers)) return headers;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(headers as Record<string, unknown>))
      put(
        out,
        k,
        this.secretHeaders.has(k.toLowerCase()) || (typeof v === 'string' && AUTH_SCHEME_VALUE.test(v.trim()))
          ? REDACTED
          : v,
      );
    return out;
  }

  /** Key names are few and repeat in every record: each is tested once per Redactor (bounded). */
  private readonly secretKeys = new Memo<boolean>(4096, 128);
  private readonly testKey = (k: string): boolean =>
    SECRET_NAME.test(k) || this.secretHeaders.has(k.toLowerCase());

  private secretKey(k: string): boolean {
    return this.secretKeys.get(k, this.testKey);
  }

  /** Copies `v`; under a secret name every string and number is replaced, elsewhere text is redacted. */
  private sweep(v: unknown, secret: boolean): unknown {
    if (typeof v === 'string') return secret ? REDACTED : redactTextMemo(v);
    if (typeof v === 'number' || typeof v === 'bigint') return secret ? REDACTED : v;
    if (!v || typeof v !== 'object') return v;
    if (Array.isArray(v)) return v.map((x) => this.sweep(x, secret));
    if (!isPlainObject(v)) return v;
    const src = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(src)) put(out, k, this.sweep(src[k], secret || this.secretKey(k)));
    return out;
  }
}

/** maskInput / maskResult with the built-in rules plus `extraHeaders` (kept for callers of the old API). */
export function maskInput(input: unknown, extraHeaders: string[] = []): unknown {
  return new Redactor(extraHeaders).input(input);
}

export function maskResult(result: unknown, extraHeaders: string[] = []): unknown {
  return new Redactor(extraHeaders).result(result);
}
