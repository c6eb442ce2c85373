// Defaults of the identity verifier, one place, each with the reason for its value.
export const IDENTITY_DEFAULTS = {
  /** Header the token is read from; `Bearer <jwt>` is expected in it. */
  tokenHeader: 'authorization',
  /** Clock skew allowed for exp/nbf/iat. */
  clockToleranceSec: 30,
  /** Skew beyond a minute hides broken clocks and stretches every token's life; never allow more. */
  maxClockToleranceSec: 60,
  /** Unknown `kid` triggers at most one JWKS refresh per interval, so forged kids cannot flood the IdP. */
  jwksRefreshMinIntervalMs: 30_000,
  /** Keys are re-fetched this long after the last fetch, so a key the issuer withdrew stops verifying. */
  jwksMaxAgeMs: 10 * 60_000,
  /** A failed discovery/JWKS fetch is retried by a later request, but not more often than this. */
  fetchRetryAfterFailureMs: 1_000,
  /** Discovery/JWKS fetches are abandoned after this long, so a hung IdP cannot hold Checks. */
  fetchTimeoutMs: 5_000,
  /** Only public-key signatures: an HMAC secret shared with the IdP would let any holder mint tokens. */
  algorithms: [
    'RS256',
    'RS384',
    'RS512',
    'PS256',
    'PS384',
    'PS512',
    'ES256',
    'ES384',
    'ES512',
    'EdDSA',
  ] as readonly string[],
  /** Claim (dot path) holding the caller's groups. */
  groupsClaim: 'groups',
  /** Verified tokens remembered; a bounded LRU so a token flood cannot grow memory. */
  cacheMaxEntries: 10_000,
  /** A remembered token is re-verified after this long even if it has not expired yet. */
  cacheTtlMs: 5 * 60_000,
} as const;
