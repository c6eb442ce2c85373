// A LangChain.js agent whose tools reach a protected API only through Chaperone, with an agent token:
// it holds no upstream credential, acts as "alice via langchain-demo", and an action that needs human
// approval waits for it and then runs. The chat model is scripted (no network LLM): it plays the tool
// calls an LLM would make, so the example is deterministic and runs in CI.
//
//   CHAPERONE_EGRESS=http://127.0.0.1:10000 CHAPERONE_AGENT_TOKEN=$(./chaperone agent token --name langchain-demo) \
//     npx tsx examples/langchain/agent.ts
import { BaseChatModel } from '@langchain/core/language_models/chat_models';
import { AIMessage, type BaseMessage, HumanMessage, type ToolMessage } from '@langchain/core/messages';
import type { ChatResult } from '@langchain/core/outputs';
import { tool } from '@langchain/core/tools';
import { z } from 'zod';

/** Plays back one AI message per turn: the tool calls a real model would have chosen. */
class ScriptedChatModel extends BaseChatModel {
  private turn = 0;
  constructor(private readonly script: AIMessage[]) {
    super({});
  }
  _llmType(): string {
    return 'scripted';
  }
  async _generate(_messages: BaseMessage[]): Promise<ChatResult> {
    const message = this.script[Math.min(this.turn++, this.script.length - 1)]!;
    return { generations: [{ text: typeof message.content === 'string' ? message.content : '', message }] };
  }
}

export interface AgentOptions {
  egress: string;
  agentToken: string;
  /** Called when a tool call waits for a human; resolves when the wait should end (for tests). */
  onApprovalRequired?: (approval: { approval_id: string; status_url: string }) => Promise<void> | void;
  /** How long to wait for an approval. Default 2 minutes. */
  approvalTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface ToolOutcome {
  tool: string;
  status: number;
  approvalId?: string;
}

export async function runAgent(o: AgentOptions): Promise<{ answer: string; outcomes: ToolOutcome[] }> {
  const log = o.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const outcomes: ToolOutcome[] = [];

  /** One HTTP call through the gateway; a 403 approval_required waits for the reviewer, then retries once. */
  async function call(name: string, method: string, path: string, body?: unknown): Promise<string> {
    const send = () =>
      fetch(`${o.egress}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${o.agentToken}`,
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
    let res = await send();
    let text = await res.text();
    if (res.status === 403 && text.includes('approval_required')) {
      const approval = JSON.parse(text) as { approval_id: string; status_url: string; reason: string };
      log(`  ${name}: waiting for approval ${approval.approval_id} (${approval.reason})`);
      await o.onApprovalRequired?.(approval);
      const deadline = Date.now() + (o.approvalTimeoutMs ?? 120_000);
      for (;;) {
        const status = await fetch(approval.status_url, {
          headers: { authorization: `Bearer ${o.agentToken}` },
        });
        const s = (await status.json()) as { status?: string };
        if (s.status === 'approved') break;
        if (s.status === 'denied') {
          outcomes.push({ tool: name, status: 403, approvalId: approval.approval_id });
          return `denied by a reviewer: ${approval.reason}`;
        }
        if (Date.now() > deadline) return `no approval within the time limit: ${approval.reason}`;
        await new Promise((r) => setTimeout(r, 250));
      }
      res = await send();
      text = await res.text();
      outcomes.push({ tool: name, status: res.status, approvalId: approval.approval_id });
    } else outcomes.push({ tool: name, status: res.status });
    log(`  ${name}: HTTP ${res.status}`);
    return res.ok ? text : `request refused (HTTP ${res.status}): ${text}`;
  }

  const tools = [
    tool(async () => call('list_items', 'GET', '/demo/items'), {
      name: 'list_items',
      description: 'List the items of the demo API',
      schema: z.object({}),
    }),
    tool(async ({ name, priority }) => call('create_item', 'POST', '/demo/items', { name, priority }), {
      name: 'create_item',
      description: 'Create an item',
      schema: z.object({ name: z.string(), priority: z.enum(['low', 'high', 'critical']) }),
    }),
    tool(async ({ id }) => call('delete_item', 'DELETE', `/demo/items/${id}`), {
      name: 'delete_item',
      description: 'Delete an item (needs a security review)',
      schema: z.object({ id: z.number() }),
    }),
  ];
  const byName = new Map<string, (typeof tools)[number]>(tools.map((t) => [t.name, t]));

  const step = (id: string, name: string, args: Record<string, unknown>) =>
    new AIMessage({ content: '', tool_calls: [{ id, name, args, type: 'tool_call' }] });
  const model = new ScriptedChatModel([
    step('c1', 'list_items', {}),
    step('c2', 'create_item', { name: 'outage', priority: 'critical' }),
    step('c3', 'delete_item', { id: 1 }),
    new AIMessage(
      'Listed the items; creating a critical item was refused; item 1 was deleted after approval.',
    ),
  ]);

  const messages: BaseMessage[] = [new HumanMessage('Tidy up the demo items.')];
  for (let turn = 0; turn < 10; turn++) {
    const ai = (await model.invoke(messages)) as AIMessage;
    messages.push(ai);
    if (!ai.tool_calls?.length) return { answer: String(ai.content), outcomes };
    for (const tc of ai.tool_calls) {
      const t = byName.get(tc.name);
      if (!t) throw new Error(`model asked for unknown tool ${tc.name}`);
      log(`agent → ${tc.name}(${JSON.stringify(tc.args)})`);
      messages.push((await (t as { invoke(x: unknown): Promise<ToolMessage> }).invoke(tc)) as ToolMessage);
    }
  }
  throw new Error('agent did not finish within 10 turns');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const egress = process.env['CHAPERONE_EGRESS'] ?? 'http://127.0.0.1:10000';
  const agentToken = process.env['CHAPERONE_AGENT_TOKEN'];
  if (!agentToken) {
    process.stderr.write('set CHAPERONE_AGENT_TOKEN (./chaperone agent token --name langchain-demo)\n');
    process.exit(2);
  }
  const { answer } = await runAgent({ egress, agentToken });
  process.stdout.write(`${answer}\n`);
}
