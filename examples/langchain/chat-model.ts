// A LangChain.js chat model (ChatOpenAI from @langchain/openai) whose every call goes through
// Chaperone's LLM target: the model client holds a Chaperone token (the person's, or an agent token
// from `chaperone agent token`), never the provider's key, and each call is checked, audited and
// counted against the person's and the agent's token budgets. `streamUsage` (on by default) asks a
// streamed answer for its usage, which a budgeted target requires.
//
//   CHAPERONE_AGENT_TOKEN=$(./chaperone agent token --name langchain-demo --targets llm) \
//     npx tsx examples/langchain/chat-model.ts http://127.0.0.1:10000/llm/
import { pathToFileURL } from 'node:url';
import { ChatOpenAI } from '@langchain/openai';

export function gatewayChatModel(baseURL: string, token: string, model = 'gpt-4o-mini'): ChatOpenAI {
  return new ChatOpenAI({
    model,
    apiKey: token,
    configuration: { baseURL },
    streamUsage: true,
    maxRetries: 0,
  });
}

async function main(): Promise<void> {
  const baseURL = process.argv[2] ?? 'http://127.0.0.1:10000/llm/';
  const token = process.env['CHAPERONE_AGENT_TOKEN'] ?? process.env['CHAPERONE_TOKEN'];
  if (!token) throw new Error('set CHAPERONE_AGENT_TOKEN (./chaperone agent token --name langchain-demo)');
  const model = gatewayChatModel(baseURL, token);
  const reply = await model.invoke('Say hello.');
  process.stdout.write(`${String(reply.content)}  (${reply.usage_metadata?.total_tokens} tokens)\n`);
  let text = '';
  for await (const chunk of await model.stream('Say hello again.')) text += String(chunk.content);
  process.stdout.write(`${text}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
