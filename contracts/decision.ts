// The decision event: what one Check decided, in the shape the audit trail, the decision log, the
// agent inventory and metrics all read. The authz server produces it; everything else consumes it.

/** What the pipeline decided, in the shape the audit record and decision log use. */
export interface Verdict {
  decision: 'allow' | 'deny' | 'approval_required' | 'error';
  httpStatus: number;
  reason: string;
  reasonCode: string;
}

export interface ShadowOutcome {
  revision: string;
  decision: 'allow' | 'deny' | 'error';
  /** True when the candidate disagrees with the enforced answer. */
  differs: boolean;
}

/** The fields of a decision worth keeping; the audit trail and the decision log share them. */
export interface DecisionEvent {
  decisionId: string;
  requestId: string;
  time: Date;
  routeId: string | null;
  target: string | null;
  method: string;
  host: string;
  /** Path without the query string: queries may carry secrets. */
  path: string;
  subject: string | null;
  issuer: string | null;
  actor: unknown;
  verdict: Verdict;
  policyRevision: string;
  latencyUs: number;
  /** W3C trace id of the request's trace (Chaperone's Check span, or the client's traceparent), if any. */
  traceId?: string | null;
  /** Shadow mode: what the candidate policy would have decided (never enforced). */
  shadow?: ShadowOutcome;
  /** The policy input, for replay; the caller masks secrets before storing it. */
  input: unknown;
  result: unknown;
}

/** Durable recording hook: ALLOW is only returned once this resolves. */
export interface DecisionRecorder {
  record(event: DecisionEvent): Promise<void>;
}
