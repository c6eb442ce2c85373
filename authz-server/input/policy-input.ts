// The policy input document: what `input` is inside Rego. OPA-Envoy's document (attributes as
// protojson, version, parsed_path, parsed_query, parsed_body, truncated_body) plus Chaperone's
// verified identity and route. schemas/input.schema.json describes the same shape for
// `opa check --strict --schema` and for validation in tests; keep the two in step.
import type { ServerDenyCode } from '../../contracts/errors.ts';
/** The verified caller as the policy sees it: the verifier's Identity (one definition, in identity/claims.ts). */
import type { Identity as InputIdentity } from '../../identity/claims.ts';
import type { FormValues } from './query.ts';

export type { InputIdentity };

/** Why there is no identity: the verifier's code and its client-safe reason. */
export interface IdentityErrorInfo {
  code: string;
  reason: string;
}

/** Which route Envoy matched, from the route's context_extensions. */
export interface RouteRef {
  id: string | null;
  target: string | null;
  /** Checksum of the config revision Envoy runs, to detect skew with the authz server. */
  checksum: string | null;
  /** An MCP target's RFC 8707 resource (the URL its clients use), when it publishes RFC 9728 metadata. */
  resource?: string;
  /** Where that metadata is: what a 401 names in `WWW-Authenticate: Bearer resource_metadata="…"`. */
  resource_metadata?: string;
}

export interface InputVersion {
  ext_authz: 'v3';
  encoding: 'protojson';
}

export interface PolicyInput {
  /** CheckRequest.attributes as protojson (rawBody base64, request.time RFC 3339). */
  attributes: Record<string, unknown>;
  parsed_path: string[];
  parsed_query: FormValues;
  /** JSON or form body; absent when there is none, it is truncated, or its type is not parsed. */
  parsed_body?: unknown;
  truncated_body: boolean;
  version: InputVersion;
  identity: InputIdentity | null;
  identity_error: IdentityErrorInfo | null;
  route: RouteRef | null;
  /** Protocol-aware view (MCP, LLM APIs, …) when the route declares `protocol`; see ProtocolHook. */
  protocol?: unknown;
}

/** What a protocol decoder sees; everything is already validated and parsed. */
export interface ProtocolContext {
  /** context_extensions.protocol of the route, e.g. "mcp". */
  name: string;
  method: string;
  /** Request header by lower-case name. */
  header(name: string): string | undefined;
  parsedPath: readonly string[];
  parsedQuery: Readonly<FormValues>;
  /** undefined when there is no parsed body (absent, truncated or of a type not parsed). */
  parsedBody: unknown;
  /** The body text behind parsedBody (JSON or form). */
  bodyText: string | undefined;
  /** A body was sent, parsed or not. */
  bodyPresent: boolean;
  /** Its declared media type (type/subtype, lower-case); null when none was declared. */
  bodyMediaType: string | null;
  truncatedBody: boolean;
  route: RouteRef | null;
  /** Set when the route rewrites its prefix: the upstream sees another path than the client sent. */
  rewrite: { pathPrefix: string; prefixRewrite: string } | null;
}

export type ProtocolOutcome =
  | { ok: true; value: unknown }
  | { ok: false; code: ServerDenyCode; reason: string };

/**
 * Computes `input.protocol` for a route that declares a protocol. Extension point: the protocol
 * decoders arrive later. Must not throw for bad client input; return a typed error instead.
 */
export type ProtocolHook = (ctx: ProtocolContext) => ProtocolOutcome;
