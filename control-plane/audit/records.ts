// The shapes the audit trail stores, and the canonical form its hash chain is computed over.
import { createHash } from 'node:crypto';
import type { DecisionEvent } from '../../authz-server/check-pipeline.ts';
import type { AccessLogEntry } from '../als/access-log-service.ts';

/** A decision as spooled and stored (JSON-safe: time as ISO string). */
export interface DecisionRecord {
  decision_id: string;
  request_id: string;
  time: string;
  route_id: string | null;
  target: string | null;
  method: string;
  host: string;
  path: string;
  subject: string | null;
  issuer: string | null;
  actor: unknown;
  decision: string;
  http_status: number;
  reason: string;
  reason_code: string;
  policy_revision: string;
  latency_us: number;
  input: unknown;
  result: unknown;
  /** Shadow mode: the candidate policy's answer, when one ran. */
  shadow?: { revision: string; decision: string; differs: boolean } | null;
}

export interface StoredDecision extends DecisionRecord {
  seq: number;
  prev_hash: string;
  hash: string;
}

export const GENESIS_HASH = '0'.repeat(64);

export function toDecisionRecord(e: DecisionEvent, maskedInput: unknown): DecisionRecord {
  return {
    decision_id: e.decisionId,
    request_id: e.requestId,
    time: e.time.toISOString(),
    route_id: e.routeId,
    target: e.target,
    method: e.method,
    host: e.host,
    path: e.path,
    subject: e.subject,
    issuer: e.issuer,
    actor: e.actor ?? null,
    decision: e.verdict.decision,
    http_status: e.verdict.httpStatus,
    reason: e.verdict.reason,
    reason_code: e.verdict.reasonCode,
    policy_revision: e.policyRevision,
    latency_us: e.latencyUs,
    input: maskedInput,
    result: e.result ?? null,
    ...(e.shadow ? { shadow: e.shadow } : {}),
  };
}

/** JSON with object keys sorted at every level: the same record always hashes the same. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v ?? null);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(v as Record<string, unknown>)
    .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
}

/** The fields covered by the chain (everything a reader relies on), in canonical form. */
export function chainHash(prevHash: string, seq: number, r: DecisionRecord): string {
  const covered = {
    seq,
    decision_id: r.decision_id,
    request_id: r.request_id,
    time: new Date(r.time).toISOString(),
    route_id: r.route_id,
    target: r.target,
    method: r.method,
    host: r.host,
    path: r.path,
    subject: r.subject,
    issuer: r.issuer,
    actor: r.actor ?? null,
    decision: r.decision,
    http_status: r.http_status,
    reason: r.reason,
    reason_code: r.reason_code,
    policy_revision: r.policy_revision,
    input: r.input ?? null,
    result: r.result ?? null,
    // Only present when a shadow policy ran, so records from before shadow mode hash as they did.
    ...(r.shadow ? { shadow: r.shadow } : {}),
  };
  return createHash('sha256').update(prevHash).update(canonicalJson(covered)).digest('hex');
}

// PostgreSQL refuses NUL in text and jsonb, and lone UTF-16 surrogates in jsonb; a request body can
// carry either. Left in, one such record would fail its batch on every retry and stall the shipper.
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is precisely what has to be found
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** JSON.stringify writes NUL and lone surrogates as `\u` escapes (valid pairs stay raw). */
const ESCAPED_UNSTORABLE = /\\u0000|\\ud[89a-f]/i;

/** Strings (and object keys) with NUL and lone surrogates replaced by U+FFFD; the rest unchanged. */
export function storable<T>(v: T): T {
  if (v === null || typeof v !== 'object') return sanitize(v);
  // One native pass spots the rare value that needs the walk; the common one is returned as is.
  let text: string | undefined;
  try {
    text = JSON.stringify(v);
  } catch {
    return sanitize(v);
  }
  return text !== undefined && ESCAPED_UNSTORABLE.test(text) ? sanitize(v) : v;
}

function sanitize<T>(v: T): T {
  if (typeof v === 'string') return v.replace(UNSTORABLE, '\ufffd') as T;
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(sanitize) as T;
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return v; // Date and the like: not JSON text
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    // A JSON body may hold a "__proto__" key; plain assignment would swallow it.
    Object.defineProperty(out, sanitize(k), {
      value: sanitize(x),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out as T;
}

export function accessLogKey(e: AccessLogEntry): string {
  return `${e.nodeId}|${e.requestId}|${e.time.toISOString()}`;
}
