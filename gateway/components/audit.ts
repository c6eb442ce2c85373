// Component `audit`: the audit pipeline (store, spool, shipper) and the fleet state in its database.
// First up and last down, so every decision of every other component is recorded and flushed.
import type { GatewayComponent } from '../component.ts';
import type { AuditRuntime, GatewayContext } from '../context.ts';

export function auditComponent(): GatewayComponent<GatewayContext> {
  let audit: AuditRuntime | null = null;
  return {
    name: 'audit',
    async start(ctx) {
      audit = await ctx.options.openAudit();
      ctx.audit = audit;
      const s = audit.status() as { store?: string; spool?: { dir?: string } };
      ctx.say('audit', `${s.store ?? 'store'}  spool ${s.spool?.dir ?? '-'}`);
    },
    async stop() {
      await audit?.close();
    },
    status: () => (audit ? { state: audit.state.status(), audit: audit.status() } : null),
  };
}
