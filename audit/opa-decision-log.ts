// One decision as an OPA decision-log event, so OPA tooling reads Chaperone's decisions: the shape of
// `audit export --format opa` and of the decision logs pushed to an HTTP endpoint
// (decision-log-push.ts). A stored decision carries its place in the hash chain (`seq`, `hash`); a
// pushed one is sent before it is chained, and has neither.
import type { DecisionRecord, StoredDecision } from './records.ts';

export function toOpaDecisionLog(
  r: DecisionRecord & Partial<Pick<StoredDecision, 'seq' | 'hash'>>,
  entrypoint: string,
  labels: Record<string, string> = {},
): Record<string, unknown> {
  return {
    decision_id: r.decision_id,
    path: entrypoint,
    input: r.input,
    result: r.result,
    timestamp: r.time,
    labels: { app: 'chaperone', ...labels, policy_revision: r.policy_revision },
    bundles: { chaperone: { revision: r.policy_revision } },
    requested_by: r.host,
    metrics: { timer_server_handler_ns: Math.round(r.latency_us * 1000) },
    chaperone: {
      seq: r.seq,
      hash: r.hash,
      decision: r.decision,
      http_status: r.http_status,
      reason: r.reason,
      subject: r.subject,
      actor: r.actor,
    },
  };
}
