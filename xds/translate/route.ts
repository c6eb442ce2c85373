// IrListener → envoy.config.route.v3.RouteConfiguration (served over RDS under the listener's
// routeConfigName). Every route tells the authz server, through ext_authz context_extensions,
// which route and which config revision (checksum) Envoy is running, and how its body is checked
// (buffered up to the route's limit, or headers only); the same ext_authz check_settings make Envoy
// buffer exactly that.
import { encodeRouteContext } from '../../contracts/ext-authz.ts';
import type { IrListener, IrOauthResource, IrRoute } from '../ir/types.ts';
import { EXT_AUTHZ_FILTER, EXT_AUTHZ_PER_ROUTE_TYPE } from './envoy-names.ts';
import { checkSettingsBody, routeBodyMetadata } from './request-body.ts';

function routeMatch(route: IrRoute): Record<string, unknown> {
  // path_separated_prefix keeps `/demo` from matching `/demox`.
  return route.match.segmentBoundary
    ? { path_separated_prefix: route.match.pathPrefix }
    : { prefix: route.match.pathPrefix };
}

function routeAction(route: IrRoute): Record<string, unknown> {
  const action: Record<string, unknown> = { cluster: route.cluster };
  if (route.prefixRewrite !== null) action['prefix_rewrite'] = route.prefixRewrite;
  // Upstreams route on Host; the agent addressed the gateway.
  action['host_rewrite_literal'] = route.hostRewrite;
  if (route.timeout !== null) action['timeout'] = route.timeout;
  return action;
}

function envoyRoute(route: IrRoute): Record<string, unknown> {
  const metadata = routeBodyMetadata(route.body);
  return {
    name: route.routeId,
    match: routeMatch(route),
    route: routeAction(route),
    ...(metadata ? { metadata } : {}),
    typed_per_filter_config: {
      [EXT_AUTHZ_FILTER]: {
        '@type': EXT_AUTHZ_PER_ROUTE_TYPE,
        check_settings: {
          context_extensions: encodeRouteContext({
            routeId: route.routeId,
            target: route.target,
            checksum: route.checksum,
            protocol: route.protocol,
            rewrite:
              route.prefixRewrite !== null
                ? { pathPrefix: route.match.pathPrefix, prefixRewrite: route.prefixRewrite }
                : null,
            body: route.body,
            oauthResource: route.oauthResource
              ? { resource: route.oauthResource.resource, metadataUrl: route.oauthResource.metadataUrl }
              : null,
          }),
          ...checkSettingsBody(route.body),
        },
      },
    },
  };
}

/** The RFC 9728 document: public, so MCP clients (browser-based ones too) read it before any login. */
export function protectedResourceMetadata(r: IrOauthResource): Record<string, unknown> {
  return {
    resource: r.resource,
    authorization_servers: r.authorizationServers,
    bearer_methods_supported: ['header'],
    ...(r.scopes.length > 0 ? { scopes_supported: r.scopes } : {}),
  };
}

/**
 * Envoy answers the metadata itself (no upstream, no check: it is public by design, RFC 9728), at the
 * exact well-known path, ahead of every target route of the virtual host.
 */
function metadataRoute(route: IrRoute & { oauthResource: IrOauthResource }): Record<string, unknown> {
  const header = (key: string, value: string) => ({
    header: { key, value },
    append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
  });
  return {
    name: `${route.routeId}/oauth-protected-resource`,
    match: { path: route.oauthResource.metadataPath },
    direct_response: {
      status: 200,
      body: { inline_string: JSON.stringify(protectedResourceMetadata(route.oauthResource)) },
    },
    response_headers_to_add: [
      header('content-type', 'application/json'),
      header('cache-control', 'max-age=300'),
      header('access-control-allow-origin', '*'),
    ],
    typed_per_filter_config: {
      [EXT_AUTHZ_FILTER]: { '@type': EXT_AUTHZ_PER_ROUTE_TYPE, disabled: true },
    },
  };
}

const withMetadata = (r: IrRoute): r is IrRoute & { oauthResource: IrOauthResource } =>
  r.oauthResource !== undefined;

export function routeConfigurationResource(listener: IrListener): Record<string, unknown> {
  return {
    name: listener.routeConfigName,
    virtual_hosts: listener.virtualHosts.map((vh) => ({
      name: vh.name,
      domains: vh.domains,
      routes: [...vh.routes.filter(withMetadata).map(metadataRoute), ...vh.routes.map(envoyRoute)],
    })),
  };
}
