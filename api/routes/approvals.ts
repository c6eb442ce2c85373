// The reviewers' side of human approval, on the HTTP API. Every call is authenticated with the same
// OIDC issuers as the data path; a reviewer must be in one of the request's reviewer groups and can
// never decide their own request (ApprovalStore enforces both).
import { ApprovalError, type ApprovalRequest, type ApprovalStore } from '../../fleet/approval-store.ts';
import type { Identity, IdentityVerifier } from '../../identity/verifier.ts';
import { ApiError, type ApiHandler, type ApiRequest } from '../http-api.ts';

const STATUS_FOR: Record<ApprovalError['kind'], number> = {
  not_found: 404,
  forbidden: 403,
  self_approval: 403,
  not_pending: 409,
  invalid: 400,
};

async function caller(verifier: IdentityVerifier | null, req: ApiRequest): Promise<Identity> {
  if (!verifier) throw new ApiError(503, 'no_identity', 'no identity issuer is configured');
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
  const res = await verifier.verify(headers);
  if (!res.ok) throw new ApiError(401, 'unauthenticated', res.reason);
  return res.identity;
}

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

export type AdminAudit = (a: {
  subject: string;
  action: string;
  target?: string | null;
  reason: string;
  detail?: unknown;
}) => Promise<void>;

export function approvalRoutes(
  store: ApprovalStore,
  verifier: IdentityVerifier | null,
  audit?: AdminAudit,
): Record<string, ApiHandler> {
  const decide =
    (verdict: 'approve' | 'deny'): ApiHandler =>
    async (req) => {
      const who = await caller(verifier, req);
      const id = bodyField(req, 'id');
      if (!id) throw new ApiError(400, 'missing_id', 'body must be JSON with "id"');
      const mode = bodyField(req, 'mode');
      if (mode !== undefined && mode !== 'once' && mode !== 'window')
        throw new ApiError(400, 'invalid_mode', 'mode is once or window');
      const ttl = bodyField(req, 'ttl');
      try {
        const r = await store.decide(id, { subject: who.subject, groups: who.groups }, verdict, {
          ...(mode ? { mode } : {}),
          ...(ttl ? { ttl } : {}),
        });
        // Who approved what is part of the trail, next to the request and the retried decision.
        await audit?.({
          subject: who.subject,
          action: verdict === 'approve' ? 'APPROVE' : 'DENY_APPROVAL',
          target: r.target,
          reason: `${verdict === 'approve' ? 'approved' : 'denied'} ${r.method} ${r.path} for ${r.requester.subject} (approval ${r.id})`,
          detail: {
            approval_id: r.id,
            requester: r.requester,
            method: r.method,
            path: r.path,
            mode: r.mode,
            expires_at: r.expires_at,
          },
        });
        return { status: 200, body: view(r) };
      } catch (err) {
        if (err instanceof ApprovalError) throw new ApiError(STATUS_FOR[err.kind], err.kind, err.message);
        throw err;
      }
    };
  return {
    'GET /approvals': async (req) => {
      const who = await caller(verifier, req);
      const status = req.url.searchParams.get('status') ?? 'pending';
      const rows = (
        await store.list({ status: status as ApprovalRequest['status'], reviewerGroups: who.groups })
      ).map(view);
      return { status: 200, body: { rows } };
    },
    'GET /approvals/status': async (req) => {
      const who = await caller(verifier, req);
      const r = await store.get(req.url.searchParams.get('id') ?? '');
      if (!r) throw new ApiError(404, 'not_found', 'no such approval request');
      const maySee = r.requester.subject === who.subject || r.reviewers.some((g) => who.groups.includes(g));
      // Someone else's request is as invisible as a missing one.
      if (!maySee) throw new ApiError(404, 'not_found', 'no such approval request');
      return { status: 200, body: view(r) };
    },
    'POST /approvals/approve': decide('approve'),
    'POST /approvals/deny': decide('deny'),
  };
}
