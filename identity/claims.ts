// Turns a verified JWT payload into the Identity the policy sees. Pure functions, no I/O: the
// signature and time checks happened before; what is left is shape. A claim Chaperone relies on
// (sub, groups, act) that has the wrong type rejects the token rather than being guessed at, since a
// policy that reads `groups` must be able to trust it.

import { ChaperoneError } from '../contracts/errors.ts';
import type { Actor, Identity } from '../contracts/identity.ts';

export type { Actor, Identity };

/** A claim with the wrong shape; the message names the claim, never its value, so a client may read it. */
export class ClaimShapeError extends ChaperoneError {
  constructor(message: string) {
    super('ERR_TOKEN_CLAIMS', message);
  }
}

/** Reads a dot path (`realm_access.roles`) from the claims; a key with a literal dot wins. */
export function readClaimPath(claims: Record<string, unknown>, path: string): unknown {
  if (Object.hasOwn(claims, path)) return claims[path];
  let cur: unknown = claims;
  for (const key of path.split('.')) {
    if (typeof cur !== 'object' || cur === null || Array.isArray(cur) || !Object.hasOwn(cur, key)) {
      return undefined;
    }
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

export function groupsFrom(claims: Record<string, unknown>, path: string): string[] {
  const value = readClaimPath(claims, path);
  if (value === undefined || value === null) return [];
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.every((g) => typeof g === 'string')) return [...value];
  throw new ClaimShapeError(`"${path}" claim must be a string or an array of strings`);
}

export function actorFrom(claims: Record<string, unknown>): Actor | null {
  const act = claims['act'];
  if (act === undefined || act === null) return null;
  if (typeof act !== 'object' || Array.isArray(act))
    throw new ClaimShapeError('"act" claim must be an object');
  const { sub, agent, run_id: runId } = act as Record<string, unknown>;
  if (typeof sub !== 'string' || sub === '')
    throw new ClaimShapeError('"act.sub" claim must be a non-empty string');
  const actor: Actor = { sub };
  if (agent !== undefined) {
    if (typeof agent !== 'string') throw new ClaimShapeError('"act.agent" claim must be a string');
    actor.agent = agent;
  }
  if (runId !== undefined) {
    if (typeof runId !== 'string') throw new ClaimShapeError('"act.run_id" claim must be a string');
    actor.run_id = runId;
  }
  return actor;
}

function optionalString(claims: Record<string, unknown>, name: string): string | null {
  const value = claims[name];
  return typeof value === 'string' ? value : null;
}

/**
 * The Identity of a payload whose signature, issuer, audience and times were already verified.
 * Frozen: one object is shared by every request that presents the same token.
 */
export function identityFromClaims(
  claims: Record<string, unknown>,
  opts: { issuer: string; groupsClaim: string },
): Identity {
  const sub = claims['sub'];
  if (typeof sub !== 'string' || sub === '')
    throw new ClaimShapeError('"sub" claim must be a non-empty string');
  const exp = claims['exp'];
  if (typeof exp !== 'number') throw new ClaimShapeError('"exp" claim must be a number');
  const aud = claims['aud'];
  const audience =
    typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud.filter((a) => typeof a === 'string') : [];
  const groups = groupsFrom(claims, opts.groupsClaim);
  const actor = actorFrom(claims);
  return Object.freeze({
    issuer: opts.issuer,
    subject: sub,
    audience: Object.freeze(audience) as string[],
    email: optionalString(claims, 'email'),
    name: optionalString(claims, 'name'),
    groups: Object.freeze(groups) as string[],
    actor: actor ? (Object.freeze(actor) as Actor) : null,
    token_id: optionalString(claims, 'jti'),
    expires_at: exp,
    claims: Object.freeze({ ...claims }),
  });
}
