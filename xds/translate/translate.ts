// IR → Envoy xDS resources (proto3 JSON with proto field names, the shape XdsSnapshot.build takes):
// a Listener and a RouteConfiguration per listener, a Cluster per target plus the authz cluster,
// and a ClusterLoadAssignment per EDS cluster. Pure and deterministic (every list sorted by name).
// The resources are validated by building the snapshot that publishes them — strict encoding against
// Envoy's protos, references resolved — so a resource Envoy would reject or misread never leaves here,
// and each one is encoded once: the snapshot returned is the one the ADS server sends.
import type { Ir } from '../ir/types.ts';
import { type EnvoyResourcesJson, type ResourceEncoder, XdsSnapshot } from '../server/snapshot.ts';
import { clusterResource, loadAssignment } from './cluster.ts';
import { type ResourceIssue, TranslateError } from './errors.ts';
import { listenerResource } from './listener.ts';
import { routeConfigurationResource } from './route.ts';

export interface Translation {
  /** The resources as proto3 JSON: what the golden files hold and what `envoy --mode validate` reads. */
  resources: EnvoyResourcesJson;
  /** The same resources, encoded and validated, ready to publish. */
  snapshot: XdsSnapshot;
}

const PROTOCOLS = new Set(['http', 'mcp', 'llm', 'kubernetes', 'graphql']);

const byKey =
  (key: string) =>
  (a: Record<string, unknown>, b: Record<string, unknown>): number => {
    const x = String(a[key]);
    const y = String(b[key]);
    return x < y ? -1 : x > y ? 1 : 0;
  };

/** What the IR asks for that Envoy resources cannot express: reported, never dropped. */
function unsupported(ir: Ir): ResourceIssue[] {
  const issues: ResourceIssue[] = [];
  const clusters = new Set(ir.clusters.map((c) => c.name));
  if (!clusters.has(ir.authzCluster)) {
    issues.push({
      resource: 'Ir',
      path: 'authzCluster',
      message: `cluster "${ir.authzCluster}" is not defined`,
    });
  }
  for (const l of ir.listeners) {
    for (const vh of l.virtualHosts) {
      for (const r of vh.routes) {
        const at = { resource: `RouteConfiguration[${l.routeConfigName}]`, path: `${vh.name}/${r.routeId}` };
        if (!PROTOCOLS.has(r.protocol))
          issues.push({ ...at, message: `unsupported protocol "${r.protocol}"` });
        if (!clusters.has(r.cluster))
          issues.push({ ...at, message: `cluster "${r.cluster}" is not defined` });
        if (r.match.segmentBoundary && (r.match.pathPrefix === '/' || r.match.pathPrefix.endsWith('/'))) {
          issues.push({ ...at, message: 'a segment-boundary match needs a prefix not ending in "/"' });
        }
      }
    }
  }
  return issues;
}

/** Throws TranslateError listing every problem. `encode` is the strict Envoy encoder unless a test counts. */
export function translate(ir: Ir, encode?: ResourceEncoder): Translation {
  const problems = unsupported(ir);
  if (problems.length > 0) throw new TranslateError(problems);
  const resources: EnvoyResourcesJson = {
    listeners: ir.listeners.map((l) => listenerResource(ir, l)).sort(byKey('name')),
    routes: ir.listeners.map(routeConfigurationResource).sort(byKey('name')),
    clusters: ir.clusters.map(clusterResource).sort(byKey('name')),
    endpoints: ir.clusters
      .filter((c) => c.discovery === 'eds')
      .map(loadAssignment)
      .sort(byKey('cluster_name')),
  };
  const built = XdsSnapshot.build(resources, encode);
  if (!built.ok) throw new TranslateError(built.errors);
  return { resources, snapshot: built.snapshot };
}
