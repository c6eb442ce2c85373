// A real LangChain.js agent (examples/langchain) with an agent token, through `chaperone up --dev` and
// Envoy: one tool call allowed, one denied by a body rule, one held for a security reviewer and run after
// approval — and the audit trail shows all of them as alice acting through the agent.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAgent } from '../../examples/langchain/agent.ts';
import { PROJECT_ROOT } from '../../lib/tools.ts';
import { apiFetch, type GatewayProcess, startGatewayProcess } from '../support/gateway-process.ts';
import { waitFor } from '../support/wait.ts';

let gw: GatewayProcess;

function cli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(
      process.execPath,
      [join(PROJECT_ROOT, 'cli/bin/chaperone.js'), ...args],
      { timeout: 60_000 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`${args.join(' ')}: ${stderr}`)) : resolve(stdout.trim()),
    ),
  );
}

beforeAll(async () => {
  gw = await startGatewayProcess();
}, 120_000);

afterAll(async () => {
  await gw?.cleanup();
});

describe('LangChain.js agent through Chaperone', () => {
  it('is allowed, denied and held for approval, all audited as alice via the agent', async () => {
    const alice = await cli(['dev', 'token', 'alice', '--api', gw.api]);
    const carol = await cli(['dev', 'token', 'carol', '--api', gw.api]);
    const agentToken = await cli([
      'agent',
      'token',
      '--name',
      'langchain-demo',
      '--targets',
      'demo',
      '--api',
      gw.api,
      '--token',
      alice,
    ]);

    const { answer, outcomes } = await runAgent({
      egress: gw.egress,
      agentToken,
      log: () => undefined,
      // The reviewer: carol approves the pending request the moment the agent starts waiting.
      onApprovalRequired: async ({ approval_id }) => {
        await cli(['approvals', 'approve', approval_id, '--api', gw.api, '--token', carol]);
      },
    });
    expect(answer).toContain('deleted after approval');
    expect(outcomes.map((o) => [o.tool, o.status])).toEqual([
      ['list_items', 200],
      ['create_item', 403],
      ['delete_item', 200],
    ]);
    expect(outcomes[2]!.approvalId).toBeDefined();

    await waitFor(
      async () => {
        const res = await apiFetch(gw, carol, `/audit/decisions?agent=langchain-demo&limit=20`);
        const { rows } = (await res.json()) as { rows: unknown[] };
        return rows.length >= 4;
      },
      { what: 'the agent decisions in the audit trail', timeoutMs: 10_000 },
    );
    const { rows } = (await (
      await apiFetch(gw, carol, `/audit/decisions?agent=langchain-demo&limit=20`)
    ).json()) as {
      rows: { subject: string; actor: { agent: string }; method: string; decision: string; reason: string }[];
    };
    const trail = rows.reverse().map((r) => `${r.method} ${r.decision}`);
    expect(trail).toEqual(['GET allow', 'POST deny', 'DELETE approval_required', 'DELETE allow']);
    expect(rows.every((r) => r.subject === 'alice' && r.actor.agent === 'langchain-demo')).toBe(true);
    expect(rows.find((r) => r.method === 'DELETE' && r.decision === 'allow')?.reason).toContain(
      'approved by carol',
    );
  });
});
