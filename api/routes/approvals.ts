// The reviewers' side of human approval on the HTTP API. Listing and deciding need the reviewer role;
// on top of it a reviewer must be in one of the request's own reviewer groups (named by the policy) and
// can never decide their own request (ApprovalStore enforces both). The status of one request is for
// the person who raised it, the agent that raised it (its status_url is in the deny it received), and
// reviewers of it.

import { type Identity, personOf, samePerson } from '../../contracts/identity.ts';
import { ApprovalError, type ApprovalRequest, type ApprovalStore } from '../../fleet/approval-store.ts';
import { ApiError } from '../errors.ts';
import type { ApiHandler, ApiRequest, Role, Route } from '../route.ts';

const STATUS_FOR: Record<ApprovalError['kind'], number> = {
  not_found: 404,
  forbidden: 403,
  self_approval: 403,
  not_pending: 409,
  invalid: 400,
};

/** The store's refusal (unknown id, not a reviewer of it, one's own request, decided already) as the API's. */
export async function orApprovalRefusal<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (err instanceof ApprovalError) throw new ApiError(STATUS_FOR[err.kind], err.kind, err.message);
    throw err;
  }
}

const REVIEWER = { role: ['reviewer'] } as const;

/** What a requester or reviewer may see: no fingerprint internals beyond the body hash. */
function view(r: ApprovalRequest): Record<string, unknown> {
  const { fingerprint: _f, ...rest } = r;
  return rest;
}

function bodyField(req: ApiRequest, name: string): string | undefined {
  const b = req.body as Record<string, unknown> | null;
  const v = b?.[name];
  return typeof v === 'string' ? v : undefined;
}

/**
 * Who may read one request: an agent only a request it raised itself (same person, same agent name); a
 * person their own requests (also those their agents raised), and a reviewer the requests they may
 * decide. The same person means the same issuer and subject: alice of another issuer is someone else.
 */
export function maySee(r: ApprovalRequest, who: Identity, roles: ReadonlySet<Role>): boolean {
  const requester = { issuer: r.requester.issuer, subject: r.requester.subject };
  if (!samePerson(requester, personOf(who))) {
    return who.actor === null && roles.has('reviewer') && r.reviewers.some((g) => who.groups.includes(g));
  }
  if (who.actor === null) return true;
  const raisedBy = r.requester.actor as { agent?: unknown } | null;
  return raisedBy?.agent !== undefined && raisedBy.agent === who.actor.agent;
}

export type AdminAudit = (a: {
  /** The person who acted: their subject and the issuer that vouches for it. */
  subject: string;
  issuer: string;
  action: string;
  target?: string | null;
  reason: string;
  detail?: unknown;
}) => Promise<void>;

export interface ApprovalDecision {
  mode?: 'once' | 'window';
  ttl?: string;
  reason?: string;
}

/**
 * Decides request `id` as reviewer `who` and records who decided what — part of the trail, next to the
 * request and the retried decision. The JSON API and the console (`via`) decide through this one path.
 */
export async function decideApproval(
  store: ApprovalStore,
  audit: AdminAudit | undefined,
  who: Identity,
  id: string,
  verdict: 'approve' | 'deny',
  o: ApprovalDecision,
  via?: 'console',
): Promise<ApprovalRequest> {
  const r = await orApprovalRefusal(
    store.decide(id, { ...personOf(who), groups: who.groups }, verdict, {
      ...(o.mode ? { mode: o.mode } : {}),
      ...(o.ttl ? { ttl: o.ttl } : {}),
      ...(o.reason ? { reason: o.reason } : {}),
    }),
  );
  await audit?.({
    ...personOf(who),
    action: verdict === 'approve' ? 'APPROVE' : 'DENY_APPROVAL',
    target: r.target,
    reason: `${verdict === 'approve' ? 'approved' : 'denied'} ${r.method} ${r.path} for ${r.requester.subject} (approval ${r.id})${via ? ` in the ${via}` : ''}${o.reason ? `: ${o.reason}` : ''}`,
    detail: {
      approval_id: r.id,
      requester: r.requester,
      method: r.method,
      path: r.path,
      mode: r.mode,
      expires_at: r.expires_at,
      ...(via ? { via } : {}),
    },
  });
  return r;
}

function decide(store: ApprovalStore, verdict: 'approve' | 'deny', audit?: AdminAudit): ApiHandler {
  return async (req) => {
    const id = bodyField(req, 'id');
    if (!id) throw new ApiError(400, 'missing_id', 'body must be JSON with "id"');
    const mode = bodyField(req, 'mode');
    if (mode !== undefined && mode !== 'once' && mode !== 'window')
      throw new ApiError(400, 'invalid_mode', 'mode is once or window');
    const ttl = bodyField(req, 'ttl');
    const r = await decideApproval(store, audit, req.caller!, id, verdict, {
      ...(mode ? { mode } : {}),
      ...(ttl ? { ttl } : {}),
    });
    return { status: 200, body: view(r) };
  };
}

export function approvalRoutes(store: ApprovalStore, audit?: AdminAudit): Route[] {
  return [
    {
      method: 'GET',
      path: '/approvals',
      caller: REVIEWER,
      handle: async (req) => {
        const status = req.url.searchParams.get('status') ?? 'pending';
        const rows = await store.list({
          status: status as ApprovalRequest['status'],
          reviewerGroups: req.caller!.groups,
        });
        return { status: 200, body: { rows: rows.map(view) } };
      },
    },
    {
      method: 'GET',
      path: '/approvals/status',
      caller: 'human_or_agent',
      handle: async (req) => {
        const r = await store.get(req.url.searchParams.get('id') ?? '');
        // Someone else's request is as invisible as a missing one.
        if (!r || !maySee(r, req.caller!, req.roles))
          throw new ApiError(404, 'not_found', 'no such approval request');
        return { status: 200, body: view(r) };
      },
    },
    { method: 'POST', path: '/approvals/approve', caller: REVIEWER, handle: decide(store, 'approve', audit) },
    { method: 'POST', path: '/approvals/deny', caller: REVIEWER, handle: decide(store, 'deny', audit) },
  ];
}
