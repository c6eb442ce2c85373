// Withdrawing a granted approval before it lapses (a window, or a one-time grant not used yet) on the
// JSON API: a reviewer of the request, or an admin for any request. Every authz server of the fleet
// drops the grant on the change notice, and a notification goes out (`approval.revoked`).

import { type Identity, personOf } from '../../contracts/identity.ts';
import type { ApprovalRequest, ApprovalStore } from '../../fleet/approval-store.ts';
import { ApiError } from '../errors.ts';
import type { Role, Route } from '../route.ts';
import { type AdminAudit, orApprovalRefusal } from './approvals.ts';

/**
 * Withdraws the grant of request `id` as `who` (a reviewer of it, or any with the admin role) and
 * records it. The JSON API and the console (`via`) revoke through this one path.
 */
export async function revokeApprovalGrant(
  store: ApprovalStore,
  audit: AdminAudit | undefined,
  who: Identity,
  roles: ReadonlySet<Role>,
  id: string,
  reason: string | undefined,
  via?: 'console',
): Promise<ApprovalRequest> {
  const r = await orApprovalRefusal(
    store.revokeGrant(id, { ...personOf(who), groups: who.groups, anyRequest: roles.has('admin') }, reason),
  );
  await audit?.({
    ...personOf(who),
    action: 'REVOKE_APPROVAL',
    target: r.target,
    reason: `revoked the grant for ${r.method} ${r.path} of ${r.requester.subject} (approval ${r.id})${via ? ` in the ${via}` : ''}${reason ? `: ${reason}` : ''}`,
    detail: { approval_id: r.id, reason: reason ?? null, ...(via ? { via } : {}) },
  });
  return r;
}

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
        const r = await revokeApprovalGrant(store, audit, req.caller!, req.roles, id, reason);
        const { fingerprint: _f, ...view } = r;
        return { status: 200, body: view };
      },
    },
  ];
}
