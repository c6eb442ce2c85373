// The contract between the xDS translator (which writes Envoy's routes) and the authz server (which
// reads Envoy's CheckRequests): context_extensions keys and the headers Chaperone owns. Both sides
// import this module, so a key cannot be renamed on one side only.

/** Every header Chaperone sets upstream starts with this; Envoy strips client-sent ones at the edge. */
export const CHAPERONE_HEADER_PREFIX = 'x-chaperone-';

/** Sent to the client and the upstream on every decision: joins a response to its audit record. */
export const DECISION_ID_HEADER = `${CHAPERONE_HEADER_PREFIX}decision-id`;

/**
 * Set on the upstream request only when a decision carries `masks`: Envoy's composite filter (after
 * ext_authz) opens the mask processor's ext_proc stream only for requests that have it, and a filter
 * after it removes the header, so it never reaches the upstream. A client-sent one is removed at the
 * edge with every other `x-chaperone-*` header, before ext_authz runs.
 */
export const MASK_HEADER = `${CHAPERONE_HEADER_PREFIX}mask`;
export const MASK_HEADER_VALUE = 'on';

/** Headers a client must never be able to assert itself; stripped from every allowed request. */
export const CLIENT_IDENTITY_HEADERS: readonly string[] = [
  'x-forwarded-user',
  'x-forwarded-email',
  'x-forwarded-groups',
  'x-forwarded-preferred-username',
  'x-auth-request-user',
  'x-auth-request-email',
  'x-auth-request-groups',
];

/** What a route tells the authz server about itself (ext_authz `check_settings.context_extensions`). */
export interface RouteContext {
  routeId: string;
  target: string;
  /** Content hash of the config revision Envoy runs: the authz server can detect skew. */
  checksum: string;
  /** The route's protocol view (`http` = none). */
  protocol: string;
  /** Set when the route rewrites its prefix: protocol decoders must judge the upstream's path. */
  rewrite: { pathPrefix: string; prefixRewrite: string } | null;
  /** How Envoy hands the request body to the check on this route. */
  body: RouteBody;
  /**
   * An MCP target that publishes OAuth 2.0 Protected Resource Metadata (RFC 9728): its resource
   * identifier (RFC 8707; the URL MCP clients connect to) and where the metadata is served. Tokens of
   * people must name `resource` in `aud`; a 401 points to `metadataUrl`.
   */
  oauthResource?: { resource: string; metadataUrl: string } | null;
}

/**
 * `buffer`: Envoy buffers the whole body, up to `maxRequestBytes`, before the check (a larger one is
 * answered 413 and never checked); the authz server refuses any body over the same limit, so the
 * policy never judges part of a body. `headers_only`: the check runs on the headers alone and the body
 * streams to the upstream unread (uploads on targets whose policy does not read bodies).
 */
export type RouteBody = { mode: 'buffer'; maxRequestBytes: number } | { mode: 'headers_only' };

const KEY = {
  routeId: 'route_id',
  target: 'target',
  checksum: 'checksum',
  protocol: 'protocol',
  pathPrefix: 'path_prefix',
  prefixRewrite: 'prefix_rewrite',
  body: 'body',
  maxRequestBytes: 'max_request_bytes',
  resource: 'resource',
  resourceMetadata: 'resource_metadata',
} as const;

/** Translator side: the context_extensions map of a route. */
export function encodeRouteContext(r: RouteContext): Record<string, string> {
  return {
    [KEY.routeId]: r.routeId,
    [KEY.target]: r.target,
    [KEY.checksum]: r.checksum,
    [KEY.protocol]: r.protocol,
    ...(r.rewrite
      ? { [KEY.pathPrefix]: r.rewrite.pathPrefix, [KEY.prefixRewrite]: r.rewrite.prefixRewrite }
      : {}),
    [KEY.body]: r.body.mode,
    ...(r.body.mode === 'buffer' ? { [KEY.maxRequestBytes]: String(r.body.maxRequestBytes) } : {}),
    ...(r.oauthResource
      ? { [KEY.resource]: r.oauthResource.resource, [KEY.resourceMetadata]: r.oauthResource.metadataUrl }
      : {}),
  };
}

/** What the authz server can rely on from a CheckRequest's context_extensions (absent keys → null). */
export interface DecodedRouteContext {
  routeId: string | null;
  target: string | null;
  checksum: string | null;
  protocol: string | null;
  rewrite: { pathPrefix: string; prefixRewrite: string } | null;
  /** null when the route does not say (a hand-written Envoy config): the server's own limit applies. */
  body: RouteBody | null;
  /** The MCP target's RFC 8707 resource and its RFC 9728 metadata URL, when it publishes them. */
  oauthResource: { resource: string; metadataUrl: string } | null;
}

/** `buffer` with a positive decimal limit, or `headers_only`; anything else is not a route's setting. */
function decodeBody(mode: string | null, limit: string | null): RouteBody | null {
  if (mode === 'headers_only') return { mode };
  if (mode !== 'buffer' || limit === null || !/^[1-9]\d{0,9}$/.test(limit)) return null;
  return { mode, maxRequestBytes: Number(limit) };
}

/** Authz side: reads context_extensions as decoded by proto-loader (a plain string map). */
export function decodeRouteContext(ext: unknown): DecodedRouteContext {
  const m = ext !== null && typeof ext === 'object' ? (ext as Record<string, unknown>) : {};
  const str = (k: string): string | null => {
    const v = m[k];
    return typeof v === 'string' && v !== '' ? v : null;
  };
  const pathPrefix = str(KEY.pathPrefix);
  const prefixRewrite = typeof m[KEY.prefixRewrite] === 'string' ? (m[KEY.prefixRewrite] as string) : null;
  return {
    routeId: str(KEY.routeId),
    target: str(KEY.target),
    checksum: str(KEY.checksum),
    protocol: str(KEY.protocol),
    rewrite: pathPrefix !== null && prefixRewrite !== null ? { pathPrefix, prefixRewrite } : null,
    body: decodeBody(str(KEY.body), str(KEY.maxRequestBytes)),
    oauthResource: oauthResourceOf(str(KEY.resource), str(KEY.resourceMetadata)),
  };
}

/** Both keys or neither: a resource without its metadata URL (or the reverse) is not a route's setting. */
function oauthResourceOf(
  resource: string | null,
  metadataUrl: string | null,
): DecodedRouteContext['oauthResource'] {
  return resource !== null && metadataUrl !== null ? { resource, metadataUrl } : null;
}

/**
 * Dynamic metadata keys (under the ext_authz filter's namespace) that ask the ext_proc response
 * processor to look at a response: `masks` (rewrite the body), `mcp_filter` (drop what the caller may
 * not use from an MCP listing), `usage` (count the tokens an LLM upstream reports). A decision without
 * any of them needs no response processing.
 */
export const RESPONSE_PROCESSING_KEYS = ['masks', 'mcp_filter', 'usage'] as const;
