// MCP (JSON-RPC 2.0 over streamable HTTP) as policy input: what is being done — which method, which
// tool with which arguments, which resource or prompt — under `input.protocol`. Anything two parsers
// could read differently is refused before the policy runs (ERR_PROTOCOL_INVALID): batches, duplicate,
// case-variant or escaped keys, concatenated values, a method written with escapes, and Mcp-Method /
// Mcp-Name headers that disagree with the body. The body arrives read by the strict JSON reader
// (input/strict-json.ts), which refused duplicate, case-variant and escaped keys already.
import type { ProtocolContext, ProtocolOutcome } from '../input/policy-input.ts';

export interface McpView {
  name: 'mcp';
  /** JSON-RPC method; null for a GET (SSE stream) or DELETE (session end). */
  method: string | null;
  http_method: string;
  id: string | number | null;
  /** A notification carries no id and gets no response. */
  notification: boolean;
  tool: string | null;
  arguments: Record<string, unknown> | null;
  uri: string | null;
  prompt: string | null;
  session_id: string | null;
}

const invalid = (reason: string): ProtocolOutcome => ({
  ok: false,
  code: 'ERR_PROTOCOL_INVALID',
  reason: `MCP: ${reason}`,
});

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parseMcp(ctx: ProtocolContext): ProtocolOutcome {
  const base: McpView = {
    name: 'mcp',
    method: null,
    http_method: ctx.method,
    id: null,
    notification: false,
    tool: null,
    arguments: null,
    uri: null,
    prompt: null,
    session_id: ctx.header('mcp-session-id') ?? null,
  };
  if (ctx.method === 'GET' || ctx.method === 'DELETE') return { ok: true, value: base };
  if (ctx.method !== 'POST')
    return invalid(`HTTP method ${ctx.method} is not part of the streamable HTTP transport`);
  if (Array.isArray(ctx.parsedBody)) return invalid('JSON-RPC batches are not accepted');
  if (ctx.bodyText === undefined || !isObject(ctx.parsedBody))
    return invalid('a POST must carry one JSON-RPC message');
  const msg = ctx.parsedBody;
  if (msg['jsonrpc'] !== '2.0') return invalid('jsonrpc must be "2.0"');
  // A response or error from the client (to a server request) has no method: allowed, nothing to judge.
  if (!('method' in msg)) {
    if (!('result' in msg) && !('error' in msg))
      return invalid('a message needs a method, a result or an error');
    return { ok: true, value: { ...base, id: (msg['id'] as string | number | undefined) ?? null } };
  }
  const method = msg['method'];
  if (typeof method !== 'string' || method === '') return invalid('method must be a non-empty string');
  // The method as written must equal the decoded one: no escapes that a naive matcher would miss.
  if (!ctx.bodyText.includes(`"${method}"`))
    return invalid('the method name must be written without escapes');
  const id = msg['id'];
  if (id !== undefined && typeof id !== 'string' && typeof id !== 'number')
    return invalid('id must be a string or a number');
  const params = msg['params'];
  if (params !== undefined && !isObject(params)) return invalid('params must be an object');
  const view: McpView = { ...base, method, id: id ?? null, notification: id === undefined };
  if (method === 'tools/call') {
    if (!isObject(params) || typeof params['name'] !== 'string')
      return invalid('tools/call needs params.name');
    const args = params['arguments'];
    if (args !== undefined && !isObject(args))
      return invalid('tools/call params.arguments must be an object');
    view.tool = params['name'];
    view.arguments = (args as Record<string, unknown> | undefined) ?? {};
  } else if (method === 'resources/read') {
    if (!isObject(params) || typeof params['uri'] !== 'string')
      return invalid('resources/read needs params.uri');
    view.uri = params['uri'];
  } else if (method === 'prompts/get') {
    if (!isObject(params) || typeof params['name'] !== 'string')
      return invalid('prompts/get needs params.name');
    view.prompt = params['name'];
  }
  // The 2026-07-28 revision's routing headers must agree with the body they describe.
  const hMethod = ctx.header('mcp-method');
  if (hMethod !== undefined && hMethod !== method)
    return invalid('the Mcp-Method header does not match the body');
  const hName = ctx.header('mcp-name');
  const bodyName = view.tool ?? view.prompt ?? view.uri;
  if (hName !== undefined && hName !== bodyName)
    return invalid('the Mcp-Name header does not match the body');
  return { ok: true, value: view };
}

/** URL_ELICITATION_REQUIRED (MCP 2025-11-25, client/elicitation): "retry once the user has been to this URL". */
export const MCP_URL_ELICITATION_REQUIRED = -32042;

/**
 * The answer to an MCP request that waits for a human's approval, in the form MCP clients show their
 * user: a JSON-RPC error (sent with HTTP 200, as MCP servers send errors, so the client reads it as the
 * request's answer rather than a transport failure) of code -32042, URLElicitationRequiredError, whose
 * one URL-mode elicitation points to the approval's status; clients that support URL elicitation show
 * the URL and let the user retry, the others show the message, which names the URL too. `approval_id`
 * and `status_url` stay in `data` for scripts. The retry (a new JSON-RPC id) passes once approved.
 */
export function mcpApprovalError(
  id: string | number | null,
  approval: { id: string; statusUrl: string; reason: string; reviewers: string[] },
): string {
  const message = `approval required: ${approval.reason} — a reviewer (${approval.reviewers.join(', ')}) must approve it; follow it at ${approval.statusUrl}, then retry the call`;
  return JSON.stringify({
    jsonrpc: '2.0',
    id,
    error: {
      code: MCP_URL_ELICITATION_REQUIRED,
      message,
      data: {
        elicitations: [{ mode: 'url', elicitationId: approval.id, url: approval.statusUrl, message }],
        approval_id: approval.id,
        status_url: approval.statusUrl,
        reviewers: approval.reviewers,
      },
    },
  });
}
