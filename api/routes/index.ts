// Every route of the HTTP API, in one table built from the areas below. The gateway serves exactly
// this table; test/unit/api-routes.test.ts and test/security/ iterate over it, so a new route is
// checked (declared caller, refusals) the moment it is added here.
import type { AgentRegistry } from '../../fleet/agent-registry.ts';
import type { ApprovalStore } from '../../fleet/approval-store.ts';
import { href } from '../console/html.ts';
import type { Route } from '../route.ts';
import { type AgentRouteDeps, agentRoutes } from './agents.ts';
import { approvalGrantRoutes } from './approval-grants.ts';
import { type AdminAudit, approvalRoutes } from './approvals.ts';
import { type AuditTrail, auditRoutes } from './audit.ts';
import { type ConsoleDeps, consoleRoutes } from './console.ts';
import { type DevTokenSource, devRoutes } from './dev.ts';
import { type HealthDeps, healthRoutes } from './health.ts';

export interface ApiRouteDeps {
  health: HealthDeps;
  /** The audit store's read side; without it the API has no /audit routes. */
  audit?: { trail: AuditTrail; entrypoint: string; verify?: () => Promise<unknown> };
  approvals: ApprovalStore;
  agents: Pick<AgentRouteDeps, 'issuer' | 'keys' | 'maxTtlMs' | 'usage'> & { registry: AgentRegistry };
  recordAdmin?: AdminAudit;
  /** Dev mode on a loopback API only. */
  dev?: DevTokenSource;
  /** The web console (console.enabled and an issuer to sign in with). */
  console?: ConsoleDeps;
}

/** With a console, the approval `status_url` opens the request's console page in a browser. */
const statusPageForBrowsers = (r: Route): Route =>
  r.path === '/approvals/status'
    ? { ...r, browserPage: (url) => href('/console/approval', { id: url.searchParams.get('id') ?? '' }) }
    : r;

export function apiRoutes(d: ApiRouteDeps): Route[] {
  return [
    ...healthRoutes(d.health),
    ...(d.audit ? auditRoutes(d.audit.trail, d.audit) : []),
    ...approvalRoutes(d.approvals, d.recordAdmin).map((r) => (d.console ? statusPageForBrowsers(r) : r)),
    ...approvalGrantRoutes(d.approvals, d.recordAdmin),
    ...agentRoutes({ ...d.agents, ...(d.recordAdmin ? { audit: d.recordAdmin } : {}) }),
    ...(d.dev ? devRoutes(d.dev) : []),
    ...(d.console ? consoleRoutes(d.console) : []),
  ];
}
