// The request body as the policy sees it: `truncated_body` and `parsed_body`. A body the policy
// cannot see whole is never judged as if it were whole (OPA-Envoy missed partial bodies without a
// Content-Length), and a body that claims to be JSON but is not is refused, not silently ignored:
// the upstream might parse it more leniently than we do.
import type { ServerDenyCode } from '../../contracts/errors.ts';
import { parseFormEncoded } from './query.ts';

/** Containers nested deeper than this are refused: deep JSON costs stack in later consumers. */
export const MAX_JSON_DEPTH = 64;

export const PARTIAL_BODY_HEADER = 'x-envoy-auth-partial-body';

export interface BodyOptions {
  requireCompleteBody: boolean;
  maxBodyBytes: number;
}

export type BodyOutcome =
  | {
      ok: true;
      truncated: boolean;
      parsed?: unknown /** The decoded text of a parsed body (protocol decoders re-read it strictly). */;
      text?: string;
    }
  | { ok: false; code: ServerDenyCode; reason: string };

type MediaKind = 'json' | 'form' | 'other';

/** Media type without parameters, lower-cased: JSON is application/json or any `+json` type. */
export function mediaKind(contentType: string | undefined): MediaKind {
  if (!contentType) return 'other';
  const semi = contentType.indexOf(';');
  const type = (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  if (type === 'application/json' || (type.endsWith('+json') && type.indexOf('/') > 0)) return 'json';
  if (type === 'application/x-www-form-urlencoded') return 'form';
  return 'other';
}

/** True when a parsed JSON value nests arrays/objects more than `limit` levels deep. */
function nestsDeeperThan(value: unknown, limit: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (limit === 0) return true;
  if (Array.isArray(value)) {
    for (const item of value) if (nestsDeeperThan(item, limit - 1)) return true;
    return false;
  }
  for (const key in value) {
    if (nestsDeeperThan((value as Record<string, unknown>)[key], limit - 1)) return true;
  }
  return false;
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

  let truncated = header(PARTIAL_BODY_HEADER)?.toLowerCase() === 'true' || received > options.maxBodyBytes;
  const contentLength = header('content-length');
  if (contentLength !== undefined) {
    if (!/^\d{1,15}$/.test(contentLength.trim())) {
      return { ok: false, code: 'ERR_REQUEST_MALFORMED', reason: 'content-length is not a number' };
    }
    if (Number(contentLength) > received) truncated = true;
  }
  if (truncated) {
    if (options.requireCompleteBody) {
      return {
        ok: false,
        code: 'ERR_BODY_TRUNCATED',
        reason: 'request body did not reach the authorization check in full',
      };
    }
    return { ok: true, truncated: true };
  }
  if (raw === undefined || received === 0) return { ok: true, truncated: false };

  const kind = mediaKind(header('content-type'));
  if (kind === 'other') return { ok: true, truncated: false };
  const text = bodyText(raw);
  if (text === null)
    return { ok: false, code: 'ERR_BODY_UNPARSABLE', reason: 'request body is not valid UTF-8' };

  if (kind === 'json') {
    let parsed: unknown;
    try {
      // JSON.parse defines "__proto__" as an own data key, never as the prototype: no pollution.
      parsed = JSON.parse(text);
    } catch {
      return { ok: false, code: 'ERR_BODY_UNPARSABLE', reason: 'request body is not valid JSON' };
    }
    if (nestsDeeperThan(parsed, MAX_JSON_DEPTH)) {
      return {
        ok: false,
        code: 'ERR_BODY_UNPARSABLE',
        reason: `request body nests deeper than ${MAX_JSON_DEPTH} levels`,
      };
    }
    return { ok: true, truncated: false, parsed, text };
  }
  const form = parseFormEncoded(text);
  if (!form.ok) {
    return {
      ok: false,
      code: 'ERR_BODY_UNPARSABLE',
      reason: `request body is not valid form data: ${form.reason}`,
    };
  }
  return { ok: true, truncated: false, parsed: form.values, text };
}
