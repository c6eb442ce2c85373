// IR → Envoy xDS resources (proto3 JSON with proto field names, the shape XdsSnapshot.build takes):
// a Listener and a RouteConfiguration per listener, a Cluster per target plus the authz cluster,
// and a ClusterLoadAssignment per EDS cluster. Pure and deterministic (every list sorted by name);
// the result is validated strictly before it is returned, so a resource Envoy would reject or
// misread never leaves here.
import type { Ir } from '../ir/types.ts';
import type { EnvoyResourcesJson } from '../server/snapshot.ts';
import { clusterResource, loadAssignment } from './cluster.ts';
import { type ResourceIssue, TranslateError } from './errors.ts';
import { listenerResource } from './listener.ts';
import { routeConfigurationResource } from './route.ts';
import { validateResources } from './validate.ts';

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

export function translate(ir: Ir): EnvoyResourcesJson {
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
  const issues = validateResources(resources);
  if (issues.length > 0) throw new TranslateError(issues);
  return resources;
}
