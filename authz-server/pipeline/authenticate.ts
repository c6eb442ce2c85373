// Step 2, authenticate: the caller's token → a verified Identity, or the reason there is none. Not a
// deny: the policy decides what an unauthenticated request may do (input.identity_error), so every
// failure here, revocation included, is handed on as a value.

import type { Identity } from '../../identity/verifier.ts';
import type { IdentityErrorInfo } from '../input/policy-input.ts';
import type { RequestHeaders } from '../input/request-headers.ts';
import type { CheckDeps } from './deps.ts';
import { resourceAudienceProblem } from './resource-audience.ts';

export type Authentication =
  | { identity: Identity; identityError: null }
  | { identity: null; identityError: IdentityErrorInfo };

export async function authenticate(
  deps: Pick<CheckDeps, 'identity' | 'revocation' | 'audiences'>,
  headers: RequestHeaders,
  routeResource: string | null = null,
): Promise<Authentication> {
  if (!deps.identity) {
    return {
      identity: null,
      identityError: { code: 'ERR_TOKEN_MISSING', reason: 'no identity issuer is configured' },
    };
  }
  const verified = await deps.identity.verify(headers.all);
  if (!verified.ok)
    return { identity: null, identityError: { code: verified.code, reason: verified.reason } };
  // The kill switch: a revoked agent token is treated as no token at all.
  const revoked = deps.revocation?.revoked(verified.identity) ?? null;
  if (revoked) return { identity: null, identityError: { code: 'ERR_TOKEN_REVOKED', reason: revoked } };
  const audience = resourceAudienceProblem(verified.identity, routeResource, deps.audiences);
  if (audience) return { identity: null, identityError: { code: 'ERR_TOKEN_AUDIENCE', reason: audience } };
  return { identity: verified.identity, identityError: null };
}
