// Component `fleet state`: the approval requests, the agent inventory (with its revocations) and the
// usage counters of rate limits and budgets, mirrored from the store's database so the Check path and
// the API read them without I/O.
import { AgentRegistry } from '../../fleet/agent-registry.ts';
import { ApprovalStore } from '../../fleet/approval-store.ts';
import { UsageCounters } from '../../fleet/usage-counters.ts';
import type { GatewayComponent } from '../component.ts';
import { type GatewayContext, need } from '../context.ts';

export function fleetStateComponent(): GatewayComponent<GatewayContext> {
  let agents: AgentRegistry | null = null;
  let usage: UsageCounters | null = null;
  return {
    name: 'fleet state',
    async start(ctx) {
      const { state } = need(ctx, 'audit');
      ctx.approvals = await ApprovalStore.open(state);
      agents = await AgentRegistry.open(state);
      ctx.agents = agents;
      usage = await UsageCounters.open(state.sql, {
        node: state.node,
        logger: ctx.logger.child({ component: 'usage' }),
      });
      ctx.usage = usage;
    },
    async stop() {
      await usage?.close();
      await agents?.close();
    },
    status: () => (usage ? { usage: usage.status() } : null),
  };
}
