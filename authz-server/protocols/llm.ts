// LLM API requests as policy input: OpenAI chat completions and responses, Anthropic messages. The
// fields a budget or model policy needs — provider, model, max tokens, streaming, tools offered,
// message count and total prompt characters — without the policy walking three request formats.
// Where servers disagree the request is refused: the token limit written several ways with different
// values, a limit or `stream` of the wrong type (lenient servers coerce "100000" to a number). Hosted
// tools — the ones the provider runs itself (OpenAI web_search, file_search, code_interpreter,
// computer_use, mcp…; Anthropic server tools and mcp_servers) — are listed apart from function tools so
// that a tool allow-list sees them. Duplicate and case-variant keys were refused by the strict reader.
import type { ProtocolContext, ProtocolOutcome } from '../input/policy-input.ts';
import { upstreamSegments } from './upstream-path.ts';

export interface LlmView {
  name: 'llm';
  provider: 'openai' | 'anthropic' | 'unknown';
  api: 'chat.completions' | 'responses' | 'messages' | 'other';
  model: string | null;
  max_tokens: number | null;
  stream: boolean;
  /**
   * Whether the answer will report its token usage: always for a JSON answer, for Anthropic and the
   * Responses API, and for a streamed chat completion only with `stream_options.include_usage: true`
   * (token budgets count what the answer reports).
   */
  stream_usage: boolean;
  /** Names of the tools the client runs (function and custom tools). */
  tools: string[];
  /** Types of the tools the provider runs: `web_search_preview`, `mcp`, `web_search_20250305`, … */
  hosted_tools: string[];
  /** Remote MCP servers the provider will call for this request (OpenAI `mcp` tools, Anthropic `mcp_servers`). */
  mcp_servers: { label: string | null; url: string | null }[];
  message_count: number;
  prompt_chars: number;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Characters of text in a content value: a string, or an array of parts with `text`. */
function textChars(content: unknown): number {
  if (typeof content === 'string') return content.length;
  if (Array.isArray(content)) {
    let n = 0;
    for (const part of content) {
      if (typeof part === 'string') n += part.length;
      else if (isObject(part)) {
        if (typeof part['text'] === 'string') n += part['text'].length;
        if ('content' in part) n += textChars(part['content']);
      }
    }
    return n;
  }
  return 0;
}

const TOKEN_LIMIT_FIELDS = ['max_tokens', 'max_completion_tokens', 'max_output_tokens'] as const;

type ToolsRead =
  | { ok: true; tools: string[]; hosted: string[]; mcp: LlmView['mcp_servers'] }
  | { ok: false; reason: string };

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

/** Splits `tools` into client-run tools (by name) and provider-run tools (by type). */
function readTools(tools: unknown, api: LlmView['api']): ToolsRead {
  const out = { tools: [] as string[], hosted: [] as string[], mcp: [] as LlmView['mcp_servers'] };
  if (tools === undefined || tools === null) return { ok: true, ...out };
  if (!Array.isArray(tools)) return { ok: false, reason: 'tools must be an array' };
  for (const t of tools) {
    if (!isObject(t)) return { ok: false, reason: 'each tool must be an object' };
    const type = t['type'];
    if (type !== undefined && typeof type !== 'string')
      return { ok: false, reason: 'tool type must be a string' };
    if (api === 'messages') {
      // Anthropic: client tools have no type (or "custom"); server tools are typed ("web_search_20250305").
      if (type === undefined || type === 'custom') {
        const name = str(t['name']);
        if (name === null) return { ok: false, reason: 'a client tool needs a name' };
        out.tools.push(name);
      } else out.hosted.push(type);
      continue;
    }
    // OpenAI: function/custom tools carry a name (chat: under `function`/`custom`); any other type is hosted.
    if (type === 'function' || type === 'custom') {
      const inner = t[type];
      const name = isObject(inner) ? str(inner['name']) : str(t['name']);
      if (name === null) return { ok: false, reason: `a ${type} tool needs a name` };
      out.tools.push(name);
    } else if (type === undefined) {
      return { ok: false, reason: 'each tool needs a type' };
    } else {
      out.hosted.push(type);
      if (type === 'mcp') out.mcp.push({ label: str(t['server_label']), url: str(t['server_url']) });
    }
  }
  return { ok: true, ...out };
}

const endsWith = (segs: readonly string[], tail: string[]) =>
  segs.length >= tail.length && tail.every((t, i) => segs[segs.length - tail.length + i] === t);

type Read<T> = { ok: true; value: T } | Extract<ProtocolOutcome, { ok: false }>;

const invalid = (reason: string): Extract<ProtocolOutcome, { ok: false }> => ({
  ok: false,
  code: 'ERR_PROTOCOL_INVALID',
  reason: `LLM API: ${reason}`,
});

function apiOf(segs: readonly string[]): LlmView['api'] {
  if (endsWith(segs, ['v1', 'chat', 'completions'])) return 'chat.completions';
  if (endsWith(segs, ['v1', 'responses'])) return 'responses';
  if (endsWith(segs, ['v1', 'messages'])) return 'messages';
  return 'other';
}

/** The token limit, however it is spelled; two spellings with different values are ambiguous. */
function tokenLimit(body: Record<string, unknown>): Read<number | null> {
  let limit: number | null = null;
  for (const k of TOKEN_LIMIT_FIELDS) {
    const v = body[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number') return invalid(`${k} must be a number`);
    if (limit !== null && limit !== v)
      return {
        ok: false,
        code: 'ERR_PROTOCOL_AMBIGUOUS',
        reason: `LLM API: the token limit is given twice with different values (${TOKEN_LIMIT_FIELDS.filter((f) => typeof body[f] === 'number').join(', ')})`,
      };
    limit = v;
  }
  return { ok: true, value: limit };
}

/**
 * Tools the provider runs outside `tools`: chat completions search the web when `web_search_options`
 * is present; Anthropic's MCP connector calls the servers in `mcp_servers`. Added to `view`.
 */
function hostedExtras(body: Record<string, unknown>, view: LlmView): Read<null> {
  if (body['web_search_options'] !== undefined && body['web_search_options'] !== null)
    view.hosted_tools.push('web_search');
  const mcpServers = body['mcp_servers'];
  if (mcpServers === undefined || mcpServers === null) return { ok: true, value: null };
  if (!Array.isArray(mcpServers) || !mcpServers.every(isObject))
    return invalid('mcp_servers must be an array of objects');
  for (const m of mcpServers) {
    view.hosted_tools.push('mcp');
    view.mcp_servers.push({ label: str(m['name']), url: str(m['url']) });
  }
  return { ok: true, value: null };
}

/** Message count and prompt characters: `input` and `instructions` (responses), else `messages` and `system`. */
function prompt(body: Record<string, unknown>, api: LlmView['api']): Read<{ count: number; chars: number }> {
  if (api === 'responses') {
    const input = body['input'];
    const chars = textChars(body['instructions']);
    if (typeof input === 'string') return { ok: true, value: { count: 1, chars: chars + input.length } };
    if (!Array.isArray(input)) return { ok: true, value: { count: 0, chars } };
    let n = chars;
    for (const item of input) n += isObject(item) ? textChars(item['content']) : textChars(item);
    return { ok: true, value: { count: input.length, chars: n } };
  }
  const messages = body['messages'];
  if (!Array.isArray(messages)) return invalid('messages must be an array');
  let chars = textChars(body['system']);
  for (const m of messages) if (isObject(m)) chars += textChars(m['content']);
  return { ok: true, value: { count: messages.length, chars } };
}

/** The fields of a request body, in the order they are checked; the first problem refuses it. */
function readRequest(body: Record<string, unknown>, view: LlmView): Read<LlmView> {
  if (typeof body['model'] !== 'string') return invalid('model is required');
  view.model = body['model'];
  const limit = tokenLimit(body);
  if (!limit.ok) return limit;
  view.max_tokens = limit.value;
  const stream = body['stream'];
  if (stream !== undefined && stream !== null && typeof stream !== 'boolean')
    return invalid('stream must be a boolean');
  view.stream = stream === true;
  const options = body['stream_options'];
  if (options !== undefined && options !== null && !isObject(options))
    return invalid('stream_options must be an object');
  const includeUsage = isObject(options) ? options['include_usage'] : undefined;
  if (includeUsage !== undefined && includeUsage !== null && typeof includeUsage !== 'boolean')
    return invalid('stream_options.include_usage must be a boolean');
  view.stream_usage = !view.stream || view.api !== 'chat.completions' || includeUsage === true;
  const tools = readTools(body['tools'], view.api);
  if (!tools.ok) return invalid(tools.reason);
  view.tools = tools.tools;
  view.hosted_tools = tools.hosted;
  view.mcp_servers = tools.mcp;
  const extras = hostedExtras(body, view);
  if (!extras.ok) return extras;
  const p = prompt(body, view.api);
  if (!p.ok) return p;
  view.message_count = p.value.count;
  view.prompt_chars = p.value.chars;
  return { ok: true, value: view };
}

export function parseLlm(ctx: ProtocolContext): ProtocolOutcome {
  // The upstream's path decides the API: `/openai/` rewritten to `/v1/` is still chat completions.
  const api = apiOf(upstreamSegments(ctx));
  const view: LlmView = {
    name: 'llm',
    provider: api === 'messages' ? 'anthropic' : api === 'other' ? 'unknown' : 'openai',
    api,
    model: null,
    max_tokens: null,
    stream: false,
    stream_usage: true,
    tools: [],
    hosted_tools: [],
    mcp_servers: [],
    message_count: 0,
    prompt_chars: 0,
  };
  if (api === 'other' || ctx.method !== 'POST') return { ok: true, value: view };
  const body = ctx.parsedBody;
  if (!isObject(body)) return invalid(`${api} needs a JSON object body`);
  return readRequest(body, view);
}
