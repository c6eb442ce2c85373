// RFC 8707 on the Check path: a token is good for the resource it was issued for. On an MCP target
// that publishes RFC 9728 metadata, a person's token must name the target's resource in `aud`, or one
// of the audiences its issuer is configured with (a token for the whole gateway); elsewhere, one of the
// configured audiences. So a token an MCP client obtained for one MCP target (its `aud` is that
// target's URL) is refused at every other target, and a token for another resource is refused here.
// Agent tokens are Chaperone's own (their `targets` claim bounds where they go): their issuer's
// audience was verified already.
import type { Identity } from '../../identity/verifier.ts';

/** The audiences each person-issuer is configured with (identity.issuers[].audiences), by issuer. */
export type ConfiguredAudiences = ReadonlyMap<string, ReadonlySet<string>>;

/** Why `identity` may not be used on this route, or null when it may. */
export function resourceAudienceProblem(
  identity: Identity,
  routeResource: string | null,
  configured: ConfiguredAudiences | undefined,
): string | null {
  // An agent token: issued by Chaperone for a person of another issuer.
  if (identity.issuer !== identity.subject_issuer) return null;
  if (routeResource !== null && identity.audience.includes(routeResource)) return null;
  const own = configured?.get(identity.issuer);
  // Without the issuer's configured audiences (a standalone authz server) the verifier's check stands.
  if (!own) return routeResource === null ? null : notFor(routeResource);
  if (identity.audience.some((a) => own.has(a))) return null;
  return routeResource === null
    ? 'the token was issued for another resource (its aud names none of this gateway’s audiences)'
    : notFor(routeResource);
}

const notFor = (resource: string) =>
  `the token was not issued for ${resource} (RFC 8707: its aud must name this resource)`;
