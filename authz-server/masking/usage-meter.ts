// The tokens an LLM upstream reports for one response, read from the response as it passes: the
// `usage` object of a JSON answer (OpenAI chat completions and responses, Anthropic messages), or of
// the events of a streamed one — OpenAI chat's final chunk (sent when the request asked for
// `stream_options.include_usage`), the Responses API's `response.completed`, Anthropic's
// `message_start` (input) and `message_delta` (output, cumulative). Counts only grow within one
// response, so each field keeps the largest value seen; nothing here changes the response.

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The usage fields both providers use, and the totals they add up to. */
const INPUT = ['prompt_tokens', 'input_tokens'] as const;
const OUTPUT = ['completion_tokens', 'output_tokens'] as const;
// Anthropic reports cache reads and writes beside input_tokens (OpenAI counts them inside it).
const ANTHROPIC_CACHE = ['cache_creation_input_tokens', 'cache_read_input_tokens'] as const;
const FIELDS = [...INPUT, ...OUTPUT, ...ANTHROPIC_CACHE, 'total_tokens'] as const;

export class UsageMeter {
  private readonly seen = new Map<string, number>();

  /** A usage object wherever a response or an event carries it. */
  observe(doc: unknown): void {
    if (!isObject(doc)) return;
    for (const candidate of [
      doc['usage'],
      (doc['response'] as Obj | undefined)?.['usage'],
      (doc['message'] as Obj | undefined)?.['usage'],
    ])
      if (isObject(candidate)) this.take(candidate);
  }

  /** The `data` of one server-sent event (JSON, or OpenAI's `[DONE]`). */
  observeEventData(data: string): void {
    if (data === '[DONE]' || data === '') return;
    try {
      this.observe(JSON.parse(data));
    } catch {
      // Not JSON: nothing to count in it.
    }
  }

  /** A whole JSON answer's text. */
  observeJsonText(text: string): void {
    try {
      this.observe(JSON.parse(text));
    } catch {
      // An unparsable answer reports nothing.
    }
  }

  /** Total tokens (input + output), or null when the upstream reported none. */
  tokens(): number | null {
    if (this.seen.size === 0) return null;
    const total = this.seen.get('total_tokens');
    if (total !== undefined) return total;
    const first = (names: readonly string[]) =>
      names.map((n) => this.seen.get(n)).find((v) => v !== undefined) ?? 0;
    const cache = ANTHROPIC_CACHE.reduce((n, f) => n + (this.seen.get(f) ?? 0), 0);
    return first(INPUT) + first(OUTPUT) + cache;
  }

  private take(usage: Obj): void {
    for (const f of FIELDS) {
      const v = usage[f];
      if (typeof v === 'number' && Number.isFinite(v) && v >= 0)
        this.seen.set(f, Math.max(this.seen.get(f) ?? 0, v));
    }
  }
}
