// What a human approval is bound to: the action a request performs, not the envelope it travels in.
// A grant must match the retry of the request it was given for — a real MCP client retries a tool call
// with a new JSON-RPC id, an HTTP client may reorder query parameters or JSON keys — and nothing else.
//   MCP: the endpoint path, the JSON-RPC method and, for tools/call, the tool and its canonical
//        arguments; for other methods the canonical params. Never the id, `_meta` or the session.
//   Other protocol views (LLM, GraphQL, Kubernetes): the decoded view plus the request content below.
//        A view summarises (message counts, field paths without argument values, no object body), so
//        the view alone would let a different request reuse the grant.
//   Plain HTTP: method, path, canonical query and the canonical parsed body, or the raw body's hash
//        when the body is not parsed.
// Canonical: object keys sorted, no whitespace (lib/content-hash.ts); array order is kept (it means
// something). Pure and read-only: the input stays exactly as the policy sees it.
import { createHash } from 'node:crypto';
import { canonicalJson } from '../../lib/content-hash.ts';
import type { PolicyInput } from '../input/policy-input.ts';
import type { McpView } from '../protocols/mcp.ts';
import type { HttpAttrs } from './check-state.ts';

type Obj = Record<string, unknown>;

const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');

/** The path of the request target, without the query (the input builder refused non-canonical ones). */
function pathOf(http: HttpAttrs): string {
  const target = http.path ?? '';
  const q = target.indexOf('?');
  return q === -1 ? target : target.slice(0, q);
}

/** The body as the policy read it, the raw bytes' hash when it was not parsed, or why there is none. */
function bodyOf(input: PolicyInput, http: HttpAttrs): unknown {
  if (input.parsed_body !== undefined) return { parsed: input.parsed_body };
  const raw = http.rawBody && http.rawBody.length > 0 ? http.rawBody : http.body ? http.body : null;
  if (raw !== null) return { sha256: sha256(raw) };
  // A headers-only route: the body was never read, so the grant cannot bind it (the policy saw no more).
  return input.truncated_body ? { unread: true } : null;
}

/** The HTTP request itself: what a plain route's grant is bound to. */
function httpAction(input: PolicyInput, http: HttpAttrs): Obj {
  return {
    method: http.method ?? '',
    path: pathOf(http),
    query: input.parsed_query,
    body: bodyOf(input, http),
  };
}

function withoutMeta(params: unknown): unknown {
  if (!isObject(params)) return params ?? null;
  const { _meta: _envelope, ...rest } = params;
  return rest;
}

/** An MCP message: what it asks the server to do, without its JSON-RPC envelope. */
function mcpAction(view: McpView, input: PolicyInput, http: HttpAttrs): Obj {
  const path = pathOf(http);
  // GET (event stream) and DELETE (session end) carry no message; a response to a server request has
  // no method: both are bound like plain HTTP.
  if (view.method === null) return { protocol: 'mcp', ...httpAction(input, http) };
  if (view.method === 'tools/call')
    return { protocol: 'mcp', path, method: view.method, tool: view.tool, arguments: view.arguments };
  const params = isObject(input.parsed_body) ? input.parsed_body['params'] : undefined;
  return { protocol: 'mcp', path, method: view.method, params: withoutMeta(params) };
}

/** The document an approval is bound to (see the top of this file). */
export function approvalAction(input: PolicyInput, http: HttpAttrs): Obj {
  const view = input.protocol;
  if (isObject(view) && view['name'] === 'mcp') return mcpAction(view as unknown as McpView, input, http);
  if (isObject(view) && typeof view['name'] === 'string')
    return { protocol: view['name'], view, ...httpAction(input, http) };
  return { protocol: 'http', ...httpAction(input, http) };
}

/** sha256 (hex) of the canonical JSON of approvalAction: the "what" part of an approval fingerprint. */
export function approvalActionDigest(input: PolicyInput, http: HttpAttrs): string {
  return sha256(canonicalJson(approvalAction(input, http)));
}
