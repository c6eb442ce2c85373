// Step 5, the approval gate. A granted approval for exactly this request is part of what the policy
// decides on (`input.approval`); a policy that answers `approval: {reviewers, ttl, reason}` instead
// of allowing gets a pending request and an `approval_required` deny with its status URL; an allow
// that rests on a one-time grant spends it, atomically across the fleet, or becomes ERR_APPROVAL_SPENT.
// A grant is bound to who asks and what the request does (approval-action.ts), not to its envelope.
import { createHash } from 'node:crypto';
import {
  type ApprovalRequest,
  type ApprovalRequestParts,
  type ApprovalSpec,
  fingerprintOf,
} from '../../fleet/approval-store.ts';
import type { Identity } from '../../identity/verifier.ts';
import type { PolicyInput } from '../input/policy-input.ts';
import { mcpApprovalError } from '../protocols/mcp.ts';
import { mapPolicyResult, serverDeny } from '../result-mapper.ts';
import { approvalActionDigest } from './approval-action.ts';
import type { CheckState, Decided, DecisionContext, HttpAttrs, Step } from './check-state.ts';
import type { CheckDeps } from './deps.ts';
import type { Evaluation } from './evaluate.ts';

/** One request's standing with the approval store; `grant` is what the policy was offered. */
export interface ApprovalGate {
  approvals: NonNullable<CheckDeps['approvals']>;
  parts: ApprovalRequestParts;
  fingerprint: string;
  grant: ApprovalRequest | null;
}

function bodyHash(http: HttpAttrs): string | null {
  const bytes =
    http.rawBody && http.rawBody.length > 0 ? http.rawBody : http.body ? Buffer.from(http.body) : null;
  return bytes ? createHash('sha256').update(bytes).digest('hex') : null;
}

/** The policy's `approval` field, when it is well-formed; anything else is a plain deny. */
function approvalSpec(result: unknown): ApprovalSpec | null {
  if (!result || typeof result !== 'object') return null;
  const a = (result as { approval?: unknown }).approval;
  if (!a || typeof a !== 'object') return null;
  const { reviewers, ttl, reason } = a as Record<string, unknown>;
  if (!Array.isArray(reviewers) || reviewers.length === 0 || !reviewers.every((g) => typeof g === 'string'))
    return null;
  return {
    reviewers: reviewers as string[],
    ...(typeof ttl === 'string' ? { ttl } : {}),
    ...(typeof reason === 'string' ? { reason } : {}),
  };
}

function offerGrant(input: unknown, grant: ApprovalRequest | null): void {
  if (grant)
    (input as { approval?: unknown }).approval = {
      id: grant.id,
      granted: true,
      approved_by: grant.decided_by,
    };
}

/**
 * Opens the gate for an authenticated request when approvals are configured: the grant this node's
 * memory holds for it (no I/O) is offered to the policy in the input.
 */
export function openGate(
  approvals: CheckDeps['approvals'],
  identity: Identity | null,
  state: CheckState,
  input: PolicyInput,
): ApprovalGate | null {
  if (!approvals || !identity) return null;
  const parts: ApprovalRequestParts = {
    subject: identity.subject,
    issuer: identity.subject_issuer,
    actor: identity.actor,
    target: state.target,
    method: state.http.method ?? '',
    path: state.http.path ?? '',
    bodySha256: bodyHash(state.http),
  };
  // Computed before the grant is offered: `input.approval` is the answer, not part of the question.
  const fingerprint = fingerprintOf({
    subject: parts.subject,
    issuer: parts.issuer,
    actor: parts.actor,
    target: parts.target,
    action: approvalActionDigest(input, state.http),
  });
  const grant = approvals.store.grantFor(fingerprint);
  offerGrant(input, grant);
  return { approvals, parts, fingerprint, grant };
}

/**
 * Evaluates once, or twice when the policy wants an approval this node's memory has not seen yet but
 * the store has (decided on another node a moment ago). Only this rare path asks the store.
 */
export async function evaluateWithGrant(
  gate: ApprovalGate | null,
  input: unknown,
  evaluateOnce: (input: unknown) => Evaluation,
): Promise<Evaluation> {
  const first = evaluateOnce(input);
  if (!gate || gate.grant || !first.ok || first.decided.verdict.decision === 'allow') return first;
  if (!approvalSpec(first.result)) return first;
  gate.grant = await gate.approvals.store.freshGrantFor(gate.fingerprint);
  if (!gate.grant) return first;
  offerGrant(input, gate.grant);
  return evaluateOnce(input);
}

/** The JSON-RPC id of an MCP request (for answering in JSON-RPC), or null for other traffic. */
function mcpRequestId(input: unknown): { id: string | number | null } | null {
  const p = (input as { protocol?: { name?: string; method?: string | null; id?: string | number | null } })
    .protocol;
  return p?.name === 'mcp' && p.method ? { id: p.id ?? null } : null;
}

/** A pending approval request (fleet-wide, one per fingerprint) and the deny that points to it. */
async function requestApproval(
  gate: ApprovalGate,
  spec: ApprovalSpec,
  result: Record<string, unknown>,
  input: unknown,
  mapContext: Parameters<typeof mapPolicyResult>[1],
): Promise<Decided | null> {
  const req = await gate.approvals.store.request({ fingerprint: gate.fingerprint, ...gate.parts, spec });
  const statusUrl = gate.approvals.statusUrl(req.id);
  const mcp = mcpRequestId(input);
  const gated = mapPolicyResult(
    {
      ...result,
      allowed: false,
      // An MCP client gets the JSON-RPC answer it shows its user (mcp.ts), not a transport error.
      http_status: mcp ? 200 : 403,
      body: mcp
        ? mcpApprovalError(mcp.id, {
            id: req.id,
            statusUrl,
            reason: req.reason,
            reviewers: req.reviewers,
          })
        : {
            error: 'approval_required',
            approval_id: req.id,
            status_url: statusUrl,
            reviewers: req.reviewers,
            reason: req.reason,
          },
      ...(mcp ? { headers: { 'content-type': 'application/json' } } : {}),
    },
    mapContext,
  );
  if (!gated.ok) return null;
  gated.verdict.decision = 'approval_required';
  gated.verdict.reasonCode = 'APPROVAL_REQUIRED';
  return gated;
}

/**
 * The policy's answer after the gate: an approval request when the policy asks for one, the spent
 * grant's deny when another authz server used it first, else the policy's answer unchanged.
 */
export async function applyApproval(
  gate: ApprovalGate | null,
  evaluation: Extract<Evaluation, { ok: true }>,
  input: unknown,
  env: { ctx: DecisionContext; requestHeaderNames: string[] },
): Promise<Step<Decided>> {
  const { decided, result } = evaluation;
  if (!gate) return { ok: true, value: decided };
  if (decided.verdict.decision !== 'allow') {
    const spec = approvalSpec(result);
    const gated = spec
      ? await requestApproval(gate, spec, result as Record<string, unknown>, input, {
          ...env.ctx,
          requestHeaderNames: env.requestHeaderNames,
        })
      : null;
    return { ok: true, value: gated ?? decided };
  }
  if (gate.grant && !(await gate.approvals.store.claim(gate.grant.id))) {
    // Another authz server spent this one-time grant first (or it lapsed): the request needs a new one.
    return { ok: false, deny: serverDeny('ERR_APPROVAL_SPENT', env.ctx, gate.grant.id) };
  }
  return { ok: true, value: decided };
}
