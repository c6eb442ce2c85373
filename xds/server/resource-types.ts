// xDS resource type URLs and the order updates are applied in: a cluster must exist before a route
// points at it, so adds go clusters → endpoints → listeners → routes and removals the other way.
export const TYPE = {
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoint: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
} as const;

export type TypeUrl = (typeof TYPE)[keyof typeof TYPE];

export const ADD_ORDER: TypeUrl[] = [TYPE.cluster, TYPE.endpoint, TYPE.listener, TYPE.route];
export const REMOVE_ORDER: TypeUrl[] = [...ADD_ORDER].reverse();

/** LDS and CDS are wildcard in state-of-the-world: an empty name list means "everything". */
export const WILDCARD_TYPES = new Set<string>([TYPE.cluster, TYPE.listener]);

export const MESSAGE_NAME: Record<TypeUrl, string> = {
  [TYPE.cluster]: 'envoy.config.cluster.v3.Cluster',
  [TYPE.endpoint]: 'envoy.config.endpoint.v3.ClusterLoadAssignment',
  [TYPE.listener]: 'envoy.config.listener.v3.Listener',
  [TYPE.route]: 'envoy.config.route.v3.RouteConfiguration',
};

export const SHORT_NAME: Record<TypeUrl, string> = {
  [TYPE.cluster]: 'CDS',
  [TYPE.endpoint]: 'EDS',
  [TYPE.listener]: 'LDS',
  [TYPE.route]: 'RDS',
};
