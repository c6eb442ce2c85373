// Turns a verified JWT payload into the Identity the policy sees. Pure functions, no I/O: the
// signature and time checks happened before; what is left is shape. A claim Chaperone relies on
// (sub, groups, act) that has the wrong type rejects the token rather than being guessed at, since a
// policy that reads `groups` must be able to trust it. A person is named by (subject_issuer, subject):
// for an agent token Chaperone minted, subject_issuer is the person's own issuer, from its `sub_id`.

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

/** RFC 9493 `sub_id` claim, `iss_sub` format: a subject qualified by the issuer that vouches for it. */
export const SUBJECT_ID_CLAIM = 'sub_id';

export interface IssSubId {
  format: 'iss_sub';
  iss: string;
  sub: string;
}

/** The `sub_id` an agent token carries for the person it acts for. */
export function issSubId(person: { issuer: string; subject: string }): IssSubId {
  return { format: 'iss_sub', iss: person.issuer, sub: person.subject };
}

/**
 * The person's issuer from an agent token's `sub_id`. Read only from tokens of Chaperone's own agent
 * issuer: any other issuer could name a person of a third one. It must name the token's own `sub`.
 */
function subjectIssuerFrom(claims: Record<string, unknown>, sub: string): string {
  const id = claims[SUBJECT_ID_CLAIM];
  if (typeof id !== 'object' || id === null || Array.isArray(id))
    throw new ClaimShapeError(`an agent token needs a "${SUBJECT_ID_CLAIM}" claim (iss_sub format)`);
  const { format, iss, sub: idSub } = id as Record<string, unknown>;
  if (format !== 'iss_sub' || typeof iss !== 'string' || iss === '')
    throw new ClaimShapeError(`"${SUBJECT_ID_CLAIM}" claim must be {format: "iss_sub", iss, sub}`);
  if (idSub !== sub) throw new ClaimShapeError(`"${SUBJECT_ID_CLAIM}.sub" claim must equal "sub"`);
  return iss;
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
  opts: { issuer: string; groupsClaim: string; agentIssuer?: boolean },
): Identity {
  const sub = claims['sub'];
  if (typeof sub !== 'string' || sub === '')
    throw new ClaimShapeError('"sub" claim must be a non-empty string');
  const subjectIssuer = opts.agentIssuer ? subjectIssuerFrom(claims, sub) : opts.issuer;
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
    subject_issuer: subjectIssuer,
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
