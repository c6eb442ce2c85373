// Builtins that a Rego policy compiled to WebAssembly needs from its host: neither the module (OPA's
// wasm compiler) nor the opa-wasm npm SDK implements them. They are passed to opa-wasm as
// `customBuiltins`; policies/capabilities.json lists exactly module + SDK + these
// (`npx tsx scripts/gen-capabilities.ts`), so a policy using anything else fails at `opa build`.
//
// Semantics follow OPA v1.22.2 (topdown/*.go), checked against `opa eval` by
// test/unit/host-builtins.test.ts:
// - A builtin error in OPA's default (non-strict) mode makes the expression undefined. Host builtins
//   return `undefined` for those cases; opa-wasm then hands the module a null value, which the
//   compiled policy treats as undefined — the same outcome.
// - A thrown exception propagates out of opa-wasm's `evaluate` and aborts the whole evaluation; the
//   engine turns that into an ERR_POLICY_EVAL deny (fail closed). Host builtins throw only for bugs
//   and for inputs they knowingly cannot reproduce (HostBuiltinError).
// - Note: opa-wasm consults its own builtins first (sprintf, regex.split, json.is_valid, yaml.*), so
//   an entry here with one of those names would never be called.
import { cryptoBuiltins } from './builtins/crypto.ts';
import { encodingBuiltins } from './builtins/encoding.ts';
import { createJwtBuiltins } from './builtins/jwt.ts';
import { stringBuiltins } from './builtins/strings.ts';
import { createTimeBuiltins, evalTimeBigInt } from './builtins/time.ts';

export { HostBuiltinError } from './builtins/values.ts';

export interface HostBuiltinContext {
  /**
   * The evaluation's clock in Unix nanoseconds, the value `time.now_ns()` returns: the engine sets it
   * once before each `evaluate`, so every call within one evaluation sees the same time, as in OPA.
   * A bigint is exact; a number above 2^53 (every current date) is already rounded to a multiple of
   * 256 ns. Either way the value enters the policy exact (raw JSON), but a `time.now_ns()` that ends up
   * in the policy's result is rounded again by opa-wasm's JSON.parse.
   */
  evalTimeNs(): bigint | number;
  /** Receives `print(...)` output when a bundle was built with --wasm-include-print. */
  print?(message: string): void;
}

export type HostBuiltin = (...args: any[]) => unknown;

/** OPA's print formatting: each operand is a set of values; empty means undefined. */
function formatPrintOperand(values: unknown): string {
  if (!Array.isArray(values) || values.length === 0) return '<undefined>';
  return values.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join(', ');
}

export function createHostBuiltins(ctx: HostBuiltinContext): Record<string, HostBuiltin> {
  const nowNs = () => Number(evalTimeBigInt(ctx));
  return {
    ...createTimeBuiltins(ctx),
    ...createJwtBuiltins(nowNs),
    ...cryptoBuiltins,
    ...encodingBuiltins,
    ...stringBuiltins,
    // Deprecated debugging aids: kept so that old policies build; both are always true in OPA.
    trace: () => true,
    'internal.print': (operands: unknown) => {
      if (Array.isArray(operands)) ctx.print?.(operands.map(formatPrintOperand).join(' '));
      return true;
    },
  };
}
