// Withdrawing a granted approval before it lapses (a window, or a one-time grant not used yet) on the
// JSON API: a reviewer of the request, or an admin for any request. Every authz server of the fleet
// drops the grant on the change notice, and a notification goes out (`approval.revoked`).

import { personOf } from '../../contracts/identity.ts';
import type { ApprovalStore } from '../../fleet/approval-store.ts';
import { ApprovalError } from '../../fleet/approval-store.ts';
import { ApiError } from '../errors.ts';
import type { Route } from '../route.ts';
import type { AdminAudit } from './approvals.ts';

const STATUS_FOR: Record<ApprovalError['kind'], number> = {
  not_found: 404,
  forbidden: 403,
  self_approval: 403,
  not_pending: 409,
  invalid: 400,
};

export function approvalGrantRoutes(store: ApprovalStore, audit?: AdminAudit): Route[] {
  return [
    {
      method: 'POST',
      path: '/approvals/revoke',
      caller: { role: ['reviewer', 'admin'] },
      handle: async (req) => {
        const b = req.body as Record<string, unknown> | null;
        const id = typeof b?.['id'] === 'string' ? b['id'] : '';
        const reason = typeof b?.['reason'] === 'string' ? b['reason'].slice(0, 500) : undefined;
        if (!id) throw new ApiError(400, 'missing_id', 'body must be JSON with "id"');
        const who = req.caller!;
        try {
          const r = await store.revokeGrant(
            id,
            { ...personOf(who), groups: who.groups, anyRequest: req.roles.has('admin') },
            reason,
          );
          await audit?.({
            ...personOf(who),
            action: 'REVOKE_APPROVAL',
            target: r.target,
            reason: `revoked the grant for ${r.method} ${r.path} of ${r.requester.subject} (approval ${r.id})`,
            detail: { approval_id: r.id, reason: reason ?? null },
          });
          const { fingerprint: _f, ...view } = r;
          return { status: 200, body: view };
        } catch (err) {
          if (err instanceof ApprovalError) throw new ApiError(STATUS_FOR[err.kind], err.kind, err.message);
          throw err;
        }
      },
    },
  ];
}
