// Step 8, record: the decision event (contracts/decision.ts) handed to the DecisionRecorder (the audit
// spool) before the answer goes out. An allow that cannot be recorded durably becomes
// ERR_AUDIT_UNAVAILABLE: no unaudited access. A deny stays the deny it was.

import type { DecisionEvent, Verdict } from '../../contracts/decision.ts';
import { describeThrown } from '../../contracts/errors.ts';
import { traceIdOf } from '../../telemetry/traceparent.ts';
import { serverDeny } from '../result-mapper.ts';
import type { CheckState, Decided, Trail } from './check-state.ts';
import type { CheckDeps } from './deps.ts';

/** Path without the query string: queries may carry secrets. */
function pathOnly(raw: string | undefined): string {
  if (!raw) return '';
  const q = raw.indexOf('?');
  return q === -1 ? raw : raw.slice(0, q);
}

export function decisionEvent(state: CheckState, trail: Trail, verdict: Verdict): DecisionEvent {
  return {
    decisionId: state.decisionId,
    // Envoy's x-request-id (generated at the edge) is what its access log carries; `http.id` is a
    // stream id only ext_authz sees, so the decision keeps the header to join on.
    requestId: state.headers.get('x-request-id') ?? state.http.id ?? '',
    time: new Date(),
    routeId: state.routeId,
    target: state.target,
    method: state.http.method ?? '',
    host: state.http.host ?? '',
    path: pathOnly(state.http.path),
    subject: trail.identity?.subject ?? null,
    // The person's issuer, also behind an agent token (whose own `iss` is Chaperone's, kept in input).
    issuer: trail.identity?.subject_issuer ?? null,
    actor: trail.identity?.actor ?? null,
    verdict,
    policyRevision: trail.policyRevision,
    latencyUs: Number(process.hrtime.bigint() - state.started) / 1000,
    // Chaperone's span when it traces; else the client's (or Envoy's) traceparent, for correlation.
    traceId: state.trace?.traceId ?? traceIdOf(state.headers.get('traceparent')),
    input: trail.input,
    result: trail.result,
  };
}

/** Records the event; the answer to send, which is the decided one unless an allow went unrecorded. */
export async function recordDecision(
  deps: Pick<CheckDeps, 'recorder' | 'logger'>,
  event: DecisionEvent,
  decided: Decided,
): Promise<Decided> {
  if (!deps.recorder) return decided;
  try {
    await deps.recorder.record(event);
    return decided;
  } catch (err) {
    deps.logger.error({ decision_id: event.decisionId, err: describeThrown(err) }, 'decision not recorded');
    if (decided.verdict.decision !== 'allow') return decided;
    return serverDeny('ERR_AUDIT_UNAVAILABLE', {
      decisionId: event.decisionId,
      policyRevision: event.policyRevision,
    });
  }
}
