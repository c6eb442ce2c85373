// LLM API requests as policy input: OpenAI chat completions and responses, Anthropic messages. The
// fields a budget or model policy needs — provider, model, max tokens, streaming, tools offered,
// message count and total prompt characters — without the policy walking three request formats.
import type { ProtocolContext, ProtocolOutcome } from '../input/policy-input.ts';

export interface LlmView {
  name: 'llm';
  provider: 'openai' | 'anthropic' | 'unknown';
  api: 'chat.completions' | 'responses' | 'messages' | 'other';
  model: string | null;
  max_tokens: number | null;
  stream: boolean;
  tools: string[];
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

function toolNames(tools: unknown): string[] {
  if (!Array.isArray(tools)) return [];
  const names: string[] = [];
  for (const t of tools) {
    if (!isObject(t)) continue;
    const fn = t['function'];
    if (isObject(fn) && typeof fn['name'] === 'string') names.push(fn['name']);
    else if (typeof t['name'] === 'string') names.push(t['name']);
  }
  return names;
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
  for (const k of ['max_tokens', 'max_completion_tokens', 'max_output_tokens']) {
    if (typeof body[k] === 'number') view.max_tokens = body[k] as number;
  }
  view.stream = body['stream'] === true;
  view.tools = toolNames(body['tools']);
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
