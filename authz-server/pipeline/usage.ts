// Rate limits and token budgets on the Check path: the counts of the current windows for this person,
// their agent and the target (fleet/usage-counters.ts, memory only) and the configured limits that
// apply to the target go to the policy as `input.usage`; the policy decides (the shipped library
// answers 429 with Retry-After). An allowed request is counted once its decision is recorded; the
// tokens of an LLM response are counted on the response path (masking/usage-meter.ts).
import type { UsageLimitConfig } from '../../config/types.ts';
import type { UsageKey, UsageSnapshot } from '../../fleet/usage-counters.ts';
import type { Identity } from '../../identity/verifier.ts';
import type { PolicyInput } from '../input/policy-input.ts';

/** The part of UsageCounters the Check path uses. */
export interface UsageCountersPort {
  snapshot(key: UsageKey): UsageSnapshot;
  countRequest(key: UsageKey): void;
}

export interface UsageDeps {
  counters: UsageCountersPort;
  /** `rate_limits:` and `budgets:`, flattened (config/types.ts). */
  limits: readonly UsageLimitConfig[];
}

/** A configured limit as the policy sees it (input.usage.limits[]). */
export interface PolicyLimit {
  name: string;
  per: UsageLimitConfig['per'];
  kind: UsageLimitConfig['kind'];
  window: UsageLimitConfig['window'];
  limit: number;
}

export type PolicyUsage = UsageSnapshot & { limits: PolicyLimit[] };

/** Who is counted: the person (their own issuer, also behind an agent token), the agent, the target. */
export function usageKeyOf(identity: Identity | null, target: string | null): UsageKey | null {
  if (!identity || !target) return null;
  const agent = identity.actor ? (identity.actor.agent ?? identity.actor.sub) : null;
  return { target, issuer: identity.subject_issuer, subject: identity.subject, agent };
}

/** The limits of one target, computed once per target name (the config is fixed for the process). */
export class TargetLimits {
  private readonly byTarget = new Map<string, PolicyLimit[]>();
  constructor(private readonly limits: readonly UsageLimitConfig[]) {}

  of(target: string): PolicyLimit[] {
    let found = this.byTarget.get(target);
    if (!found) {
      found = this.limits
        .filter((l) => l.targets === null || l.targets.includes(target))
        .map(({ name, per, kind, window, limit }) => ({ name, per, kind, window, limit }));
      this.byTarget.set(target, found);
    }
    return found;
  }
}

/** Sets `input.usage` for an authenticated request on a known target. */
export function addUsageToInput(
  input: PolicyInput,
  counters: UsageCountersPort,
  limits: TargetLimits,
  key: UsageKey | null,
): void {
  if (!key) return;
  const usage: PolicyUsage = { ...counters.snapshot(key), limits: limits.of(key.target) };
  (input as PolicyInput & { usage?: PolicyUsage }).usage = usage;
}
