// Signing keys of one trusted issuer: OIDC discovery once, then its JWKS, kept in memory. The rules
// that keep the hot path fast and the IdP safe live here: keys are fetched before they are needed
// (warm-up), re-fetched when they grow old, and an unknown `kid` may trigger at most one refresh per
// interval so a stream of forged kids cannot turn the gateway into a flood against the IdP. A failed
// fetch is not remembered for good: a later request retries it after a short pause.
import {
  createLocalJWKSet,
  type FlattenedJWSInput,
  type JWSHeaderParameters,
  type JWTVerifyGetKey,
  errors as joseErrors,
} from 'jose';
import { ChaperoneError } from '../contracts/errors.ts';

export type KeyLookup = (
  header: JWSHeaderParameters,
  token: FlattenedJWSInput,
) => ReturnType<JWTVerifyGetKey>;

/**
 * Discovery or JWKS could not be fetched or parsed. The message names the issuer and what failed (no
 * tokens, no key material); a denied client reads the verifier's fixed reason instead.
 */
export class JwksUnavailableError extends ChaperoneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_JWKS_UNAVAILABLE', message, options);
  }
}

/**
 * No key of the issuer matches the token's header, even after the refresh the rules allow. To the
 * client this is a signature that does not verify, hence its code.
 */
export class NoMatchingKeyError extends ChaperoneError {
  constructor() {
    super('ERR_TOKEN_SIGNATURE', "no signing key of the issuer matches the token's key id");
  }
}

export interface IssuerKeysOptions {
  issuer: string;
  jwksUri?: string;
  fetch: typeof fetch;
  now: () => number;
  refreshMinIntervalMs: number;
  maxAgeMs: number;
  retryAfterFailureMs: number;
  timeoutMs: number;
}

export interface IssuerKeysStats {
  discoveryFetches: number;
  jwksFetches: number;
}

type LocalSet = ReturnType<typeof createLocalJWKSet>;

export function discoveryUrl(issuer: string): string {
  return `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
}

export class IssuerKeys {
  readonly stats: IssuerKeysStats = { discoveryFetches: 0, jwksFetches: 0 };
  private jwksUri: URL | null;
  private local: LocalSet | null = null;
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private lastUnknownKidRefreshAt = Number.NEGATIVE_INFINITY;
  private lastFailureAt = Number.NEGATIVE_INFINITY;
  private lastFailure: JwksUnavailableError | null = null;
  private pending: Promise<void> | null = null;

  constructor(private readonly o: IssuerKeysOptions) {
    this.jwksUri = o.jwksUri ? new URL(o.jwksUri) : null;
  }

  /** Discovery (unless a JWKS URI was given) and the key set, now; rejects with JwksUnavailableError. */
  warmUp(): Promise<void> {
    return this.refresh();
  }

  /** A jose key resolver for jwtVerify. */
  readonly getKey: KeyLookup = async (header, token) => {
    if (this.local === null) {
      // Nothing to verify with: wait for the keys, and fail closed if they cannot be had.
      await this.refreshUnlessFailedRecently();
    } else if (this.o.now() - this.fetchedAt >= this.o.maxAgeMs) {
      // Old keys keep serving while new ones load in the background, so the hot path never waits
      // on the IdP and a brief IdP outage does not deny everyone.
      this.refreshUnlessFailedRecently().catch(() => undefined);
    }
    const local = this.local;
    if (local === null) throw this.lastFailure ?? new JwksUnavailableError('signing keys are not loaded');
    try {
      return await local(header, token);
    } catch (err) {
      if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
    }
    // Unknown kid: the issuer may have rotated. Join a refresh already under way, or start one if the
    // interval allows; otherwise the token is refused without asking the IdP.
    if (this.pending === null) {
      if (this.o.now() - this.lastUnknownKidRefreshAt < this.o.refreshMinIntervalMs)
        throw new NoMatchingKeyError();
      this.lastUnknownKidRefreshAt = this.o.now();
    }
    await this.refresh();
    try {
      return await this.local!(header, token);
    } catch (err) {
      if (err instanceof joseErrors.JWKSNoMatchingKey) throw new NoMatchingKeyError();
      throw err;
    }
  };

  private refreshUnlessFailedRecently(): Promise<void> {
    if (
      this.pending === null &&
      this.lastFailure !== null &&
      this.o.now() - this.lastFailureAt < this.o.retryAfterFailureMs
    ) {
      return Promise.reject(this.lastFailure);
    }
    return this.refresh();
  }

  /** One fetch at a time: concurrent callers share it. */
  private refresh(): Promise<void> {
    if (this.pending) return this.pending;
    const run = this.load().then(
      () => {
        this.lastFailure = null;
      },
      (err: unknown) => {
        this.lastFailureAt = this.o.now();
        this.lastFailure =
          err instanceof JwksUnavailableError
            ? err
            : new JwksUnavailableError(`signing keys of ${this.o.issuer} could not be loaded`, {
                cause: err,
              });
        throw this.lastFailure;
      },
    );
    this.pending = run.finally(() => {
      this.pending = null;
    });
    return this.pending;
  }

  private async load(): Promise<void> {
    const jwksUri = this.jwksUri ?? (await this.discover());
    this.stats.jwksFetches++;
    const body = await this.getJson(jwksUri, 'JWKS', 'application/jwk-set+json, application/json');
    let local: LocalSet;
    try {
      local = createLocalJWKSet(body as Parameters<typeof createLocalJWKSet>[0]);
    } catch (cause) {
      throw new JwksUnavailableError(`JWKS of ${this.o.issuer} is not a valid key set`, { cause });
    }
    this.local = local;
    this.fetchedAt = this.o.now();
  }

  private async discover(): Promise<URL> {
    const url = new URL(discoveryUrl(this.o.issuer));
    this.stats.discoveryFetches++;
    const doc = await this.getJson(url, 'discovery document', 'application/json');
    if (typeof doc !== 'object' || doc === null) {
      throw new JwksUnavailableError(`discovery document of ${this.o.issuer} is not a JSON object`);
    }
    const { issuer, jwks_uri: jwksUri } = doc as { issuer?: unknown; jwks_uri?: unknown };
    // OIDC Discovery §4.3: the document must name the issuer it was fetched for, or an attacker who
    // controls one issuer's document could vouch for another's keys.
    if (issuer !== this.o.issuer) {
      throw new JwksUnavailableError(`discovery document "issuer" does not match ${this.o.issuer}`);
    }
    if (typeof jwksUri !== 'string') {
      throw new JwksUnavailableError(`discovery document of ${this.o.issuer} has no "jwks_uri"`);
    }
    let parsed: URL;
    try {
      parsed = new URL(jwksUri);
    } catch (cause) {
      throw new JwksUnavailableError(`discovery document of ${this.o.issuer} has an invalid "jwks_uri"`, {
        cause,
      });
    }
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
      throw new JwksUnavailableError(`"jwks_uri" of ${this.o.issuer} must be an http(s) URL`);
    }
    this.jwksUri = parsed;
    return parsed;
  }

  private async getJson(url: URL, what: string, accept: string): Promise<unknown> {
    let res: Response;
    try {
      res = await this.o.fetch(url, {
        headers: { accept },
        // A redirect could lead key material anywhere; issuers publish the final URL.
        redirect: 'manual',
        signal: AbortSignal.timeout(this.o.timeoutMs),
      });
    } catch (cause) {
      const timedOut = cause instanceof Error && cause.name === 'TimeoutError';
      throw new JwksUnavailableError(
        timedOut ? `${what} of ${this.o.issuer} timed out` : `${what} of ${this.o.issuer} is unreachable`,
        { cause },
      );
    }
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => undefined);
      throw new JwksUnavailableError(`${what} of ${this.o.issuer} answered HTTP ${res.status}`);
    }
    try {
      return await res.json();
    } catch (cause) {
      throw new JwksUnavailableError(`${what} of ${this.o.issuer} is not valid JSON`, { cause });
    }
  }
}
