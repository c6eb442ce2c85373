// Verifies the caller's OIDC token on every Check and turns it into the Identity the policy sees.
// Strict by construction: only public-key algorithms (checked on the header before any key is looked
// up), the issuer chosen from a configured list by the token's own `iss` and then proven by its
// keys, a configured audience, `exp` required, bounded clock skew. Every failure is one of the
// contract's codes with a short reason a client may see; the token itself never appears in it.
// Hot path: a verified token is remembered (bounded LRU) until it expires, so repeated calls with
// the same token cost a map lookup and a clock comparison.
import {
  decodeJwt,
  decodeProtectedHeader,
  type JWTPayload,
  type JWTVerifyOptions,
  errors as joseErrors,
  jwtVerify,
} from 'jose';
import { ClaimShapeError, type Identity, identityFromClaims } from './claims.ts';
import { IDENTITY_DEFAULTS } from './defaults.ts';
import { IssuerKeys, JwksUnavailableError, NoMatchingKeyError } from './issuer-keys.ts';
import { TokenCache } from './token-cache.ts';

export type { Actor, Identity } from './claims.ts';

import { type AuthzErrorCode, ChaperoneError } from '../contracts/errors.ts';
import type { IssuerConfig } from '../contracts/identity.ts';

export type { IssuerConfig };

export interface IdentityOptions {
  issuers: IssuerConfig[];
  /** Default 'authorization' (expects `Bearer <jwt>`); any other header carries the raw token. */
  tokenHeader?: string;
  /** Default 30, capped at 60. */
  clockToleranceSec?: number;
  /** Unknown kid → at most one JWKS refresh per interval (default 30 s). */
  jwksRefreshMinIntervalMs?: number;
  /** Injected in tests. */
  fetch?: typeof fetch;
  /** Epoch ms, injected in tests. */
  now?: () => number;
  /** Verified-token cache (an addition to the contract): default 10 000 entries, 5 min. */
  cache?: { maxEntries?: number; ttlMs?: number };
}

/**
 * Why a token did not verify: the token codes of the deny catalog (contracts/errors.ts), less
 * revocation, which is checked after verification.
 */
export type IdentityErrorCode = Exclude<
  Extract<AuthzErrorCode, `ERR_TOKEN_${string}` | 'ERR_JWKS_UNAVAILABLE'>,
  'ERR_TOKEN_REVOKED'
>;

export type IdentityResult =
  | { ok: true; identity: Identity }
  | {
      ok: false;
      code: IdentityErrorCode /** Safe to show a client; never contains the token. */;
      reason: string;
    };

export interface IdentityStats {
  /** Full verifications run (cache misses that reached signature checking or failed before it). */
  verifications: number;
  /** Requests answered from the verified-token cache. */
  cacheHits: number;
  cacheSize: number;
  discoveryFetches: number;
  jwksFetches: number;
}

interface ResolvedIssuer {
  issuer: string;
  groupsClaim: string;
  agentIssuer: boolean;
  algorithms: Set<string>;
  keys: IssuerKeys;
  verifyOptions: JWTVerifyOptions;
}

const FORBIDDEN_ALG = /^(none|HS\d+)$/i;

function fail(code: IdentityErrorCode, reason: string): IdentityResult {
  return { ok: false, code, reason };
}

/** Thrown on bad configuration at construction: the server must not start with a lax verifier. */
export class IdentityConfigError extends ChaperoneError {
  constructor(message: string) {
    super('ERR_CONFIG_INVALID', message);
  }
}

export class IdentityVerifier {
  private readonly issuers = new Map<string, ResolvedIssuer>();
  /** Union of every issuer's algorithms: a token outside it is refused before its payload is read. */
  private readonly anyAlgorithm = new Set<string>();
  private readonly tokenHeader: string;
  private readonly bearer: boolean;
  private readonly toleranceSec: number;
  private readonly now: () => number;
  private readonly cache: TokenCache<Identity>;
  private readonly inFlight = new Map<string, Promise<IdentityResult>>();
  private verifications = 0;
  private cacheHits = 0;

  constructor(o: IdentityOptions) {
    this.tokenHeader = (o.tokenHeader ?? IDENTITY_DEFAULTS.tokenHeader).toLowerCase();
    this.bearer = this.tokenHeader === 'authorization';
    const tolerance = o.clockToleranceSec ?? IDENTITY_DEFAULTS.clockToleranceSec;
    if (!Number.isFinite(tolerance) || tolerance < 0) {
      throw new IdentityConfigError('"clockToleranceSec" must be a non-negative number');
    }
    this.toleranceSec = Math.min(tolerance, IDENTITY_DEFAULTS.maxClockToleranceSec);
    this.now = o.now ?? Date.now;
    const fetchImpl = o.fetch ?? globalThis.fetch;
    const refreshMinIntervalMs = o.jwksRefreshMinIntervalMs ?? IDENTITY_DEFAULTS.jwksRefreshMinIntervalMs;
    this.cache = new TokenCache({
      maxEntries: o.cache?.maxEntries ?? IDENTITY_DEFAULTS.cacheMaxEntries,
      ttlMs: o.cache?.ttlMs ?? IDENTITY_DEFAULTS.cacheTtlMs,
    });

    o.issuers.forEach((cfg, i) => {
      const at = `issuers[${i}]`;
      if (typeof cfg.issuer !== 'string' || !/^https?:\/\//.test(cfg.issuer)) {
        throw new IdentityConfigError(`"${at}.issuer" must be an http(s) URL`);
      }
      if (this.issuers.has(cfg.issuer)) throw new IdentityConfigError(`"${at}.issuer" is listed twice`);
      if (!Array.isArray(cfg.audiences) || cfg.audiences.length === 0) {
        throw new IdentityConfigError(`"${at}.audiences" must name at least one audience`);
      }
      const algorithms = cfg.algorithms ?? [...IDENTITY_DEFAULTS.algorithms];
      if (algorithms.length === 0) throw new IdentityConfigError(`"${at}.algorithms" must not be empty`);
      for (const alg of algorithms) {
        if (FORBIDDEN_ALG.test(alg)) {
          throw new IdentityConfigError(
            `"${at}.algorithms" must not contain ${alg}: only public-key algorithms`,
          );
        }
        this.anyAlgorithm.add(alg);
      }
      this.issuers.set(cfg.issuer, {
        issuer: cfg.issuer,
        groupsClaim: cfg.groupsClaim ?? IDENTITY_DEFAULTS.groupsClaim,
        agentIssuer: cfg.agentIssuer === true,
        algorithms: new Set(algorithms),
        keys: new IssuerKeys({
          issuer: cfg.issuer,
          ...(cfg.jwksUri ? { jwksUri: cfg.jwksUri } : {}),
          fetch: fetchImpl,
          now: this.now,
          refreshMinIntervalMs,
          maxAgeMs: IDENTITY_DEFAULTS.jwksMaxAgeMs,
          retryAfterFailureMs: Math.min(IDENTITY_DEFAULTS.fetchRetryAfterFailureMs, refreshMinIntervalMs),
          timeoutMs: IDENTITY_DEFAULTS.fetchTimeoutMs,
        }),
        verifyOptions: {
          issuer: cfg.issuer,
          audience: [...cfg.audiences],
          algorithms: [...algorithms],
          clockTolerance: this.toleranceSec,
          requiredClaims: ['exp', 'sub'],
        },
      });
    });
  }

  /** Fetches discovery and keys of every issuer, so the first request does not wait for them. */
  async warmUp(): Promise<void> {
    const results = await Promise.allSettled([...this.issuers.values()].map((i) => i.keys.warmUp()));
    const failed = results.flatMap((r) =>
      r.status === 'rejected' ? [String((r.reason as Error).message)] : [],
    );
    if (failed.length > 0) throw new JwksUnavailableError(failed.join('; '));
  }

  stats(): IdentityStats {
    let discoveryFetches = 0;
    let jwksFetches = 0;
    for (const i of this.issuers.values()) {
      discoveryFetches += i.keys.stats.discoveryFetches;
      jwksFetches += i.keys.stats.jwksFetches;
    }
    return {
      verifications: this.verifications,
      cacheHits: this.cacheHits,
      cacheSize: this.cache.size,
      discoveryFetches,
      jwksFetches,
    };
  }

  verify(headers: Record<string, string>): Promise<IdentityResult> {
    const extracted = this.extractToken(headers[this.tokenHeader]);
    if (typeof extracted !== 'string') return Promise.resolve(extracted);
    const token = extracted;

    const cached = this.cache.get(token, this.now());
    if (cached !== undefined) {
      this.cacheHits++;
      return Promise.resolve({ ok: true, identity: cached });
    }
    // Concurrent requests with one new token share one verification.
    const running = this.inFlight.get(token);
    if (running) return running;
    const run = this.verifyToken(token).finally(() => this.inFlight.delete(token));
    this.inFlight.set(token, run);
    return run;
  }

  private extractToken(value: string | undefined): string | IdentityResult {
    if (value === undefined || value === '') {
      return fail('ERR_TOKEN_MISSING', `no token in the ${this.tokenHeader} header`);
    }
    if (!this.bearer) return value.trim();
    // RFC 6750: scheme is case-insensitive, one or more spaces before the credentials.
    if (value.length < 8 || value.slice(0, 7).toLowerCase() !== 'bearer ') {
      return fail('ERR_TOKEN_MALFORMED', 'authorization header is not a Bearer token');
    }
    const token = value.slice(7).trim();
    if (token === '') return fail('ERR_TOKEN_MISSING', 'Bearer token is empty');
    return token;
  }

  private async verifyToken(token: string): Promise<IdentityResult> {
    this.verifications++;
    const parts = token.split('.');
    if (parts.length === 5) return fail('ERR_TOKEN_MALFORMED', 'encrypted tokens (JWE) are not accepted');
    if (parts.length !== 3) return fail('ERR_TOKEN_MALFORMED', 'token is not a JWT');

    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      return fail('ERR_TOKEN_MALFORMED', 'token is not a valid JWT');
    }
    // Algorithm first, from the header alone: `none` or an HMAC token must never reach a key lookup.
    if (typeof alg !== 'string' || !this.anyAlgorithm.has(alg)) {
      return fail(
        'ERR_TOKEN_ALG',
        `token algorithm ${typeof alg === 'string' ? quote(alg) : ''}is not allowed`,
      );
    }
    let claims: JWTPayload;
    try {
      claims = decodeJwt(token);
    } catch {
      return fail('ERR_TOKEN_MALFORMED', 'token is not a valid JWT');
    }
    // The unverified `iss` only chooses whose keys to try; the signature then proves it.
    const issuer = typeof claims.iss === 'string' ? this.issuers.get(claims.iss) : undefined;
    if (issuer === undefined) return fail('ERR_TOKEN_ISSUER', 'token issuer is not trusted');
    if (!issuer.algorithms.has(alg))
      return fail('ERR_TOKEN_ALG', `token algorithm ${quote(alg)}is not allowed`);

    const now = this.now();
    let payload: JWTPayload;
    try {
      payload = await this.verifySignature(token, issuer, now);
    } catch (err) {
      return mapVerifyError(err);
    }
    // jose checks `iat` only with maxTokenAge; a token issued in the future means a broken or lying clock.
    if (typeof payload.iat === 'number' && payload.iat > now / 1000 + this.toleranceSec) {
      return fail('ERR_TOKEN_NOT_YET_VALID', 'token is issued in the future');
    }
    let identity: Identity;
    try {
      identity = identityFromClaims(payload as Record<string, unknown>, {
        issuer: issuer.issuer,
        groupsClaim: issuer.groupsClaim,
        agentIssuer: issuer.agentIssuer,
      });
    } catch (err) {
      if (err instanceof ClaimShapeError) return fail('ERR_TOKEN_CLAIMS', err.message);
      throw err;
    }
    this.cache.set(token, identity, now, (identity.expires_at + this.toleranceSec) * 1000);
    return { ok: true, identity };
  }

  private async verifySignature(token: string, issuer: ResolvedIssuer, now: number): Promise<JWTPayload> {
    const options: JWTVerifyOptions = { ...issuer.verifyOptions, currentDate: new Date(now) };
    try {
      return (await jwtVerify(token, issuer.keys.getKey, options)).payload;
    } catch (err) {
      // Several keys share the token's kid/alg (mid-rotation): try each, as jose's docs prescribe.
      if (!(err instanceof joseErrors.JWKSMultipleMatchingKeys)) throw err;
      let last: unknown = err;
      for await (const key of err) {
        try {
          return (await jwtVerify(token, key, options)).payload;
        } catch (inner) {
          last = inner;
          if (!(inner instanceof joseErrors.JWSSignatureVerificationFailed)) break;
        }
      }
      throw last;
    }
  }
}

function quote(alg: string): string {
  // The header is attacker-controlled: show a short, printable alg name or nothing.
  return /^[A-Za-z0-9+_-]{1,16}$/.test(alg) ? `${alg} ` : '';
}

const CLAIM_CODES: Record<string, IdentityErrorCode> = {
  nbf: 'ERR_TOKEN_NOT_YET_VALID',
  iat: 'ERR_TOKEN_NOT_YET_VALID',
  iss: 'ERR_TOKEN_ISSUER',
  aud: 'ERR_TOKEN_AUDIENCE',
};

/** jose's error → contract code and a reason a client may see. */
export function mapVerifyError(err: unknown): IdentityResult {
  if (err instanceof JwksUnavailableError)
    return fail('ERR_JWKS_UNAVAILABLE', 'signing keys of the issuer are unavailable');
  if (err instanceof NoMatchingKeyError) return fail('ERR_TOKEN_SIGNATURE', err.message);
  if (err instanceof joseErrors.JWTExpired) return fail('ERR_TOKEN_EXPIRED', 'token has expired');
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    const claim = err.claim;
    if (err.reason === 'missing') return fail('ERR_TOKEN_CLAIMS', `token has no "${claim}" claim`);
    const code = CLAIM_CODES[claim] ?? 'ERR_TOKEN_CLAIMS';
    if (code === 'ERR_TOKEN_NOT_YET_VALID') return fail(code, 'token is not valid yet');
    if (code === 'ERR_TOKEN_AUDIENCE') return fail(code, 'token audience is not accepted');
    if (code === 'ERR_TOKEN_ISSUER') return fail(code, 'token issuer is not trusted');
    return fail(code, `token "${claim}" claim is invalid`);
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
    return fail('ERR_TOKEN_SIGNATURE', 'token signature is invalid');
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed)
    return fail('ERR_TOKEN_ALG', 'token algorithm is not allowed');
  if (err instanceof joseErrors.JWKSNoMatchingKey)
    return fail('ERR_TOKEN_SIGNATURE', 'no signing key matches the token');
  if (
    err instanceof joseErrors.JWSInvalid ||
    err instanceof joseErrors.JWTInvalid ||
    err instanceof joseErrors.JOSENotSupported
  ) {
    return fail('ERR_TOKEN_MALFORMED', 'token is not a valid JWT');
  }
  // Anything else (a key that does not import, an unexpected library error): refuse, say little.
  return fail('ERR_TOKEN_SIGNATURE', 'token could not be verified');
}
