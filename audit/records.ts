// The shapes the audit trail stores, and the canonical form its hash chain is computed over.
import { createHash } from 'node:crypto';
import type { DecisionEvent } from '../contracts/decision.ts';
import type { AccessLogEntry } from './access-log-service.ts';

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
  /** W3C trace id of the request's trace, when it had one (stored as NULL otherwise). */
  trace_id?: string | null;
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
    ...(e.traceId ? { trace_id: e.traceId } : {}),
  };
}

/**
 * JSON with object keys sorted at every level: the same record always hashes the same.
 *
 * The chain of every existing store was computed with the first version of this function, so its output
 * is frozen byte for byte (test/unit/audit-canonical.test.ts checks it against a copy of that version):
 * `JSON.stringify` for strings, numbers and booleans; `null` for `undefined`; object members whose value
 * is `undefined` left out, keys in code-unit order; no `toJSON` (a Date is `{}`); an array hole written
 * as nothing (`[,1]`); and what `JSON.stringify` gives for a function or symbol (`undefined`, written
 * as the word in an object and as nothing in an array). Written as one walk, with no intermediate
 * arrays, it is several times faster than the map/filter/sort/join it replaces.
 */
export function canonicalJson(v: unknown): string {
  return canon(v);
}

/** One NUL or lone surrogate: what storable replaces. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is precisely what has to be found
const UNSTORABLE_ONE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Cleared by `canon` on meeting anything `JSON.stringify` would write other than as a key reordering. */
let plainJson = true;

function canon(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return quote(v);
    case 'number':
      // What JSON.stringify writes: -0 as 0, NaN and ±Infinity as null.
      return Number.isFinite(v) ? String(v) : 'null';
    case 'boolean':
      return v ? 'true' : 'false';
    case 'undefined':
      return 'null';
    case 'object':
      if (v === null) return 'null';
      return Array.isArray(v) ? canonArray(v) : canonObject(v);
    default:
      // A function or symbol (undefined, as JSON.stringify gives it); a bigint throws, as it always did.
      plainJson = false;
      return JSON.stringify(v) as string;
  }
}

/** Cleared by `quote` on meeting a string with NUL or a lone surrogate (what storable replaces). */
let storableText = true;

/** JSON.stringify(s), skipping the call for the usual string: nothing to escape, no surrogates. */
function quote(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) {
      if (storableText && UNSTORABLE_ONE.test(s)) storableText = false;
      return JSON.stringify(s);
    }
  }
  return `"${s}"`;
}

function canonArray(a: unknown[]): string {
  if (Object.getPrototypeOf(a) !== Array.prototype) plainJson = false;
  let out = '[';
  for (let i = 0; i < a.length; i++) {
    if (i > 0) out += ',';
    const x = a[i];
    if (x === undefined && !(i in a)) {
      plainJson = false; // a hole: Array.prototype.map skipped it and join wrote nothing
      continue;
    }
    const t = canon(x);
    if (t !== undefined) out += t; // join writes nothing for undefined (a function, a symbol)
  }
  return out + ']';
}

function canonObject(o: object): string {
  const proto = Object.getPrototypeOf(o);
  if (proto !== Object.prototype && proto !== null) plainJson = false;
  const keys = Object.keys(o);
  // Keys usually arrive sorted already (they were written from a sorted or a fixed shape); check first.
  for (let i = 1; i < keys.length; i++) {
    if (keys[i - 1]! > keys[i]!) {
      keys.sort();
      break;
    }
  }
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const x = (o as Record<string, unknown>)[k];
    if (x === undefined) continue;
    if (out.length > 1) out += ',';
    out += `${quote(k)}:${canon(x)}`;
  }
  return out + '}';
}

/** A record's covered fields in canonical form, and its JSON columns as they are to be stored. */
export interface ChainText {
  /** The canonical JSON the chain hash is computed over (with the previous hash in front). */
  text: string;
  /**
   * Each JSON column's value as JSON text: its canonical form when the value is plain JSON data (then
   * the same JSON value as `JSON.stringify` writes, keys in another order, which jsonb does not keep),
   * otherwise `JSON.stringify`'s text.
   */
  actor: string;
  input: string;
  result: string;
  shadow: string;
}

// Object.prototype or Array.prototype with a toJSON would make JSON.stringify write plain data otherwise.
const prototypesPlain = () => !('toJSON' in Object.prototype) && !('toJSON' in Array.prototype);

/** canon(v), and JSON.stringify(v)'s equivalent text for storing it: the same string when v is plain. */
function canonAndStored(v: unknown, plainProtos: boolean): [canonical: string, stored: string] {
  plainJson = plainProtos;
  const c = canon(v);
  return [c, plainJson ? c : (JSON.stringify(v) as string)];
}

const member = (quotedKey: string, v: unknown): string =>
  v === undefined ? '' : `,${quotedKey}:${canon(v)}`;

/**
 * The covered fields of `r` (see chainHash) in canonical form — keys written in their sorted order
 * directly, no intermediate object — and its JSON columns; throws as chainHash does.
 */
export function chainText(seq: number, r: DecisionRecord): ChainText {
  const time = new Date(r.time).toISOString();
  const plainProtos = prototypesPlain();
  const [actor, actorStored] = canonAndStored(r.actor ?? null, plainProtos);
  const [input, inputStored] = canonAndStored(r.input ?? null, plainProtos);
  const [result, resultStored] = canonAndStored(r.result ?? null, plainProtos);
  // Only present when a shadow policy ran, so records from before shadow mode hash as they did.
  const [shadow, shadowStored] = r.shadow
    ? canonAndStored(r.shadow, plainProtos)
    : [null, JSON.stringify(r.shadow ?? null) as string];
  // Sorted: actor decision decision_id host http_status input issuer method path policy_revision reason
  // reason_code request_id result route_id seq shadow subject target time trace_id. trace_id only when
  // set (NULL as stored reads back null), so records from before traces hash as they did.
  const text =
    `{"actor":${actor}${member('"decision"', r.decision)}${member('"decision_id"', r.decision_id)}` +
    `${member('"host"', r.host)}${member('"http_status"', r.http_status)},"input":${input}` +
    `${member('"issuer"', r.issuer)}${member('"method"', r.method)}${member('"path"', r.path)}` +
    `${member('"policy_revision"', r.policy_revision)}${member('"reason"', r.reason)}` +
    `${member('"reason_code"', r.reason_code)}${member('"request_id"', r.request_id)},"result":${result}` +
    `${member('"route_id"', r.route_id)}${member('"seq"', seq)}${shadow === null ? '' : `,"shadow":${shadow}`}` +
    `${member('"subject"', r.subject)}${member('"target"', r.target)},"time":"${time}"` +
    `${member('"trace_id"', r.trace_id ?? undefined)}}`;
  return { text, actor: actorStored, input: inputStored, result: resultStored, shadow: shadowStored };
}

/** sha256(prevHash ‖ canonical text), hex: one chain link. */
export function linkHash(prevHash: string, text: string): string {
  return createHash('sha256').update(prevHash).update(text).digest('hex');
}

/** The fields covered by the chain (everything a reader relies on), in canonical form. */
export function chainHash(prevHash: string, seq: number, r: DecisionRecord): string {
  return linkHash(prevHash, chainText(seq, r).text);
}

// PostgreSQL refuses NUL in text and jsonb, and lone UTF-16 surrogates in jsonb; a request body can
// carry either. Left in, one such record would fail its batch on every retry and stall the shipper.
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is precisely what has to be found
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** JSON.stringify writes NUL and lone surrogates as `\u` escapes (valid pairs stay raw). */
const ESCAPED_UNSTORABLE = /\\u0000|\\ud[89a-f]/i;

/**
 * chainText of `storable(r)`, when that is `r` as it stands: no stored field holds a string storable
 * would change. Then the record is hashed and stored as it is, in one walk instead of storable's
 * JSON.stringify, the canonical walk and a JSON.stringify per JSON column. Null when storable would (or
 * might: an escape-like text) change a stored field, or chainText throws; the caller then takes the long
 * way (storable, chainHash, JSON.stringify), which gives — or throws — what it always did.
 *
 * Every string in a stored field goes through `quote` for the chain text, which notes NUL and lone
 * surrogates, except `time` (covered normalised, stored as given) and `latency_us`: checked apart.
 */
export function chainTextAsStored(seq: number, r: DecisionRecord): ChainText | null {
  const { time, latency_us } = r;
  if (typeof time !== 'string' || UNSTORABLE_ONE.test(time) || typeof latency_us !== 'number') return null;
  storableText = true;
  let c: ChainText;
  try {
    c = chainText(seq, r);
  } catch {
    return null;
  }
  return storableText ? c : null;
}

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

/** An access-log entry as stored and chained (the row's columns, JSON-safe). */
export interface AccessLogRecord {
  entry_key: string;
  request_id: string;
  decision_id: string | null;
  node_id: string;
  time: string;
  route: string;
  method: string;
  authority: string;
  path: string;
  response_code: number;
  response_code_details: string;
  bytes_sent: number;
  bytes_received: number;
  duration_ms: number;
  upstream_host: string;
  upstream_cluster: string;
  policy_revision: string | null;
  metadata: unknown;
}

export interface StoredAccessLog extends AccessLogRecord {
  id: number;
  /** Null only on a row nobody chained: none is stored that way (docs/audit.md). */
  seq: number | null;
  prev_hash: string | null;
  hash: string | null;
}

/** The columns of an access-log row the chain covers, in insert order. */
export const ACCESS_LOG_RECORD_COLUMNS = [
  'entry_key',
  'request_id',
  'decision_id',
  'node_id',
  'time',
  'route',
  'method',
  'authority',
  'path',
  'response_code',
  'response_code_details',
  'bytes_sent',
  'bytes_received',
  'duration_ms',
  'upstream_host',
  'upstream_cluster',
  'policy_revision',
  'metadata',
] as const satisfies readonly (keyof AccessLogRecord)[];

/**
 * The entry as it will read back from the store: storable text, time to the millisecond, metadata
 * through JSON (what jsonb keeps). Hashing this, the writer and a later verifier agree.
 */
export function toAccessLogRecord(e: AccessLogEntry): AccessLogRecord {
  return {
    entry_key: storable(accessLogKey(e)),
    request_id: storable(e.requestId),
    decision_id: e.decisionId === null ? null : storable(e.decisionId),
    node_id: storable(e.nodeId),
    time: e.time.toISOString(),
    route: storable(e.route),
    method: storable(e.method),
    authority: storable(e.authority),
    path: storable(e.path),
    response_code: e.responseCode,
    response_code_details: storable(e.responseCodeDetails),
    bytes_sent: e.bytesSent,
    bytes_received: e.bytesReceived,
    duration_ms: e.durationMs,
    upstream_host: storable(e.upstreamHost),
    upstream_cluster: storable(e.upstreamCluster),
    policy_revision: e.policyRevision === null ? null : storable(e.policyRevision),
    metadata: JSON.parse(JSON.stringify(storable(e.metadata ?? {})) ?? 'null'),
  };
}

const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v));
const textOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

/** A stored access-log row (either engine's types) in the shape its hash was computed over. */
export function accessLogFromRow(r: Record<string, unknown>): StoredAccessLog {
  const metadata = typeof r['metadata'] === 'string' ? JSON.parse(r['metadata']) : (r['metadata'] ?? null);
  return {
    id: num(r['id']),
    seq: r['seq'] === null || r['seq'] === undefined ? null : num(r['seq']),
    prev_hash: textOrNull(r['prev_hash']),
    hash: textOrNull(r['hash']),
    entry_key: String(r['entry_key']),
    request_id: String(r['request_id']),
    decision_id: textOrNull(r['decision_id']),
    node_id: String(r['node_id']),
    time: r['time'] instanceof Date ? r['time'].toISOString() : new Date(String(r['time'])).toISOString(),
    route: String(r['route']),
    method: String(r['method']),
    authority: String(r['authority']),
    path: String(r['path']),
    response_code: num(r['response_code']),
    response_code_details: String(r['response_code_details']),
    bytes_sent: num(r['bytes_sent']),
    bytes_received: num(r['bytes_received']),
    duration_ms: num(r['duration_ms']),
    upstream_host: String(r['upstream_host']),
    upstream_cluster: String(r['upstream_cluster']),
    policy_revision: textOrNull(r['policy_revision']),
    metadata,
  };
}

/** One access-log chain link: sha256(prev ‖ canonical JSON of the covered columns and seq). */
export function accessLogHash(prevHash: string, seq: number, r: AccessLogRecord): string {
  const covered: Record<string, unknown> = { seq };
  for (const c of ACCESS_LOG_RECORD_COLUMNS) covered[c] = r[c];
  return linkHash(prevHash, canonicalJson(covered));
}
