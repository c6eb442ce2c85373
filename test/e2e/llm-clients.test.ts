// The recipes run: the official `openai` client and LangChain.js's ChatOpenAI, pointed at Chaperone's
// LLM target (`baseURL`) with a Chaperone token as their API key, through real Envoy to a fake provider
// that reports usage. Plain and streamed answers come back as the libraries expect; the provider sees
// the edge's key, never the token; the tokens are counted; over the budget the client raises the
// library's own rate-limit error with the gateway's reason and Retry-After.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayChatModel } from '../../examples/langchain/chat-model.ts';
import { ask, gatewayClient } from '../../examples/openai/chat.ts';
import { runCli } from '../support/cli.ts';
import { type FakeLlm, startFakeLlm } from '../support/fake-llm.ts';
import {
  apiFetch,
  devGatewayYaml,
  devToken,
  type GatewayProcess,
  gatewayPorts,
  startGatewayProcess,
} from '../support/gateway-process.ts';
import { waitFor } from '../support/wait.ts';

let gw: GatewayProcess;
let llm: FakeLlm;
let baseURL: string;

beforeAll(async () => {
  llm = await startFakeLlm({ input: 12, output: 8 });
  const extra = `  - name: llm
    upstream: ${llm.url}
    protocol: llm
    match:
      path_prefix: /llm/
    prefix_rewrite: /v1/
    credentials:
      - header: authorization
        value: env:FAKE_LLM_KEY
        format: Bearer {}
`;
  gw = await startGatewayProcess({
    ports: await gatewayPorts(),
    yaml: (p) =>
      devGatewayYaml(p, extra).concat(`budgets:
  - name: agent-daily
    targets: [llm]
    per: agent
    tokens_per_day: 100
`),
    env: { FAKE_LLM_KEY: 'sk-edge-secret' },
  });
  baseURL = `${gw.egress}/llm/`;
}, 120_000);

afterAll(async () => {
  await gw?.cleanup();
  await llm?.close();
});

async function agentToken(name: string): Promise<string> {
  const alice = await devToken(gw, 'alice');
  const r = await runCli([
    'agent',
    'token',
    '--name',
    name,
    '--targets',
    'llm',
    '--api',
    gw.api,
    '--token',
    alice,
  ]);
  expect(r.code, r.out).toBe(0);
  return r.out.trim().split('\n').pop()!;
}

async function tokensCounted(): Promise<number> {
  const status = (await (await apiFetch(gw, await devToken(gw, 'carol'), '/status')).json()) as {
    usage?: { targets?: Record<string, { day: { tokens: number } }> };
  };
  return status.usage?.targets?.['llm']?.day.tokens ?? 0;
}

describe('OpenAI-compatible clients through Chaperone', () => {
  it('the openai package: a plain and a streamed answer, the provider never sees the token', async () => {
    const token = await devToken(gw, 'alice');
    const out = await ask(gatewayClient(baseURL, token), 'hello?');
    expect(out.text).toBe('Hello from the fake model.');
    expect(out.streamed).toBe('Hello from the fake model.');
    expect(out.tokens).toEqual([20, 20]);
    expect(llm.requests.map((r) => r.path)).toEqual(['/v1/chat/completions', '/v1/chat/completions']);
    for (const r of llm.requests) {
      expect(r.headers['authorization']).toBe('Bearer sk-edge-secret');
      expect(JSON.stringify(r.headers)).not.toContain(token);
    }
    await waitFor(async () => (await tokensCounted()) === 40, { what: '40 tokens counted' });
  });

  it('LangChain.js ChatOpenAI with an agent token, until the agent’s budget is spent', async () => {
    const model = gatewayChatModel(baseURL, await agentToken('langchain-demo'));
    const reply = await model.invoke('hello?');
    expect(reply.content).toBe('Hello from the fake model.');
    expect(reply.usage_metadata?.total_tokens).toBe(20);
    let streamed = '';
    for await (const chunk of await model.stream('again?')) streamed += String(chunk.content);
    expect(streamed).toBe('Hello from the fake model.');
    // The agent's own budget (100 tokens a day) is separate from alice's other agents.
    const other = gatewayClient(baseURL, await agentToken('other-bot'));
    await other.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] });
    for (let spent = 40; spent < 100; spent += 20) await model.invoke('more?');
    await waitFor(async () => (await tokensCounted()) === 40 + 120, { what: 'the agents’ tokens counted' });
    const over = await model.invoke('one more?').then(
      () => null,
      (e: unknown) => e,
    );
    expect(over).toBeTruthy();
    expect(String((over as Error).message)).toMatch(/429/);
    // The other agent still has its own budget.
    const fine = await other.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'x' }],
    });
    expect(fine.usage?.total_tokens).toBe(20);
  });

  it('the openai package raises its RateLimitError with the gateway’s reason and Retry-After', async () => {
    const spent = gatewayClient(baseURL, await agentToken('spender'));
    for (let i = 0; i < 5; i++)
      await spent.chat.completions.create({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'x' }],
      });
    await waitFor(async () => (await tokensCounted()) >= 160 + 100, { what: 'the spender’s tokens counted' });
    const err = await spent.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] })
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const rate = err as InstanceType<typeof OpenAI.RateLimitError>;
    expect(rate.status).toBe(429);
    expect(Number(rate.headers?.get('retry-after'))).toBeGreaterThan(0);
    expect(rate.error).toMatchObject({ type: 'budget_exhausted', limit: 'agent-daily' });
    expect(rate.message).toMatch(/agent-daily: 100 tokens per day for this agent \(alice via spender\)/);
  });
});
