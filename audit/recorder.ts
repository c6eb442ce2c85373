// The authz server's DecisionRecorder: masks secrets out of the policy input, then spools the decision
// durably. The input is copied, never changed in place (it shares objects with the live request).
import type { DecisionEvent, DecisionRecorder } from '../contracts/decision.ts';
import { toDecisionRecord } from './records.ts';
import type { Spool } from './spool.ts';

/** Headers whose values are credentials; removed from stored inputs. */
export const SECRET_HEADERS = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-api-key',
  'api-key',
  'x-auth-token',
  'x-amz-security-token',
  'x-goog-api-key',
];
/** Query parameter and body field names whose values are credentials. */
const SECRET_NAMES =
  /^(access_token|id_token|refresh_token|subject_token|actor_token|token|api_key|apikey|key|password|passwd|secret|client_secret|sig|signature|private_key)$/i;
/** Values that are credentials wherever they appear: a JWT (JWS or JWE), or a bearer token. */
const SECRET_VALUE = /^(?:eyJ[\w-]+(?:\.[\w-]*){2,4}|bearer\s+[\w\-.~+/]+=*)$/i;
/** In a header, any HTTP authentication scheme followed by its credentials (`Basic …`, `Token …`). */
const AUTH_SCHEME_VALUE = /^(?:bearer|basic|digest|token|apikey|negotiate|aws4-hmac-sha256)\s+\S+/i;
export const REDACTED = '[redacted]';

/** Every string that looks like a credential replaced, at any depth; names in `secretKeys` masked too. */
function scrub(v: unknown, secretKeys: RegExp | null): unknown {
  if (typeof v === 'string') return SECRET_VALUE.test(v.trim()) ? REDACTED : v;
  if (Array.isArray(v)) return v.map((x) => scrub(x, secretKeys));
  if (!v || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    const value =
      secretKeys?.test(k) && x !== null && typeof x !== 'object' ? REDACTED : scrub(x, secretKeys);
    Object.defineProperty(out, k, { value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function maskHeaders(headers: unknown, secret: Set<string>): unknown {
  if (!headers || typeof headers !== 'object' || Array.isArray(headers)) return headers;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(headers as Record<string, unknown>))
    out[k] =
      secret.has(k.toLowerCase()) || (typeof v === 'string' && AUTH_SCHEME_VALUE.test(v.trim()))
        ? REDACTED
        : k === ':path' && typeof v === 'string'
          ? maskPathQuery(v)
          : v;
  return out;
}

/** Envoy's `:path` pseudo-header carries the query string too: its secret-named parameters are masked. */
function maskPathQuery(path: string): string {
  const q = path.indexOf('?');
  return q === -1 ? path : `${path.slice(0, q)}?${maskQueryString(path.slice(q + 1))}`;
}

function maskQueryString(q: string): string {
  return q
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const name = eq === -1 ? pair : pair.slice(0, eq);
      let decoded = name;
      try {
        decoded = decodeURIComponent(name.replace(/\+/g, ' '));
      } catch {
        // keep the raw name
      }
      return eq !== -1 && SECRET_NAMES.test(decoded) ? `${name}=${encodeURIComponent(REDACTED)}` : pair;
    })
    .join('&');
}

/**
 * The policy input as the audit trail keeps it: credential headers (the built-in list plus
 * `extraHeaders`, e.g. a custom token header) and raw bodies removed, the query string dropped from the
 * path, secret-named query parameters and body fields masked, and anything shaped like a token (a JWT,
 * `Bearer …`) masked wherever it appears — identity claims included. Policy-relevant structure stays.
 */
export function maskInput(input: unknown, extraHeaders: string[] = []): unknown {
  if (!input || typeof input !== 'object') return input ?? null;
  const secret = new Set([...SECRET_HEADERS, ...extraHeaders.map((h) => h.toLowerCase())]);
  const src = input as Record<string, any>;
  const out: Record<string, unknown> = { ...src };
  const http = src['attributes']?.request?.http;
  if (http && typeof http === 'object') {
    const { rawBody: _raw, body: _body, headerMap: _hm, ...rest } = http;
    const path = typeof rest.path === 'string' ? rest.path.split('?')[0] : rest.path;
    const masked: Record<string, unknown> = { ...rest, path, headers: maskHeaders(http.headers, secret) };
    if (typeof rest.query === 'string' && rest.query) masked['query'] = maskQueryString(rest.query);
    out['attributes'] = {
      ...src['attributes'],
      request: { ...src['attributes'].request, http: masked },
    };
  }
  if (src['parsed_query'] && typeof src['parsed_query'] === 'object') {
    const q: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(src['parsed_query'] as Record<string, unknown>))
      q[k] = SECRET_NAMES.test(k) ? [REDACTED] : v;
    out['parsed_query'] = q;
  }
  if (src['parsed_body'] !== undefined) out['parsed_body'] = scrub(src['parsed_body'], SECRET_NAMES);
  // Last, a sweep for token-shaped strings anywhere (custom headers, claims, protocol arguments).
  return scrub(out, null);
}

/** The policy result as kept: headers the policy set for the upstream may hold credentials. */
export function maskResult(result: unknown, extraHeaders: string[] = []): unknown {
  if (!result || typeof result !== 'object' || Array.isArray(result)) return scrub(result ?? null, null);
  const secret = new Set([...SECRET_HEADERS, ...extraHeaders.map((h) => h.toLowerCase())]);
  const out: Record<string, unknown> = { ...(result as Record<string, unknown>) };
  for (const key of ['headers', 'response_headers_to_add']) {
    if (key in out) out[key] = maskHeaders(out[key], secret);
  }
  return scrub(out, null);
}

export interface SpoolRecorderOptions {
  /** More header names to mask (the configured token header, upstream credential headers). */
  extraSecretHeaders?: string[];
}

export class SpoolRecorder implements DecisionRecorder {
  constructor(
    private readonly spool: Spool,
    private readonly o: SpoolRecorderOptions = {},
  ) {}

  /** Resolves once the decision is fsynced in the spool; rejects (→ the ALLOW becomes a 503) otherwise. */
  record(event: DecisionEvent): Promise<void> {
    const extra = this.o.extraSecretHeaders ?? [];
    const record = toDecisionRecord(
      { ...event, result: maskResult(event.result, extra) },
      maskInput(event.input, extra),
    );
    return this.spool.append(record);
  }
}
