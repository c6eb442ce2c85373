// Step 3, buildInput: the policy input document (authz-server/input/build-input.ts) with the protocol
// decoders plugged in, or the typed deny for a request that must not reach the policy at all.
import { buildInput, type PolicyInput } from '../input/build-input.ts';
import { protocolHook } from '../protocols/index.ts';
import { serverDeny } from '../result-mapper.ts';
import type { Authentication } from './authenticate.ts';
import type { DecisionContext, Step } from './check-state.ts';
import type { CheckDeps } from './deps.ts';

export function prepareInput(
  req: unknown,
  auth: Authentication,
  deps: Pick<CheckDeps, 'requireCompleteBody' | 'maxBodyBytes'>,
  ctx: DecisionContext,
): Step<PolicyInput> {
  const built = buildInput(req, auth, {
    protocol: protocolHook,
    requireCompleteBody: deps.requireCompleteBody ?? true,
    ...(deps.maxBodyBytes ? { maxBodyBytes: deps.maxBodyBytes } : {}),
  });
  if (!built.ok) return { ok: false, deny: serverDeny(built.code, ctx, built.reason) };
  return { ok: true, value: built.input };
}
