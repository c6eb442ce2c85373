// The console's sign-in: OpenID Connect authorization code flow with PKCE (RFC 7636), state and nonce,
// through openid-client, against one issuer of `identity:`. The person who comes back is established
// from two tokens, both checked: the ID token (openid-client: signature — non-repudiation checks on —
// issuer, audience = our client, expiry, nonce) and the access token, verified by the HTTP API's own
// verifier exactly like a bearer token, so the console knows a person by the same issuer, audience and
// groups claim as the API does. Refused: an access token that is an agent's (an `act` claim, or one
// from Chaperone's agent issuer), an ID token with `act`, and tokens that disagree on who it is.
import * as oidc from 'openid-client';
import type { Logger } from 'pino';
import type { Identity } from '../../contracts/identity.ts';
import { resolveRef } from '../../lib/secret-ref.ts';
import { type CallerAuth, personFromToken } from '../authenticate.ts';
import { ApiError } from '../errors.ts';

export interface SignInOptions {
  issuer: string;
  clientId: string;
  /** `env:`/`file:` reference; null for a public client. */
  clientSecret: string | null;
  scopes: readonly string[];
  resource: string | null;
  /** `<public URL>/console/callback`, as registered at the IdP. */
  redirectUri: string;
  auth: CallerAuth;
  /** Why a sign-in failed, for operators (openid-client's reason; never a token or a code). */
  logger?: Logger;
}

export interface SignInChecks {
  state: string;
  nonce: string;
  verifier: string;
}

const refused = (reason: string) => new ApiError(401, 'sign_in_failed', reason);

/** openid-client's error code and message: claim names and expectations, no token material. */
const describe = (err: unknown) =>
  err instanceof Error ? `${(err as { code?: string }).code ?? err.name}: ${err.message}` : String(err);

export class ConsoleSignIn {
  private config: Promise<oidc.Configuration> | null = null;

  constructor(readonly o: SignInOptions) {}

  get issuer(): string {
    return this.o.issuer;
  }

  /** Discovery, once it succeeded (a failure is retried on the next sign-in: the IdP may start later). */
  private configuration(): Promise<oidc.Configuration> {
    this.config ??= (async () => {
      const secret = this.o.clientSecret ? await resolveRef(this.o.clientSecret) : null;
      if (this.o.clientSecret && !secret) throw new Error('console.client_secret does not resolve');
      const cfg = await oidc.discovery(
        new URL(this.o.issuer),
        this.o.clientId,
        { redirect_uris: [this.o.redirectUri] },
        secret ? oidc.ClientSecretBasic(secret) : oidc.None(),
        // An http issuer is accepted by the token verifier too (identity.issuers); the schema allows it.
        new URL(this.o.issuer).protocol === 'http:' ? { execute: [oidc.allowInsecureRequests] } : {},
      );
      oidc.enableNonRepudiationChecks(cfg);
      return cfg;
    })().catch((err: unknown) => {
      this.config = null;
      throw err;
    });
    return this.config;
  }

  /** Fresh state, nonce and PKCE verifier for one attempt. */
  static newChecks(): SignInChecks {
    return { state: oidc.randomState(), nonce: oidc.randomNonce(), verifier: oidc.randomPKCECodeVerifier() };
  }

  async authorizationUrl(checks: SignInChecks, loginHint?: string): Promise<URL> {
    const cfg = await this.configuration().catch((err: unknown) => {
      this.o.logger?.warn({ err: describe(err), issuer: this.o.issuer }, 'console sign-in: discovery failed');
      throw new ApiError(503, 'issuer_unavailable', 'the identity provider cannot be reached; try again');
    });
    return oidc.buildAuthorizationUrl(cfg, {
      redirect_uri: this.o.redirectUri,
      scope: this.o.scopes.join(' '),
      state: checks.state,
      nonce: checks.nonce,
      code_challenge: await oidc.calculatePKCECodeChallenge(checks.verifier),
      code_challenge_method: 'S256',
      ...(this.o.resource ? { resource: this.o.resource } : {}),
      ...(loginHint ? { login_hint: loginHint } : {}),
    });
  }

  /** The callback: code → tokens → the verified person. Throws ApiError (never with a token in it). */
  async finish(callback: URL, checks: SignInChecks): Promise<Identity> {
    if (callback.searchParams.has('error')) throw refused('the identity provider did not sign you in');
    const cfg = await this.configuration();
    // The redirect URI as registered, with the callback's parameters (not the Host the browser used).
    const current = new URL(this.o.redirectUri);
    current.search = callback.search;
    let tokens: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>;
    try {
      tokens = await oidc.authorizationCodeGrant(
        cfg,
        current,
        {
          pkceCodeVerifier: checks.verifier,
          expectedState: checks.state,
          expectedNonce: checks.nonce,
          idTokenExpected: true,
        },
        this.o.resource ? { resource: this.o.resource } : undefined,
      );
    } catch (err) {
      this.o.logger?.warn({ err: describe(err) }, 'console sign-in: code exchange or ID token refused');
      throw refused('the sign-in could not be completed (state, code or ID token rejected)');
    }
    const idToken = tokens.claims();
    if (!idToken) throw refused('the identity provider returned no ID token');
    if (idToken['act'] !== undefined)
      throw new ApiError(403, 'agent_not_allowed', 'an agent cannot sign in to the console; only people can');
    const person = await personFromToken(this.o.auth, tokens.access_token);
    if (person.subject !== idToken.sub || person.issuer !== idToken.iss)
      throw refused('the ID token and the access token name different people');
    return person;
  }
}
