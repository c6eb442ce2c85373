// Health, readiness and status. /healthz and /readyz answer anyone and say nothing but up/ready (a
// load balancer or a probe needs no more); /status, the state of every component, is for operators.
import type { Route } from '../route.ts';

export interface HealthDeps {
  /** Envoy ready, a policy loaded and an Envoy connected to the control plane. */
  ready(): Promise<boolean>;
  /** Every running component's status sections. */
  status(): Record<string, unknown>;
}

export function healthRoutes(d: HealthDeps): Route[] {
  return [
    {
      method: 'GET',
      path: '/healthz',
      // Anonymous: a liveness probe carries no token; the answer holds nothing but "ok".
      caller: 'anonymous',
      handle: () => ({ status: 200, body: { status: 'ok' } }),
    },
    {
      method: 'GET',
      path: '/readyz',
      // Anonymous: a readiness probe carries no token; the answer is the verdict alone.
      caller: 'anonymous',
      handle: async () => {
        const ready = await d.ready().catch(() => false);
        return { status: ready ? 200 : 503, body: { ready } };
      },
    },
    {
      method: 'GET',
      path: '/status',
      caller: { role: ['admin', 'auditor'] },
      handle: () => ({ status: 200, body: d.status() }),
    },
  ];
}
