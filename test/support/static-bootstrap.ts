// Translated resources as a static Envoy bootstrap: what an Envoy would hold after ADS delivered them
// (RDS → the route configuration inline, EDS → STATIC with its ClusterLoadAssignment inline, the
// control-plane cluster from our own bootstrap). Lets a test run, or validate, a real Envoy on exactly
// what the translator generates without a control plane.
import { envoyBootstrap } from '../../xds/bootstrap.ts';
import type { EnvoyResourcesJson } from '../../xds/server/snapshot.ts';

type Json = Record<string, any>;

export interface StaticBootstrapOptions {
  /** Envoy's admin port on 127.0.0.1. */
  adminPort: number;
  /** The control plane's address in the bootstrap (access logs, ext_proc); nothing need listen there. */
  xdsAddress?: string;
  /** Adjusts each cluster's copy in place (a test's certificate files, say). */
  eachCluster?: (cluster: Json) => void;
}

export function staticBootstrap(resources: EnvoyResourcesJson, opts: StaticBootstrapOptions): Json {
  const bootstrap: Json = envoyBootstrap({
    nodeId: 'static',
    xdsAddress: opts.xdsAddress ?? '127.0.0.1:18000',
    adminPort: opts.adminPort,
  });
  delete bootstrap['dynamic_resources'];
  const routes = new Map(resources.routes.map((r) => [r['name'], r]));
  const assignments = new Map(resources.endpoints.map((e) => [e['cluster_name'], e]));
  const listeners = resources.listeners.map((listener) => {
    const copy: Json = structuredClone(listener);
    const hcm = copy['filter_chains'][0].filters[0].typed_config;
    const routeConfig = routes.get(hcm.rds.route_config_name);
    if (!routeConfig) throw new Error(`no route configuration ${hcm.rds.route_config_name}`);
    delete hcm.rds;
    hcm.route_config = structuredClone(routeConfig);
    return copy;
  });
  const clusters = resources.clusters.map((cluster) => {
    const copy: Json = structuredClone(cluster);
    if (copy['type'] === 'EDS') {
      const assignment = assignments.get(copy['eds_cluster_config'].service_name);
      if (!assignment) throw new Error(`no ClusterLoadAssignment of ${copy['name']}`);
      delete copy['eds_cluster_config'];
      copy['type'] = 'STATIC';
      copy['load_assignment'] = structuredClone(assignment);
    }
    opts.eachCluster?.(copy);
    return copy;
  });
  bootstrap['static_resources'].listeners = listeners;
  bootstrap['static_resources'].clusters.push(...clusters);
  return bootstrap;
}
