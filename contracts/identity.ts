// Who is behind a request, as every part of Chaperone names it: the verified identity the policy sees
// and the issuer settings it was verified against. Types only; the verifier lives in identity/.

/** RFC 8693 `act` claim: the agent acting on the subject's behalf. */
export interface Actor {
  sub: string;
  agent?: string;
  run_id?: string;
}

export interface Identity {
  issuer: string;
  subject: string;
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
}
