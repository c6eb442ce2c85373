// Whose tokens the gateway trusts, derived from the config: the configured OIDC issuers (people) plus
// Chaperone's own agent issuer (`control_plane.issuer`), whose keys its HTTP API publishes.
import { AGENT_AUDIENCE } from '../api/routes/agents.ts';
import type { Config } from '../config/types.ts';
import type { IdentityOptions } from '../identity/verifier.ts';

/** The configured issuers only (people), or undefined when none is configured. */
export function identityOptions(config: Config): IdentityOptions | undefined {
  if (!config.identity) return undefined;
  return {
    issuers: config.identity.issuers,
    tokenHeader: config.identity.tokenHeader,
    clockToleranceSec: config.identity.clockToleranceSec,
  };
}

/**
 * People and agents: what the authz server verifies on the data path. The agent issuer's keys are
 * fetched from this node's own API (`http_address`), which serves the fleet's public keys.
 */
export function dataPathIdentity(config: Config): IdentityOptions {
  const people = identityOptions(config);
  return {
    ...(people ?? {}),
    issuers: [
      ...(people?.issuers ?? []),
      {
        issuer: config.controlPlane.issuer,
        audiences: [AGENT_AUDIENCE],
        jwksUri: `http://${config.controlPlane.httpAddress}/.well-known/jwks.json`,
        algorithms: ['ES256'],
        agentIssuer: true,
      },
    ],
  };
}

/** The HTTP API's callers: the same issuers, always from `Authorization: Bearer` (what the CLI sends). */
export function apiIdentity(config: Config): IdentityOptions {
  return { ...dataPathIdentity(config), tokenHeader: 'authorization' };
}
