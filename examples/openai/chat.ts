// An OpenAI-compatible client (the official `openai` package) through Chaperone: `baseURL` is the
// gateway's LLM target, `apiKey` is your Chaperone token (or your agent's) — the gateway verifies it,
// removes it, and sends the provider its own key (targets[].credentials); the provider's key never
// reaches the agent. Token budgets count the `usage` the provider reports: a streamed chat completion
// on a budgeted target must ask for it (`stream_options: { include_usage: true }`). Over a budget the
// gateway answers 429 with Retry-After and a reason (openai.RateLimitError).
//
//   CHAPERONE_TOKEN=$(./chaperone dev token alice) npx tsx examples/openai/chat.ts http://127.0.0.1:10000/llm/
import { pathToFileURL } from 'node:url';
import OpenAI from 'openai';

export function gatewayClient(baseURL: string, chaperoneToken: string): OpenAI {
  // A budget's 429 says when it resets (often tomorrow): retrying at once only spends requests.
  return new OpenAI({ baseURL, apiKey: chaperoneToken, maxRetries: 0 });
}

/** One answer, then the same question streamed; the text and the tokens each reported. */
export async function ask(
  client: OpenAI,
  question: string,
  model = 'gpt-4o-mini',
): Promise<{ text: string; streamed: string; tokens: number[] }> {
  const messages = [{ role: 'user' as const, content: question }];
  const answer = await client.chat.completions.create({ model, messages });
  let streamed = '';
  let streamedTokens = 0;
  const stream = await client.chat.completions.create({
    model,
    messages,
    stream: true,
    stream_options: { include_usage: true },
  });
  for await (const chunk of stream) {
    streamed += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.usage) streamedTokens = chunk.usage.total_tokens;
  }
  return {
    text: answer.choices[0]?.message.content ?? '',
    streamed,
    tokens: [answer.usage?.total_tokens ?? 0, streamedTokens],
  };
}

async function main(): Promise<void> {
  const baseURL = process.argv[2] ?? 'http://127.0.0.1:10000/llm/';
  const token = process.env['CHAPERONE_TOKEN'];
  if (!token) throw new Error('set CHAPERONE_TOKEN (./chaperone dev token alice, or an agent token)');
  try {
    const out = await ask(gatewayClient(baseURL, token), 'Say hello.');
    process.stdout.write(`${out.text}\n${out.streamed}\ntokens: ${out.tokens.join(' + ')}\n`);
  } catch (err) {
    if (err instanceof OpenAI.RateLimitError)
      process.stdout.write(
        `over a limit: ${JSON.stringify(err.error)} (retry after ${err.headers?.get('retry-after')} s)\n`,
      );
    else throw err;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
