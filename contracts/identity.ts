// Who is behind a request, as every part of Chaperone names it: the verified identity the policy sees
// and the issuer settings it was verified against. Types and two pure helpers; the verifier lives in
// identity/.

/** RFC 8693 `act` claim: the agent acting on the subject's behalf. */
export interface Actor {
  sub: string;
  agent?: string;
  run_id?: string;
}

export interface Identity {
  /** The token's `iss`: a configured issuer, or Chaperone's own agent issuer for an agent token. */
  issuer: string;
  /** The person (`sub`) the token names: within `subject_issuer`, never on its own. */
  subject: string;
  /**
   * The issuer that vouches for `subject`: `issuer` itself for a person's token; for an agent token
   * Chaperone minted, the person's own issuer (its `sub_id` claim). Two tokens name the same person
   * only when both `subject_issuer` and `subject` are equal.
   */
  subject_issuer: string;
  audience: string[];
  email: string | null;
  name: string | null;
  groups: string[];
  /** RFC 8693 `act` claim: who acts on the subject's behalf (an agent), or null. */
  actor: Actor | null;
  /** `jti` */
  token_id: string | null;
  /** Epoch seconds. */
  expires_at: number;
  /** The verified payload. */
  claims: Record<string, unknown>;
}

export interface IssuerConfig {
  /** Exact `iss`; discovery at `${issuer}/.well-known/openid-configuration`. */
  issuer: string;
  /** `aud` must contain one of them. */
  audiences: string[];
  /** Skip discovery when given. */
  jwksUri?: string;
  /** Dot path into the claims, default 'groups'. */
  groupsClaim?: string;
  /** Default: RS256/384/512, PS256/384/512, ES256/384/512, EdDSA; never HS* or none. */
  algorithms?: string[];
  /**
   * Chaperone's own agent issuer (set by the gateway and `authz serve --control-plane`, never from
   * chaperone.yaml): its tokens act for a person of another issuer, named by their `sub_id` claim
   * (RFC 9493 `iss_sub`); a token of this issuer without one is refused.
   */
  agentIssuer?: boolean;
}

/** A person as Chaperone names one everywhere: the issuer that vouches for them and their `sub` there. */
export interface Person {
  issuer: string;
  subject: string;
}

/** The person a verified token speaks for (the human behind an agent token). */
export function personOf(id: Pick<Identity, 'subject_issuer' | 'subject'>): Person {
  return { issuer: id.subject_issuer, subject: id.subject };
}

/** Equal `sub` values of two issuers are two people. */
export function samePerson(a: Person, b: Person): boolean {
  return a.issuer === b.issuer && a.subject === b.subject;
}
