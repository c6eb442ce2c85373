// Step 7, shadow: the candidate policy's answer on the same input, recorded and counted, never
// enforced. Only where the enforcing policy itself decided (no server deny, an input to judge).
import type { ShadowOutcome, Verdict } from '../../contracts/decision.ts';
import type { CheckDeps } from './deps.ts';

function allows(result: unknown): boolean {
  return (
    result === true ||
    (!!result && typeof result === 'object' && (result as { allowed?: unknown }).allowed === true)
  );
}

export function shadowOutcome(
  deps: Pick<CheckDeps, 'shadow' | 'metrics'>,
  input: unknown,
  verdict: Verdict,
): ShadowOutcome | null {
  const snapshot = deps.shadow?.current();
  if (!snapshot || input === null || verdict.reasonCode.startsWith('ERR_')) return null;
  deps.metrics.shadow ??= { evaluated: 0, differences: 0, errors: 0 };
  const counts = deps.metrics.shadow;
  counts.evaluated++;
  const out = snapshot.engine.evaluate(input);
  let decision: ShadowOutcome['decision'] = 'error';
  if (out.ok) decision = allows(out.result) ? 'allow' : 'deny';
  else counts.errors++;
  const differs = decision !== (verdict.decision === 'allow' ? 'allow' : 'deny');
  if (differs) counts.differences++;
  return { revision: snapshot.revision, decision, differs };
}
