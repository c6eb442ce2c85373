// Component `fleet state`: the approval requests and the agent inventory (with its revocations),
// mirrored from the store's database so the Check path and the API read them without I/O.
import { AgentRegistry } from '../../fleet/agent-registry.ts';
import { ApprovalStore } from '../../fleet/approval-store.ts';
import type { GatewayComponent } from '../component.ts';
import { type GatewayContext, need } from '../context.ts';

export function fleetStateComponent(): GatewayComponent<GatewayContext> {
  let agents: AgentRegistry | null = null;
  return {
    name: 'fleet state',
    async start(ctx) {
      const { state } = need(ctx, 'audit');
      ctx.approvals = await ApprovalStore.open(state);
      agents = await AgentRegistry.open(state);
      ctx.agents = agents;
    },
    async stop() {
      await agents?.close();
    },
    status: () => null,
  };
}
