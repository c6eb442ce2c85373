// Token budgets held across a fleet: two gateways — each its own control plane, authz server and real
// Envoy, started with the real CLI — share one PostgreSQL, in front of a fake LLM provider that reports
// usage like OpenAI and Anthropic do. alice's daily budget is 100 tokens; each answer reports 40. Her
// requests go through either node — a JSON answer, a streamed chat completion (its final usage chunk)
// through her agent, a streamed Anthropic message (message_start + message_delta) — until the fleet's
// count reaches the budget; then both nodes answer 429 with Retry-After, and nothing more reaches the
// provider. The agent's use today shows in `chaperone agents`, the counts in /status.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.ts';
import { type FakeLlm, startFakeLlm } from '../support/fake-llm.ts';
import {
  apiFetch,
  devGatewayYaml,
  type GatewayPorts,
  type GatewayProcess,
  gatewayPorts,
  startGatewayProcess,
} from '../support/gateway-process.ts';
import {
  createTestDatabase,
  DATABASE_URL,
  NO_POSTGRES_REASON,
  type TestDatabase,
} from '../support/postgres.ts';
import { waitFor } from '../support/wait.ts';

let db: TestDatabase;
let llm: FakeLlm;
let a: GatewayProcess;
let b: GatewayProcess;
let portsA: GatewayPorts;
const tokens: Record<string, string> = {};

/** Both nodes trust A's dev issuer and agent issuer, share the store, and serve the `llm` target. */
function fleetYaml(p: GatewayPorts): string {
  const llmTarget = `  - name: llm
    upstream: ${llm.url}
    protocol: llm
    match:
      path_prefix: /llm/
    prefix_rewrite: /v1/
    timeout: 0s
    credentials:
      - header: authorization
        value: env:FAKE_LLM_KEY
        format: Bearer {}
`;
  return devGatewayYaml({ ...p, idp: portsA.idp, demo: portsA.demo }, llmTarget)
    .replace('store: embedded', `store: ${db.url}`)
    .replace(
      `  http_address: 127.0.0.1:${p.api}\n`,
      `  http_address: 127.0.0.1:${p.api}\n  issuer: http://127.0.0.1:${portsA.api}\n`,
    )
    .concat(`budgets:
  - name: daily-tokens
    targets: [llm]
    per: user
    tokens_per_day: 100
rate_limits:
  - name: per-agent-rpm
    targets: [llm]
    per: agent
    requests_per_minute: 600
`);
}

async function post(gw: GatewayProcess, path: string, token: string, body: object): Promise<Response> {
  return fetch(`${gw.egress}/llm/${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

const chat = (extra: object = {}) => ({
  model: 'gpt-4o-mini',
  messages: [{ role: 'user', content: 'hi' }],
  ...extra,
});

/** The fleet's tokens on the llm target today, as `gw` holds them in memory (its /status). */
async function tokensSeenBy(gw: GatewayProcess): Promise<number> {
  const status = (await (await apiFetch(gw, tokens['carol']!, '/status')).json()) as {
    usage?: { targets?: Record<string, { day: { tokens: number } }> };
  };
  return status.usage?.targets?.['llm']?.day.tokens ?? 0;
}

const bothSee = (n: number) =>
  waitFor(async () => (await tokensSeenBy(a)) === n && (await tokensSeenBy(b)) === n, {
    what: `both nodes at ${n} tokens`,
    timeoutMs: 15_000,
  });

describe.skipIf(!DATABASE_URL)(
  `LLM token budgets across two gateways on one PostgreSQL${DATABASE_URL ? '' : ` (${NO_POSTGRES_REASON})`}`,
  () => {
    beforeAll(async () => {
      db = await createTestDatabase('chaperone_budgets');
      // Streamed answers take about three seconds: longer than any per-message timeout on the way.
      llm = await startFakeLlm({ input: 30, output: 10, eventDelayMs: 350 });
      portsA = await gatewayPorts();
      const env = { FAKE_LLM_KEY: 'sk-edge-secret' };
      a = await startGatewayProcess({ ports: portsA, yaml: fleetYaml, env });
      b = await startGatewayProcess({ ports: await gatewayPorts(), yaml: fleetYaml, env });
      for (const u of ['alice', 'carol']) {
        const res = await fetch(`${a.api}/dev/token?user=${u}`);
        tokens[u] = ((await res.json()) as { token: string }).token;
      }
    }, 300_000);

    afterAll(async () => {
      await a?.cleanup();
      await b?.cleanup();
      await llm?.close();
      await db?.drop();
    });

    it('lets alice through on either node until her budget is spent, then 429 with Retry-After on both', async () => {
      const alice = tokens['alice']!;
      // 1. A plain JSON answer through A: 40 tokens.
      const first = await post(a, 'chat/completions', alice, chat());
      expect(first.status).toBe(200);
      expect(((await first.json()) as { usage: { total_tokens: number } }).usage.total_tokens).toBe(40);
      await bothSee(40);

      // 2. A streamed chat completion through B, by alice's agent: the final usage chunk counts.
      const agent = await runCli([
        'agent',
        'token',
        '--name',
        'llm-bot',
        '--targets',
        'llm',
        '--api',
        a.api,
        '--token',
        alice,
      ]);
      expect(agent.code, agent.out).toBe(0);
      const agentToken = agent.out.trim().split('\n').pop()!;
      const streamed = await post(
        b,
        'chat/completions',
        agentToken,
        chat({ stream: true, stream_options: { include_usage: true } }),
      );
      expect(streamed.status).toBe(200);
      expect(streamed.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const text = await streamed.text();
      expect(text).toContain('"total_tokens":40');
      expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
      await bothSee(80);

      // A stream that would not report its usage is refused on a budgeted target (and not counted).
      const blind = await post(a, 'chat/completions', alice, chat({ stream: true }));
      expect(blind.status).toBe(400);
      expect(((await blind.json()) as { error: string }).error).toBe('usage_required');

      // 3. A streamed Anthropic message through A: message_start (30 in) + message_delta (10 out).
      const claude = await post(a, 'messages', alice, {
        model: 'claude-sonnet',
        max_tokens: 64,
        stream: true,
        messages: [{ role: 'user', content: 'hi' }],
      });
      expect(claude.status).toBe(200);
      expect(await claude.text()).toContain('event: message_delta');
      await bothSee(120);

      // 4. Spent, fleet-wide: both nodes answer 429 with Retry-After; nothing reaches the provider.
      for (const gw of [b, a]) {
        const over = await post(gw, 'chat/completions', alice, chat());
        expect(over.status).toBe(429);
        const retryAfter = Number(over.headers.get('retry-after'));
        expect(retryAfter).toBeGreaterThan(0);
        expect(retryAfter).toBeLessThanOrEqual(86_400);
        // In OpenAI's error shape, which OpenAI-compatible clients show.
        expect(await over.json()).toEqual({
          error: {
            message: 'daily-tokens: 100 tokens per day for this user (alice)',
            type: 'budget_exhausted',
            code: 'budget_exhausted',
            param: null,
            limit: 'daily-tokens',
            retry_after: retryAfter,
          },
        });
      }
      expect(llm.requests).toHaveLength(3);
      // The provider saw the edge's key, never alice's token, and was asked for unencoded answers.
      for (const r of llm.requests) {
        expect(r.headers['authorization']).toBe('Bearer sk-edge-secret');
        expect(r.headers['accept-encoding']).toBeUndefined();
      }
    });

    it("shows the agent's use today in `chaperone agents` and the fleet's counts in /status", async () => {
      const listed = await runCli(['agents', '--api', b.api, '--token', tokens['alice']!, '--json']);
      expect(listed.code, listed.out).toBe(0);
      const rows = JSON.parse(listed.out.slice(listed.out.indexOf('['))) as {
        agent: string;
        today: unknown;
      }[];
      expect(rows.find((r) => r.agent === 'llm-bot')?.today).toEqual({ requests: 1, tokens: 40 });
      const table = await runCli(['agents', '--api', a.api, '--token', tokens['alice']!]);
      expect(table.out).toMatch(/llm-bot .* 1\/40 /);
      const status = (await (await apiFetch(a, tokens['carol']!, '/status')).json()) as {
        usage: Record<string, unknown>;
      };
      expect(status.usage).toMatchObject({
        flush_errors: 0,
        targets: { llm: { day: { requests: 3, tokens: 120 } } },
      });
    });
  },
);
