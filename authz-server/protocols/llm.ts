// LLM API requests as policy input: OpenAI chat completions and responses, Anthropic messages. The
// fields a budget or model policy needs — provider, model, max tokens, streaming, tools offered,
// message count and total prompt characters — without the policy walking three request formats.
// Where servers disagree the request is refused: the token limit written several ways with different
// values, a limit or `stream` of the wrong type (lenient servers coerce "100000" to a number). Hosted
// tools — the ones the provider runs itself (OpenAI web_search, file_search, code_interpreter,
// computer_use, mcp…; Anthropic server tools and mcp_servers) — are listed apart from function tools so
// that a tool allow-list sees them. Duplicate and case-variant keys were refused by the strict reader.
import type { ProtocolContext, ProtocolOutcome } from '../input/policy-input.ts';

export interface LlmView {
  name: 'llm';
  provider: 'openai' | 'anthropic' | 'unknown';
  api: 'chat.completions' | 'responses' | 'messages' | 'other';
  model: string | null;
  max_tokens: number | null;
  stream: boolean;
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

export function parseLlm(ctx: ProtocolContext): ProtocolOutcome {
  const segs = ctx.parsedPath;
  const api: LlmView['api'] = endsWith(segs, ['v1', 'chat', 'completions'])
    ? 'chat.completions'
    : endsWith(segs, ['v1', 'responses'])
      ? 'responses'
      : endsWith(segs, ['v1', 'messages'])
        ? 'messages'
        : 'other';
  const provider: LlmView['provider'] =
    api === 'messages' ? 'anthropic' : api === 'other' ? 'unknown' : 'openai';
  const view: LlmView = {
    name: 'llm',
    provider,
    api,
    model: null,
    max_tokens: null,
    stream: false,
    tools: [],
    hosted_tools: [],
    mcp_servers: [],
    message_count: 0,
    prompt_chars: 0,
  };
  if (api === 'other' || ctx.method !== 'POST') return { ok: true, value: view };
  const body = ctx.parsedBody;
  if (!isObject(body)) {
    return { ok: false, code: 'ERR_PROTOCOL_INVALID', reason: `LLM API: ${api} needs a JSON object body` };
  }
  if (typeof body['model'] !== 'string')
    return { ok: false, code: 'ERR_PROTOCOL_INVALID', reason: 'LLM API: model is required' };
  view.model = body['model'];
  for (const k of TOKEN_LIMIT_FIELDS) {
    const v = body[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number')
      return { ok: false, code: 'ERR_PROTOCOL_INVALID', reason: `LLM API: ${k} must be a number` };
    if (view.max_tokens !== null && view.max_tokens !== v)
      return {
        ok: false,
        code: 'ERR_PROTOCOL_AMBIGUOUS',
        reason: `LLM API: the token limit is given twice with different values (${TOKEN_LIMIT_FIELDS.filter((f) => typeof body[f] === 'number').join(', ')})`,
      };
    view.max_tokens = v;
  }
  const stream = body['stream'];
  if (stream !== undefined && stream !== null && typeof stream !== 'boolean')
    return { ok: false, code: 'ERR_PROTOCOL_INVALID', reason: 'LLM API: stream must be a boolean' };
  view.stream = stream === true;
  const tools = readTools(body['tools'], api);
  if (!tools.ok) return { ok: false, code: 'ERR_PROTOCOL_INVALID', reason: `LLM API: ${tools.reason}` };
  view.tools = tools.tools;
  view.hosted_tools = tools.hosted;
  view.mcp_servers = tools.mcp;
  // Chat completions search the web when `web_search_options` is present; Anthropic's MCP connector
  // calls the servers in `mcp_servers`.
  if (body['web_search_options'] !== undefined && body['web_search_options'] !== null)
    view.hosted_tools.push('web_search');
  const mcpServers = body['mcp_servers'];
  if (mcpServers !== undefined && mcpServers !== null) {
    if (!Array.isArray(mcpServers) || !mcpServers.every(isObject))
      return {
        ok: false,
        code: 'ERR_PROTOCOL_INVALID',
        reason: 'LLM API: mcp_servers must be an array of objects',
      };
    for (const m of mcpServers) {
      view.hosted_tools.push('mcp');
      view.mcp_servers.push({ label: str(m['name']), url: str(m['url']) });
    }
  }
  let chars = 0;
  if (api === 'responses') {
    const input = body['input'];
    if (typeof input === 'string') {
      view.message_count = 1;
      chars += input.length;
    } else if (Array.isArray(input)) {
      view.message_count = input.length;
      for (const item of input) chars += isObject(item) ? textChars(item['content']) : textChars(item);
    }
    chars += textChars(body['instructions']);
  } else {
    const messages = body['messages'];
    if (!Array.isArray(messages))
      return { ok: false, code: 'ERR_PROTOCOL_INVALID', reason: 'LLM API: messages must be an array' };
    view.message_count = messages.length;
    for (const m of messages) if (isObject(m)) chars += textChars(m['content']);
    chars += textChars(body['system']);
  }
  view.prompt_chars = chars;
  return { ok: true, value: view };
}
