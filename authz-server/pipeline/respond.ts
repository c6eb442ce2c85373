// Step 9, respond: count the decision, write its one log line, tell the observers (agent inventory),
// and hand back the answer for Envoy. Observers cannot change or break the answer.
import type { DecisionEvent } from '../../contracts/decision.ts';
import { type AuthzErrorCode, describeThrown } from '../../contracts/errors.ts';
import type { CheckResponseMessage } from '../result-mapper.ts';
import type { CheckDeps, CheckMetrics } from './deps.ts';

export function countDecision(metrics: CheckMetrics, code: AuthzErrorCode | null, allowed: boolean): void {
  metrics.total++;
  if (allowed) metrics.allowed++;
  else metrics.denied++;
  if (code) metrics.errors[code] = (metrics.errors[code] ?? 0) + 1;
}

function logDecision(deps: Pick<CheckDeps, 'logger'>, event: DecisionEvent): void {
  const { verdict } = event;
  deps.logger.info(
    {
      decision_id: event.decisionId,
      request_id: event.requestId,
      route_id: event.routeId,
      target: event.target,
      method: event.method,
      host: event.host,
      path: event.path,
      sub: event.subject,
      decision: verdict.decision,
      status: verdict.httpStatus,
      reason: verdict.reason,
      reason_code: verdict.reasonCode,
      policy_revision: event.policyRevision,
      latency_us: Math.round(event.latencyUs),
    },
    'decision',
  );
}

export function respond(
  deps: Pick<CheckDeps, 'logger' | 'metrics' | 'onDecision' | 'telemetry'>,
  event: DecisionEvent,
  response: CheckResponseMessage,
): CheckResponseMessage {
  const { verdict } = event;
  const serverCode = verdict.reasonCode.startsWith('ERR_') ? (verdict.reasonCode as AuthzErrorCode) : null;
  countDecision(deps.metrics, serverCode, verdict.decision === 'allow');
  deps.telemetry?.decided(event);
  logDecision(deps, event);
  if (deps.onDecision) {
    try {
      deps.onDecision(event);
    } catch (err) {
      deps.logger.error(
        { decision_id: event.decisionId, err: describeThrown(err) },
        'decision observer failed',
      );
    }
  }
  return response;
}
