// The suites' OpenID provider: the product's dev IdP (cli/dev/dev-idp.ts), a real oidc-provider on
// a free loopback port whose tokens come out of a real authorization-code + PKCE flow. Kept as a
// thin wrapper so suites depend on one stable name while the dev IdP grows options.
import { type DevIdp, type DevUser, startDevIdp, type TokenOptions } from '../../cli/dev/dev-idp.ts';

export type { DevIdp as OidcProvider, DevUser as OidcUser, TokenOptions };

export interface OidcProviderOptions {
  users: DevUser[];
  /** `aud` of issued tokens. */
  audience: string;
  /** Default 0 (a free port); a fixed one lets a suite restart the provider at the same issuer. */
  port?: number;
  /** Reuse keys across a restart (same kid, so earlier tokens still verify). */
  signingKey?: Parameters<typeof startDevIdp>[0]['signingKey'];
}

export function startOidcProvider(opts: OidcProviderOptions): Promise<DevIdp> {
  return startDevIdp({
    users: opts.users,
    audience: opts.audience,
    port: opts.port ?? 0,
    ...(opts.signingKey ? { signingKey: opts.signingKey } : {}),
  });
}
