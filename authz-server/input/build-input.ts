// Builds the policy input document from a decoded CheckRequest (the `buildInput` step of a Check).
// Everything a policy could be fooled by is settled here, before the policy runs: a non-canonical
// path, undecodable query, unparsable or incomplete body each become a typed deny, never an input
// with the doubtful part left out. Pure and synchronous; it runs on every Check, so it copies only
// the objects it has to change.

import { AUTHZ_DEFAULTS } from '../../config/authz-defaults.ts';
import type { ServerDenyCode } from '../../contracts/errors.ts';
import { type DecodedRouteContext, decodeRouteContext } from '../../contracts/ext-authz.ts';
import { type BodyOptions, readBody } from './body.ts';
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
import { readRequestHeaders } from './request-headers.ts';

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
  /**
   * The body limit for routes whose context_extensions do not carry their own (`max_request_bytes`, which
   * the translator always sends): a hand-written Envoy config. Default AUTHZ_DEFAULTS.maxBodyBytes.
   */
  maxBodyBytes?: number;
  /** Computes `input.protocol` for routes whose context_extensions declare `protocol`. */
  protocol?: ProtocolHook;
}

export type BuildInputResult =
  | { ok: true; input: PolicyInput }
  | { ok: false; code: ServerDenyCode; reason: string };

const VERSION: InputVersion = Object.freeze({ ext_authz: 'v3', encoding: 'protojson' });

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function malformed(reason: string): BuildInputResult {
  return { ok: false, code: 'ERR_REQUEST_MALFORMED', reason };
}

function routeOf(rc: DecodedRouteContext): RouteRef | null {
  if (rc.routeId === null && rc.target === null && rc.checksum === null) return null;
  return {
    id: rc.routeId,
    target: rc.target,
    checksum: rc.checksum,
    ...(rc.oauthResource
      ? { resource: rc.oauthResource.resource, resource_metadata: rc.oauthResource.metadataUrl }
      : {}),
  };
}

type Failure = Extract<BuildInputResult, { ok: false }>;

/** The request target (path and query), split here and never handed to a URL parser. */
function readTarget(
  target: string,
): { ok: true; segments: string[]; query: PolicyInput['parsed_query'] } | Failure {
  const q = target.indexOf('?');
  const rawPath = q === -1 ? target : target.slice(0, q);
  if (rawPath.charCodeAt(0) !== 0x2f) {
    // `*` (asterisk form), `host:443` (authority form), `http://…` (absolute form): not a path at all.
    return failure('ERR_REQUEST_MALFORMED', 'request target is not an absolute path');
  }
  const path = checkRawPath(rawPath);
  if (!path.ok) return failure('ERR_PATH_NONCANONICAL', `non-canonical path: ${path.reason}`);
  const rawQuery = q === -1 ? '' : target.slice(q + 1);
  if (rawQuery.includes('#')) return failure('ERR_REQUEST_MALFORMED', 'request target has a fragment');
  const query = parseFormEncoded(rawQuery);
  if (!query.ok) return failure('ERR_REQUEST_MALFORMED', `query string: ${query.reason}`);
  return { ok: true, segments: path.segments, query: query.values };
}

function failure(code: Failure['code'], reason: string): Failure {
  return { ok: false, code, reason };
}

/** http.rawBody (bytes, with pack_as_bytes) or http.body (string); empty reads as no body. */
function rawBodyOf(http: Obj): Uint8Array | string | undefined {
  const rawBody = http['rawBody'];
  const bodyString = http['body'];
  if (rawBody instanceof Uint8Array && rawBody.length > 0) return rawBody;
  return typeof bodyString === 'string' && bodyString !== '' ? bodyString : undefined;
}

/** How this route's body is read: its own limit and mode (context_extensions), else the server's limit. */
function bodyOptions(rc: DecodedRouteContext, http: Obj, options: BuildInputOptions): BodyOptions {
  const httpVersion = typeof http['protocol'] === 'string' ? http['protocol'] : undefined;
  return {
    requireCompleteBody: options.requireCompleteBody,
    maxBodyBytes:
      rc.body?.mode === 'buffer'
        ? rc.body.maxRequestBytes
        : (options.maxBodyBytes ?? AUTHZ_DEFAULTS.maxBodyBytes),
    ...(rc.body?.mode === 'headers_only' ? { headersOnly: true } : {}),
    ...(httpVersion !== undefined ? { httpVersion } : {}),
  };
}

/** `input.protocol` for a route that declares a protocol view; plain HTTP is the absence of one. */
function protocolView(
  ctx: Omit<ProtocolContext, 'name'>,
  name: string | null,
  hook: ProtocolHook | undefined,
): { ok: true; value?: unknown } | Failure {
  if (name === null || name === 'http') return { ok: true };
  if (!hook) {
    // The route's policy expects a protocol view; without one it would judge a partial picture.
    return failure(
      'ERR_PROTOCOL_INVALID',
      `route declares protocol "${name}" but no protocol support is loaded`,
    );
  }
  return hook({ name, ...ctx });
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
  const targetText = http['path'];
  if (typeof targetText !== 'string' || targetText === '') return malformed('request path is missing');
  const target = readTarget(targetText);
  if (!target.ok) return target;

  const header = readRequestHeaders(http).get;
  const routeContext = decodeRouteContext(attributes['contextExtensions']);
  const body = readBody(rawBodyOf(http), header, bodyOptions(routeContext, http, options));
  if (!body.ok) return body;

  const converted = attributesToProtojson(attributes, request, http);
  if (!converted.ok) return malformed(converted.reason);

  const route = routeOf(routeContext);
  const input: PolicyInput = {
    attributes: converted.attributes,
    parsed_path: target.segments,
    parsed_query: target.query,
    truncated_body: body.truncated,
    version: VERSION,
    identity: auth.identity,
    identity_error: auth.identityError,
    route,
  };
  if (body.parsed !== undefined) input.parsed_body = body.parsed;
  const protocol = protocolView(
    {
      method,
      header,
      parsedPath: target.segments,
      parsedQuery: target.query,
      parsedBody: body.parsed,
      bodyText: body.text,
      bodyPresent: body.present,
      bodyMediaType: body.mediaType,
      truncatedBody: body.truncated,
      route,
      rewrite: routeContext.rewrite,
    },
    routeContext.protocol,
    options.protocol,
  );
  if (!protocol.ok) return protocol;
  if ('value' in protocol) input.protocol = protocol.value;
  return { ok: true, input };
}
