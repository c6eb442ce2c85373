// One loaded WASM policy, reused for every evaluation (opa-wasm instances are synchronous and Node
// runs one evaluation at a time, so sharing is safe). Errors never escape: every outcome is a value.
import { loadPolicy } from '@open-policy-agent/opa-wasm';
import { describeThrown } from '../../contracts/errors.ts';
import type { PolicyBundle } from './bundle-reader.ts';
import { createHostBuiltins } from './host-builtins.ts';

export type EvalOutcome =
  | { ok: true; result: unknown }
  | { ok: false; code: 'ERR_POLICY_UNDEFINED' | 'ERR_POLICY_EVAL'; detail: string };

type LoadedPolicy = Awaited<ReturnType<typeof loadPolicy>>;

export class PolicyEngine {
  private evalTimeNs = 0;

  private constructor(
    private readonly policy: LoadedPolicy,
    readonly bundle: PolicyBundle,
    readonly entrypoint: string,
  ) {}

  static async load(bundle: PolicyBundle, entrypoint: string): Promise<PolicyEngine> {
    // The host builtins read the clock through this holder so that time.now_ns is one value for a
    // whole evaluation, as OPA guarantees.
    const holder: { engine?: PolicyEngine } = {};
    const builtins = createHostBuiltins({ evalTimeNs: () => holder.engine?.evalTimeNs ?? Date.now() * 1e6 });
    const policy = await loadPolicy(bundle.wasm, undefined, builtins);
    const known = Object.keys(
      (policy as unknown as { entrypoints: Record<string, number> }).entrypoints ?? {},
    );
    if (!known.includes(entrypoint)) {
      throw new Error(
        `entrypoint "${entrypoint}" is not in the bundle (it has: ${known.join(', ') || 'none'}); ` +
          'rebuild with `chaperone policy build --entrypoint ' +
          entrypoint +
          '`',
      );
    }
    policy.setData(bundle.data);
    const engine = new PolicyEngine(policy, bundle, entrypoint);
    holder.engine = engine;
    return engine;
  }

  evaluate(input: unknown): EvalOutcome {
    this.evalTimeNs = Date.now() * 1e6;
    let resultSet: unknown;
    try {
      resultSet = this.policy.evaluate(input, this.entrypoint);
    } catch (err) {
      return { ok: false, code: 'ERR_POLICY_EVAL', detail: describeThrown(err) };
    }
    // opa-wasm returns [] for an undefined result and [{result: x}] otherwise.
    if (!Array.isArray(resultSet) || resultSet.length === 0) {
      return {
        ok: false,
        code: 'ERR_POLICY_UNDEFINED',
        detail: `${this.entrypoint} is undefined for this input`,
      };
    }
    const first = resultSet[0] as { result?: unknown } | undefined;
    if (resultSet.length > 1 || !first || !('result' in first)) {
      return { ok: false, code: 'ERR_POLICY_EVAL', detail: 'policy returned more than one result' };
    }
    return { ok: true, result: first.result };
  }
}
