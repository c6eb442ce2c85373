// Step 4, evaluate: the policy on the input, its result mapped to a CheckResponse
// (result-mapper.ts). A policy that fails, is undefined or answers something ill-formed is a deny with
// its own code (ERR_POLICY_*), logged with the detail the client never sees.
import type { Logger } from 'pino';
import type { RequestHeaders } from '../input/request-headers.ts';
import { mapPolicyResult, serverDeny } from '../result-mapper.ts';
import type { Decided, DecisionContext } from './check-state.ts';
import type { PolicySnapshotPort } from './deps.ts';

/** The policy's raw result travels with the answer either way: the audit record keeps it. */
export type Evaluation =
  | { ok: true; result: unknown; decided: Decided }
  | { ok: false; result: unknown; deny: Decided };

export interface EvaluateEnv {
  ctx: DecisionContext;
  headers: RequestHeaders;
  logger: Logger;
}

export function evaluate(engine: PolicySnapshotPort['engine'], input: unknown, env: EvaluateEnv): Evaluation {
  const { ctx, logger } = env;
  const outcome = engine.evaluate(input);
  if (!outcome.ok) {
    logger.warn({ decision_id: ctx.decisionId, code: outcome.code, detail: outcome.detail }, 'policy failed');
    return { ok: false, result: null, deny: serverDeny(outcome.code, ctx) };
  }
  const mapped = mapPolicyResult(outcome.result, {
    ...ctx,
    requestHeaderNames: Object.keys(env.headers.all),
  });
  if (!mapped.ok) {
    logger.warn(
      { decision_id: ctx.decisionId, code: mapped.code, detail: mapped.detail },
      'bad policy result',
    );
    return { ok: false, result: outcome.result, deny: serverDeny(mapped.code, ctx) };
  }
  return { ok: true, result: outcome.result, decided: mapped };
}
