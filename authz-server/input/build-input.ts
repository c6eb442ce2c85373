// Builds the policy input document from a decoded CheckRequest (the `buildInput` step of a Check).
// Everything a policy could be fooled by is settled here, before the policy runs: a non-canonical
// path, undecodable query, unparsable or incomplete body each become a typed deny, never an input
// with the doubtful part left out. Pure and synchronous; it runs on every Check, so it copies only
// the objects it has to change.

import { AUTHZ_DEFAULTS } from '../../config/authz-defaults.ts';
import type { AuthzErrorCode } from '../../contracts/errors.ts';
import { type DecodedRouteContext, decodeRouteContext } from '../../contracts/ext-authz.ts';
import { readBody } from './body.ts';
import type {
  IdentityErrorInfo,
  InputIdentity,
  InputVersion,
  PolicyInput,
  ProtocolContext,
  ProtocolHook,
  RouteRef,
} from './policy-input.ts';
import { attributesToProtojson } from './protojson.ts';
import { parseFormEncoded } from './query.ts';
import { checkRawPath } from './raw-path.ts';

export type {
  IdentityErrorInfo,
  InputIdentity,
  InputVersion,
  PolicyInput,
  ProtocolContext,
  ProtocolHook,
  ProtocolOutcome,
  RouteRef,
} from './policy-input.ts';
export { checkRawPath, type RawPathCheck } from './raw-path.ts';

export interface InputAuth {
  identity: InputIdentity | null;
  identityError: IdentityErrorInfo | null;
}

export interface BuildInputOptions {
  /** Deny (ERR_BODY_TRUNCATED) instead of evaluating with `truncated_body: true` and no parsed_body. */
  requireCompleteBody: boolean;
  /** Larger bodies count as truncated. Default AUTHZ_DEFAULTS.maxBodyBytes. */
  maxBodyBytes?: number;
  /** Computes `input.protocol` for routes whose context_extensions declare `protocol`. */
  protocol?: ProtocolHook;
}

export type BuildInputResult =
  | { ok: true; input: PolicyInput }
  | { ok: false; code: AuthzErrorCode; reason: string };

const VERSION: InputVersion = Object.freeze({ ext_authz: 'v3', encoding: 'protojson' });

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function malformed(reason: string): BuildInputResult {
  return { ok: false, code: 'ERR_REQUEST_MALFORMED', reason };
}

/** Header lookup by lower-case name; Envoy sends `headers`, or `headerMap` with encode_raw_headers. */
function headerReader(http: Obj): (name: string) => string | undefined {
  const headers = http['headers'];
  if (isObject(headers)) {
    return (name) => {
      const v = Object.hasOwn(headers, name) ? headers[name] : undefined;
      return typeof v === 'string' ? v : undefined;
    };
  }
  const map = http['headerMap'];
  const list = isObject(map) && Array.isArray(map['headers']) ? (map['headers'] as unknown[]) : [];
  return (name) => {
    const values: string[] = [];
    for (const h of list) {
      if (!isObject(h) || typeof h['key'] !== 'string' || h['key'].toLowerCase() !== name) continue;
      if (typeof h['value'] === 'string' && h['value'] !== '') values.push(h['value']);
      else if (h['rawValue'] instanceof Uint8Array) values.push(Buffer.from(h['rawValue']).toString('utf8'));
    }
    // Envoy joins repeated headers with ',' in the `headers` map; do the same.
    return values.length === 0 ? undefined : values.join(',');
  };
}

function routeOf(rc: DecodedRouteContext): RouteRef | null {
  if (rc.routeId === null && rc.target === null && rc.checksum === null) return null;
  return { id: rc.routeId, target: rc.target, checksum: rc.checksum };
}

/**
 * The policy input for one CheckRequest (decoded by proto-loader with keepCase false, longs Number,
 * enums String, defaults false, oneofs false), or the typed reason it must be denied unevaluated.
 */
export function buildInput(req: unknown, auth: InputAuth, options: BuildInputOptions): BuildInputResult {
  const attributes = isObject(req) ? req['attributes'] : undefined;
  if (!isObject(attributes)) return malformed('CheckRequest has no attributes');
  const request = attributes['request'];
  const http = isObject(request) ? request['http'] : undefined;
  if (!isObject(request) || !isObject(http)) return malformed('CheckRequest has no HTTP request attributes');
  const method = http['method'];
  if (typeof method !== 'string' || method === '') return malformed('request method is missing');
  const target = http['path'];
  if (typeof target !== 'string' || target === '') return malformed('request path is missing');

  // path: the raw request target is split here, never handed to a URL parser.
  const q = target.indexOf('?');
  const rawPath = q === -1 ? target : target.slice(0, q);
  if (rawPath.charCodeAt(0) !== 0x2f) {
    // `*` (asterisk form), `host:443` (authority form), `http://…` (absolute form): not a path at all.
    return malformed('request target is not an absolute path');
  }
  const path = checkRawPath(rawPath);
  if (!path.ok) {
    return { ok: false, code: 'ERR_PATH_NONCANONICAL', reason: `non-canonical path: ${path.reason}` };
  }

  const rawQuery = q === -1 ? '' : target.slice(q + 1);
  if (rawQuery.includes('#')) return malformed('request target has a fragment');
  const query = parseFormEncoded(rawQuery);
  if (!query.ok) return malformed(`query string: ${query.reason}`);

  const header = headerReader(http);
  const rawBody = http['rawBody'];
  const bodyString = http['body'];
  const raw =
    rawBody instanceof Uint8Array && rawBody.length > 0
      ? rawBody
      : typeof bodyString === 'string' && bodyString !== ''
        ? bodyString
        : undefined;
  const body = readBody(raw, header, {
    requireCompleteBody: options.requireCompleteBody,
    maxBodyBytes: options.maxBodyBytes ?? AUTHZ_DEFAULTS.maxBodyBytes,
  });
  if (!body.ok) return body;

  const converted = attributesToProtojson(attributes, request, http);
  if (!converted.ok) return malformed(converted.reason);

  const routeContext = decodeRouteContext(attributes['contextExtensions']);
  const route = routeOf(routeContext);
  const input: PolicyInput = {
    attributes: converted.attributes,
    parsed_path: path.segments,
    parsed_query: query.values,
    truncated_body: body.truncated,
    version: VERSION,
    identity: auth.identity,
    identity_error: auth.identityError,
    route,
  };
  if (body.parsed !== undefined) input.parsed_body = body.parsed;

  const protocolName = routeContext.protocol;
  // Plain HTTP is the absence of a protocol view, not a protocol to parse.
  if (protocolName !== null && protocolName !== 'http') {
    if (!options.protocol) {
      // The route's policy expects a protocol view; without one it would judge a partial picture.
      return {
        ok: false,
        code: 'ERR_PROTOCOL_INVALID',
        reason: `route declares protocol "${protocolName}" but no protocol support is loaded`,
      };
    }
    const ctx: ProtocolContext = {
      name: protocolName,
      method,
      header,
      parsedPath: path.segments,
      parsedQuery: query.values,
      parsedBody: body.parsed,
      bodyText: body.text,
      bodyPresent: body.present,
      bodyMediaType: body.mediaType,
      truncatedBody: body.truncated,
      route,
      rewrite: routeContext.rewrite,
    };
    const outcome = options.protocol(ctx);
    if (!outcome.ok) return outcome;
    input.protocol = outcome.value;
  }
  return { ok: true, input };
}
