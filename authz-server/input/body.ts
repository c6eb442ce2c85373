// The request body as the policy sees it: `truncated_body` and `parsed_body`. A body the policy
// cannot see whole is never judged as if it were whole (OPA-Envoy missed partial bodies without a
// Content-Length): one over the route's limit is refused (ERR_BODY_TOO_LARGE), one cut short
// (ERR_BODY_TRUNCATED); on a headers-only route, whose body is never sent to the check, the policy
// sees `truncated_body: true` whenever a body may follow. A body that claims to be JSON but is not is
// refused, not silently ignored:
// the upstream might parse it more leniently than we do. JSON goes through the strict reader
// (duplicate and case-variant keys, rounded numbers refused); a repeated or malformed Content-Type,
// or a charset other than UTF-8 on JSON/form, is refused (ERR_BODY_CONTENT_TYPE). Bodies of other
// types stay unparsed: the body rules of the shipped library and the protocol views refuse them.
import type { ServerDenyCode } from '../../contracts/errors.ts';
import { parseFormEncoded } from './query.ts';
import { parseStrictJson, STRICT_JSON_MAX_DEPTH } from './strict-json.ts';

/** Containers nested deeper than this are refused: deep JSON costs stack in later consumers. */
export const MAX_JSON_DEPTH = STRICT_JSON_MAX_DEPTH;

export const PARTIAL_BODY_HEADER = 'x-envoy-auth-partial-body';

export interface BodyOptions {
  requireCompleteBody: boolean;
  /** The route's limit: a larger body is refused, or read as truncated when requireCompleteBody is off. */
  maxBodyBytes: number;
  /** The route checks headers only: Envoy sends no body, and its absence is not a truncation to refuse. */
  headersOnly?: boolean;
  /** The request's HTTP version as Envoy reports it (`HTTP/1.1`, `HTTP/2`), to know if a body may follow. */
  httpVersion?: string;
}

export type BodyOutcome =
  | {
      ok: true;
      truncated: boolean;
      /** A body was sent (complete or not). */
      present: boolean;
      /** The body's media type (type/subtype, lower-case), null when none was declared. */
      mediaType: string | null;
      parsed?: unknown;
      /** The decoded text of a parsed body. */
      text?: string;
    }
  | { ok: false; code: ServerDenyCode; reason: string };

/** A Content-Type header read as RFC 9110 defines it: `type/subtype *( ; name=value )`. */
export interface MediaType {
  /** type/subtype, lower-case. */
  type: string;
  /** The charset parameter, lower-case, unquoted; null when absent. */
  charset: string | null;
}

export type ContentTypeRead = { ok: true; media: MediaType | null } | { ok: false; reason: string };

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Splits on `sep` outside quoted strings (a quoted parameter may hold ',' or ';'). */
function splitOutsideQuotes(s: string, sep: string): string[] | null {
  const parts: string[] = [];
  let quoted = false;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quoted && c === '\\') i++;
    else if (c === '"') quoted = !quoted;
    else if (!quoted && c === sep) {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  if (quoted) return null;
  parts.push(s.slice(start));
  return parts;
}

/**
 * Reads a Content-Type value. A repeated header (Envoy joins repeats with ",") or a malformed one is
 * refused: which of two types a server believes is anyone's guess.
 */
export function readContentType(value: string | undefined): ContentTypeRead {
  if (value === undefined || value.trim() === '') return { ok: true, media: null };
  const repeats = splitOutsideQuotes(value, ',');
  if (!repeats) return { ok: false, reason: 'content-type has an unterminated quoted string' };
  if (repeats.filter((r) => r.trim() !== '').length > 1)
    return { ok: false, reason: 'content-type is repeated' };
  const parts = splitOutsideQuotes(repeats.find((r) => r.trim() !== '') ?? '', ';') ?? [];
  const [type, subtype, ...extra] = (parts[0] ?? '').trim().split('/');
  if (!type || !subtype || extra.length > 0 || !TOKEN.test(type) || !TOKEN.test(subtype))
    return { ok: false, reason: 'content-type is not a media type' };
  let charset: string | null = null;
  for (const param of parts.slice(1)) {
    if (param.trim() === '') continue;
    const eq = param.indexOf('=');
    const name = param.slice(0, eq).trim().toLowerCase();
    let v = param.slice(eq + 1).trim();
    if (eq === -1 || !TOKEN.test(name))
      return { ok: false, reason: 'content-type has a malformed parameter' };
    if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) v = v.slice(1, -1).replace(/\\(.)/g, '$1');
    else if (!TOKEN.test(v)) return { ok: false, reason: 'content-type has a malformed parameter' };
    if (name === 'charset') {
      if (charset !== null) return { ok: false, reason: 'content-type repeats its charset' };
      charset = v.toLowerCase();
    }
  }
  return { ok: true, media: { type: `${type}/${subtype}`.toLowerCase(), charset } };
}

type MediaKind = 'json' | 'form' | 'other';

/** JSON is application/json or any `+json` type; `text/json` and friends are not (they stay unread). */
export function mediaKind(media: MediaType | null): MediaKind {
  if (!media) return 'other';
  if (media.type === 'application/json' || media.type.endsWith('+json')) return 'json';
  if (media.type === 'application/x-www-form-urlencoded') return 'form';
  return 'other';
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function bodyText(raw: Uint8Array | string): string | null {
  if (typeof raw === 'string') return raw;
  try {
    return utf8.decode(raw);
  } catch {
    return null;
  }
}

type Refusal = Extract<BodyOutcome, { ok: false }>;

const refuse = (code: ServerDenyCode, reason: string): Refusal => ({ ok: false, code, reason });

/** On a headers-only route: whether the request carries a body the check did not see. */
function bodyMayFollow(
  contentLength: string | undefined,
  header: (name: string) => string | undefined,
  httpVersion: string | undefined,
): boolean {
  if (contentLength !== undefined) return Number(contentLength) > 0;
  if (header('transfer-encoding') !== undefined) return true;
  // HTTP/1.x without either has no body (RFC 9112 §6.3); HTTP/2 and HTTP/3 may send one without a length.
  return httpVersion === undefined || !/^HTTP\/1\.[01]$/.test(httpVersion);
}

/**
 * Whether the check received the whole body. Envoy buffers whole bodies up to the route's limit and
 * answers 413 itself above it; a larger or partial body reaching the check (a hand-written Envoy config,
 * `allow_partial_message`) is refused here, or marked truncated when requireCompleteBody is off.
 */
function completeness(
  received: number,
  header: (name: string) => string | undefined,
  options: BodyOptions,
): { ok: true; truncated: boolean } | Refusal {
  const contentLength = header('content-length');
  if (contentLength !== undefined && !/^\d{1,15}$/.test(contentLength.trim()))
    return refuse('ERR_REQUEST_MALFORMED', 'content-length is not a number');
  if (options.headersOnly && received === 0)
    return { ok: true, truncated: bodyMayFollow(contentLength?.trim(), header, options.httpVersion) };
  const tooLarge = received > options.maxBodyBytes;
  const cut =
    header(PARTIAL_BODY_HEADER)?.toLowerCase() === 'true' ||
    (contentLength !== undefined && Number(contentLength) > received);
  if (!options.requireCompleteBody) return { ok: true, truncated: tooLarge || cut };
  if (tooLarge)
    return refuse(
      'ERR_BODY_TOO_LARGE',
      `request body is larger than this route's limit of ${options.maxBodyBytes} bytes (max_request_bytes)`,
    );
  if (cut) return refuse('ERR_BODY_TRUNCATED', 'request body did not reach the authorization check in full');
  return { ok: true, truncated: false };
}

/**
 * Decides whether the body is complete and parses it by content type.
 * `raw` is http.rawBody (bytes, with pack_as_bytes) or http.body (string); `header` reads a request
 * header by lower-case name.
 */
export function readBody(
  raw: Uint8Array | string | undefined,
  header: (name: string) => string | undefined,
  options: BodyOptions,
): BodyOutcome {
  const received =
    raw === undefined ? 0 : typeof raw === 'string' ? Buffer.byteLength(raw, 'utf8') : raw.length;
  const complete = completeness(received, header, options);
  if (!complete.ok) return complete;
  const { truncated } = complete;
  const present = received > 0 || truncated;
  const contentType = readContentType(header('content-type'));
  if (!contentType.ok) {
    if (!present) return { ok: true, truncated: false, present, mediaType: null };
    return { ok: false, code: 'ERR_BODY_CONTENT_TYPE', reason: contentType.reason };
  }
  const mediaType = contentType.media?.type ?? null;
  if (truncated) return { ok: true, truncated: true, present, mediaType };
  if (raw === undefined || received === 0) return { ok: true, truncated: false, present, mediaType };

  const kind = mediaKind(contentType.media);
  if (kind === 'other') return { ok: true, truncated: false, present, mediaType };
  const charset = contentType.media?.charset ?? null;
  if (charset !== null && charset !== 'utf-8' && charset !== 'utf8') {
    return {
      ok: false,
      code: 'ERR_BODY_CONTENT_TYPE',
      reason: `request body charset ${charset.slice(0, 40)} is not UTF-8`,
    };
  }
  const text = bodyText(raw);
  if (text === null)
    return { ok: false, code: 'ERR_BODY_UNPARSABLE', reason: 'request body is not valid UTF-8' };

  if (kind === 'json') {
    const json = parseStrictJson(text, MAX_JSON_DEPTH);
    if (!json.ok) {
      const reason =
        json.problem === 'too_deep'
          ? `request body nests deeper than ${MAX_JSON_DEPTH} levels`
          : json.problem === 'syntax'
            ? 'request body is not valid JSON'
            : `request body is ambiguous JSON: ${json.message}`;
      return { ok: false, code: 'ERR_BODY_UNPARSABLE', reason };
    }
    return { ok: true, truncated: false, present, mediaType, parsed: json.value, text };
  }
  const form = parseFormEncoded(text);
  if (!form.ok) {
    return {
      ok: false,
      code: 'ERR_BODY_UNPARSABLE',
      reason: `request body is not valid form data: ${form.reason}`,
    };
  }
  return { ok: true, truncated: false, present, mediaType, parsed: form.values, text };
}
