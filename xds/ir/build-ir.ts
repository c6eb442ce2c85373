// Config → IR: decides names, defaults, route order and upstream details, and rejects what the
// gateway cannot serve faithfully (two targets with the same match, TLS settings on a plain-http
// upstream, a URL with a path or user info, ...). Pure; collects every problem into one ConfigError
// whose issues name the config field (and its line, when the config came from a file).
import { isIP } from 'node:net';
import { ConfigError, type ConfigIssue } from '../../config/errors.ts';
import { configIssue, sortIssues } from '../../config/load-config.ts';
import type { Config, TargetConfig } from '../../config/types.ts';
import { contentHash } from '../../lib/content-hash.ts';
import { parseDataPlaneAddress } from '../../lib/data-plane-address.ts';
import { ROLE_URI } from '../../pki/certificate-authority.ts';
import { XDS_CLUSTER } from '../bootstrap.ts';
import { endpointOf, envoyTlsFiles } from '../translate/data-plane.ts';
import type {
  Ir,
  IrCluster,
  IrListener,
  IrOauthResource,
  IrRoute,
  IrTarget,
  IrUpstreamTls,
  IrVirtualHost,
} from './types.ts';

export const AUTHZ_CLUSTER = 'chaperone_authz';
/** Target clusters are prefixed so no target name can collide with Chaperone's own clusters. */
export const targetClusterName = (target: string) => `target/${target}`;
export const routeIdOf = (target: string) => `${target}/0`;

const TARGET_CONNECT_TIMEOUT = '5s';
/** The authz server is local or near: a slow connect means it is down, and Check fails closed. */
const AUTHZ_CONNECT_TIMEOUT = '0.25s';

/** Reports a problem at a config field path. */
type Issue = (path: string, message: string) => void;

interface Upstream {
  scheme: 'http' | 'https';
  host: string;
  port: number;
  isIp: boolean;
  /** host[:port] as the Host header should carry it (default ports omitted, IPv6 in brackets). */
  authority: string;
}

/** Characters and shapes a prefix must not contain: the authz server denies such paths anyway. */
function nonCanonicalPath(path: string): boolean {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we reject
  if (/[?#%\\;\u0000-\u001f\u007f\s]/.test(path)) return true;
  if (path.includes('//')) return true;
  return path.split('/').some((seg) => seg === '.' || seg === '..');
}

function parseUpstream(t: TargetConfig, at: string, issue: Issue): Upstream | null {
  // Messages never quote the URL: it could carry user info.
  let url: URL;
  try {
    url = new URL(t.upstream);
  } catch {
    issue(at, 'must be an http:// or https:// URL');
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    issue(at, `scheme "${url.protocol.slice(0, -1).slice(0, 16)}" is not supported (http or https)`);
    return null;
  }
  let ok = true;
  if (url.username !== '' || url.password !== '') {
    issue(at, 'must not carry user info: give credentials as references under credentials');
    ok = false;
  }
  if (url.pathname !== '/' && url.pathname !== '') {
    issue(at, 'must not have a path: use match.path_prefix with prefix_rewrite');
    ok = false;
  }
  if (url.search !== '' || url.hash !== '' || t.upstream.includes('?') || t.upstream.includes('#')) {
    issue(at, 'must not have a query or fragment');
    ok = false;
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (host === '') {
    issue(at, 'has no host');
    ok = false;
  }
  if (!ok) return null;
  const scheme = url.protocol === 'https:' ? 'https' : 'http';
  return {
    scheme,
    host,
    port: url.port === '' ? (scheme === 'https' ? 443 : 80) : Number(url.port),
    isIp: isIP(host) !== 0,
    authority: url.host,
  };
}

const byName = <T extends { name: string }>(a: T, b: T) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

interface TargetRoute {
  route: IrRoute;
  hosts: string[];
  /** Index in config.targets, for error paths. */
  index: number;
}

/**
 * Longest prefix first; at equal prefixes a segment-boundary match (narrower) first, then a target
 * listing the host before one accepting any host; then by name.
 */
function routeOrder(a: TargetRoute, b: TargetRoute): number {
  const pa = a.route.match.pathPrefix;
  const pb = b.route.match.pathPrefix;
  if (pa.length !== pb.length) return pb.length - pa.length;
  if (pa !== pb) return pa < pb ? -1 : 1;
  if (a.route.match.segmentBoundary !== b.route.match.segmentBoundary)
    return a.route.match.segmentBoundary ? -1 : 1;
  if (a.hosts.length > 0 !== b.hosts.length > 0) return a.hosts.length > 0 ? -1 : 1;
  return a.route.target < b.route.target ? -1 : a.route.target > b.route.target ? 1 : 0;
}

const NON_CANONICAL = 'must be a canonical path (no //, dot segments, %, ?, #, \\, ; or spaces)';

/** Checks a target's path prefix and rewrite; returns the prefix it matches ('/' when none is set). */
function targetPrefix(t: TargetConfig, at: string, issue: Issue): string {
  const { pathPrefix } = t.match;
  if (pathPrefix !== null && nonCanonicalPath(pathPrefix)) issue(`${at}.match.path_prefix`, NON_CANONICAL);
  if (t.prefixRewrite !== null && nonCanonicalPath(t.prefixRewrite))
    issue(`${at}.prefix_rewrite`, NON_CANONICAL);
  const prefix = pathPrefix ?? '/';
  if (t.prefixRewrite !== null && prefix.endsWith('/') !== t.prefixRewrite.endsWith('/')) {
    // `/openai/` → `/v1` would glue segments together (/openai/chat → /v1chat).
    issue(
      `${at}.prefix_rewrite`,
      `must end with "/" exactly when match.path_prefix does (${prefix.endsWith('/') ? 'it does' : 'it does not'})`,
    );
  }
  return prefix;
}

/** How Envoy verifies an https upstream: the SNI host, or the IP, must be named by its certificate. */
function upstreamTls(
  config: Config,
  t: TargetConfig,
  upstream: Upstream | null,
  at: string,
  issue: Issue,
): IrUpstreamTls | null {
  if (upstream?.scheme === 'http' && t.tls !== null)
    issue(`${at}.tls`, 'is only valid with an https:// upstream');
  if (upstream?.scheme !== 'https') return null;
  const sni = t.tls?.sni?.toLowerCase() ?? (upstream.isIp ? null : upstream.host.toLowerCase());
  return {
    sni,
    caFile: t.tls?.caFile ?? config.envoy.caFile,
    subjectAltName: sni !== null ? { type: 'DNS', value: sni } : { type: 'IP_ADDRESS', value: upstream.host },
  };
}

/** RFC 9728 section 3.1: the well-known segment goes between the host and the resource's path. */
export const PROTECTED_RESOURCE_WELL_KNOWN = '/.well-known/oauth-protected-resource';

/** Where an MCP target's metadata is served; null without `mcp` (a revision written before it, too). */
function oauthResourceOf(t: TargetConfig, at: string, issue: Issue): IrOauthResource | null {
  if (!t.mcp) return null;
  let url: URL;
  try {
    url = new URL(t.mcp.resource);
  } catch {
    issue(`${at}.mcp.resource`, 'must be an http(s) URL');
    return null;
  }
  const path = url.pathname === '/' ? '' : url.pathname;
  if (path !== '' && nonCanonicalPath(path)) {
    issue(`${at}.mcp.resource`, NON_CANONICAL);
    return null;
  }
  const metadataPath = `${PROTECTED_RESOURCE_WELL_KNOWN}${path}`;
  return {
    resource: t.mcp.resource,
    metadataPath,
    metadataUrl: `${url.origin}${metadataPath}`,
    authorizationServers: [...t.mcp.authorizationServers],
    scopes: [...t.mcp.scopes],
  };
}

interface TargetIr {
  cluster: IrCluster;
  target: IrTarget;
  route: TargetRoute;
}

/** One target's cluster, route and authz entry; null (with issues reported) when it cannot be served. */
function targetIr(config: Config, t: TargetConfig, index: number, issue: Issue): TargetIr | null {
  const at = `targets[${index}]`;
  const upstream = parseUpstream(t, `${at}.upstream`, issue);
  const prefix = targetPrefix(t, at, issue);
  const tls = upstreamTls(config, t, upstream, at, issue);
  if (!upstream) return null;
  const cluster: IrCluster = {
    name: targetClusterName(t.name),
    discovery: upstream.isIp ? 'eds' : 'logical_dns',
    endpoints: [{ host: upstream.host, port: upstream.port }],
    tls,
    dataPlaneTls: null,
    http2: false,
    connectTimeout: TARGET_CONNECT_TIMEOUT,
  };
  const credentials = t.credentials.map((c) => ({ header: c.header, ref: c.value, format: c.format }));
  const oauthResource = oauthResourceOf(t, at, issue);
  const routeWithoutChecksum: Omit<IrRoute, 'checksum'> = {
    routeId: routeIdOf(t.name),
    target: t.name,
    protocol: t.protocol,
    match: { pathPrefix: prefix, segmentBoundary: prefix !== '/' && !prefix.endsWith('/') },
    prefixRewrite: t.prefixRewrite,
    timeout: t.timeout,
    hostRewrite: upstream.authority,
    body: t.body,
    cluster: cluster.name,
    ...(oauthResource ? { oauthResource } : {}),
  };
  const route: IrRoute = {
    ...routeWithoutChecksum,
    checksum: contentHash({ route: routeWithoutChecksum, cluster, credentials }),
  };
  return {
    cluster,
    target: {
      name: t.name,
      protocol: t.protocol,
      routeId: route.routeId,
      cluster: cluster.name,
      credentials,
    },
    route: { route, hosts: t.match.hosts.map((h) => h.toLowerCase()), index },
  };
}

/**
 * The authz pool: Unix sockets (one node), or TCP addresses reached with mutual TLS (a fleet), whose
 * certificates Envoy reads from the files the control plane keeps under `data_plane.tls.dir`. Its circuit
 * breaker bounds the Checks Envoy keeps outstanding to `authz.max_outstanding` per address: past that a
 * Check fails at once (ext_authz error → 503, fail closed) instead of waiting in Envoy's queue and the
 * kernel's for an answer that would mostly come after Envoy's 0.5 s deadline (docs/performance.md).
 * The same bound covers Checks waiting for a connection, so a reconnecting pool queues no more.
 */
function authzCluster(config: Config): IrCluster {
  const endpoints = config.authz.addresses.map((a) => endpointOf(parseDataPlaneAddress(a)));
  const tcp = endpoints.some((e) => !('pipe' in e));
  const bound = config.authz.maxOutstanding * endpoints.length;
  return {
    name: AUTHZ_CLUSTER,
    discovery: endpoints.every((e) => 'pipe' in e || isIP(e.host) !== 0) ? 'static' : 'strict_dns',
    endpoints,
    tls: null,
    dataPlaneTls: tcp ? envoyTlsFiles(config.dataPlane.tls.dir, ROLE_URI.server) : null,
    http2: true,
    connectTimeout: AUTHZ_CONNECT_TIMEOUT,
    circuitBreakers: { maxRequests: bound, maxPendingRequests: bound },
  };
}

export function buildIr(config: Config): Ir {
  const issues: ConfigIssue[] = [];
  const issue: Issue = (path, message) => issues.push(configIssue(config, path, message));
  const built = config.targets.flatMap((t, i) => targetIr(config, t, i, issue) ?? []);
  const targetRoutes = built.map((b) => b.route);
  checkUnreachable(targetRoutes, issue);
  checkSharedResources(targetRoutes, issue);
  checkListenerSockets(config, issue);
  if (issues.length > 0) throw new ConfigError(config.file, sortIssues(issues));

  const listeners: IrListener[] = config.listeners.map((l) => ({
    name: l.name,
    address: l.address,
    port: l.port,
    routeConfigName: l.name,
    virtualHosts: virtualHosts(l.name, targetRoutes),
    accessLogName: `chaperone.${l.name}`,
  }));
  const withoutRevision = {
    listeners: listeners.sort(byName),
    clusters: [...built.map((b) => b.cluster), authzCluster(config)].sort(byName),
    targets: built.map((b) => b.target).sort(byName),
    authzCluster: AUTHZ_CLUSTER,
    accessLogCluster: XDS_CLUSTER,
  };
  return { ...withoutRevision, revision: contentHash(withoutRevision) };
}

/**
 * One virtual host per listed host name, holding the targets that list it and then the targets that
 * accept any host (Envoy picks the most specific virtual host and never falls back, so the any-host
 * routes must be repeated there); one `*` virtual host for the any-host targets. At equal matches the host-specific route wins.
 */
function virtualHosts(listener: string, routes: TargetRoute[]): IrVirtualHost[] {
  const anyHost = routes.filter((r) => r.hosts.length === 0).sort(routeOrder);
  const hostNames = [...new Set(routes.flatMap((r) => r.hosts))].sort();
  const vhosts: IrVirtualHost[] = hostNames.map((host) => {
    const merged = routes.filter((r) => r.hosts.includes(host) || r.hosts.length === 0).sort(routeOrder);
    return { name: `${listener}/${host}`, domains: [host], routes: merged.map((r) => r.route) };
  });
  if (anyHost.length > 0)
    vhosts.push({ name: `${listener}/*`, domains: ['*'], routes: anyHost.map((r) => r.route) });
  return vhosts;
}

/** Two targets that would match exactly the same requests: the second could never be reached. */
function checkUnreachable(routes: TargetRoute[], issue: Issue): void {
  const seen = new Map<string, TargetRoute>();
  for (const r of [...routes].sort((a, b) => a.index - b.index)) {
    const match = `${r.route.match.segmentBoundary ? 'segment' : 'prefix'}\0${r.route.match.pathPrefix}`;
    for (const host of r.hosts.length === 0 ? ['*'] : r.hosts) {
      const key = `${host}\0${match}`;
      const first = seen.get(key);
      if (first && first !== r) {
        issue(
          `targets[${r.index}].match`,
          `matches the same requests as targets[${first.index}] (host ${host === '*' ? 'any' : host}, path prefix ${r.route.match.pathPrefix}): it could never be reached`,
        );
        break;
      }
      seen.set(key, r);
    }
  }
}

/** Two MCP targets with one resource URL: a token for one would be good for the other. */
function checkSharedResources(routes: TargetRoute[], issue: Issue): void {
  const seen = new Map<string, TargetRoute>();
  for (const r of [...routes].sort((a, b) => a.index - b.index)) {
    const resource = r.route.oauthResource?.resource;
    if (resource === undefined) continue;
    const first = seen.get(resource);
    if (first)
      issue(`targets[${r.index}].mcp.resource`, `is already the resource of targets[${first.index}]`);
    else seen.set(resource, r);
  }
}

function checkListenerSockets(config: Config, issue: Issue): void {
  const wildcard = (a: string) => a === '0.0.0.0' || a === '::';
  config.listeners.forEach((l, i) => {
    const j = config.listeners.findIndex(
      (o, k) =>
        k < i && o.port === l.port && (o.address === l.address || wildcard(o.address) || wildcard(l.address)),
    );
    if (j !== -1)
      issue(`listeners[${i}].port`, `conflicts with listeners[${j}] (same port on an overlapping address)`);
  });
}
