// An immutable, validated set of Envoy resources. Building one encodes every resource strictly
// against Envoy's protos and checks cross-references (a route's cluster exists, an EDS cluster has
// endpoints, a listener's RDS name has a route configuration); a snapshot with any error is never
// built, so it can never be published. Each resource is encoded here, once: streams and nodes all send
// these bytes, whatever their number.
import { createHash } from 'node:crypto';
import { loadEnvoyRoot } from '../../lib/envoy-proto.ts';
import { type EncodeResult, encodeProtoJson } from '../../lib/protojson.ts';
import { ADD_ORDER, MESSAGE_NAME, TYPE, type TypeUrl } from './resource-types.ts';

export interface EncodedResource {
  name: string;
  /** sha256 of the encoded bytes; versions are derived from these. */
  hash: string;
  bytes: Uint8Array;
}

export interface EnvoyResourcesJson {
  clusters: Record<string, unknown>[];
  endpoints: Record<string, unknown>[];
  listeners: Record<string, unknown>[];
  routes: Record<string, unknown>[];
}

export interface SnapshotError {
  resource: string;
  path: string;
  message: string;
}

/** Encodes one resource (proto3 JSON, proto field names) as the named Envoy message. */
export type ResourceEncoder = (messageName: string, resource: Record<string, unknown>) => EncodeResult;

/** Strict encoding against Envoy's own protos: an unknown field, a wrong type or a bad enum is an error. */
export const encodeEnvoyResource: ResourceEncoder = (messageName, resource) =>
  encodeProtoJson(loadEnvoyRoot(), messageName, resource);

export class XdsSnapshot {
  private constructor(
    readonly resources: ReadonlyMap<TypeUrl, ReadonlyMap<string, EncodedResource>>,
    /** Content hash of the whole snapshot. */
    readonly version: string,
  ) {}

  get(type: TypeUrl): ReadonlyMap<string, EncodedResource> {
    return this.resources.get(type) ?? new Map();
  }

  static build(
    json: EnvoyResourcesJson,
    encode: ResourceEncoder = encodeEnvoyResource,
  ): { ok: true; snapshot: XdsSnapshot } | { ok: false; errors: SnapshotError[] } {
    const errors: SnapshotError[] = [];
    const byType = new Map<TypeUrl, Map<string, EncodedResource>>();
    const lists: [TypeUrl, Record<string, unknown>[], string][] = [
      [TYPE.cluster, json.clusters, 'name'],
      [TYPE.endpoint, json.endpoints, 'cluster_name'],
      [TYPE.listener, json.listeners, 'name'],
      [TYPE.route, json.routes, 'name'],
    ];
    for (const [type, list, nameField] of lists) {
      const map = new Map<string, EncodedResource>();
      for (const [i, resource] of list.entries()) {
        const name = resource[nameField];
        const label = `${MESSAGE_NAME[type].split('.').pop()}[${typeof name === 'string' ? name : i}]`;
        if (typeof name !== 'string' || name === '') {
          errors.push({ resource: label, path: nameField, message: 'resource has no name' });
          continue;
        }
        if (map.has(name)) {
          errors.push({ resource: label, path: nameField, message: `duplicate resource name "${name}"` });
          continue;
        }
        const encoded = encode(MESSAGE_NAME[type], resource);
        if (!encoded.ok) {
          for (const e of encoded.errors) errors.push({ resource: label, path: e.path, message: e.message });
          continue;
        }
        map.set(name, {
          name,
          bytes: encoded.bytes,
          hash: createHash('sha256').update(encoded.bytes).digest('hex'),
        });
      }
      byType.set(type, map);
    }
    errors.push(...checkReferences(json, byType));
    if (errors.length > 0) return { ok: false, errors };
    const h = createHash('sha256');
    for (const type of ADD_ORDER) {
      for (const r of [...byType.get(type)!.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
        h.update(`${type}\0${r.name}\0${r.hash}\n`);
      }
    }
    return { ok: true, snapshot: new XdsSnapshot(byType, h.digest('hex').slice(0, 16)) };
  }
}

/** Names a listener's HCM asks RDS for, and clusters routes point at. */
function checkReferences(
  json: EnvoyResourcesJson,
  byType: Map<TypeUrl, Map<string, EncodedResource>>,
): SnapshotError[] {
  const errors: SnapshotError[] = [];
  const clusters = byType.get(TYPE.cluster)!;
  const routes = byType.get(TYPE.route)!;
  const endpoints = byType.get(TYPE.endpoint)!;
  const walk = (
    node: unknown,
    visit: (key: string, value: unknown, path: string) => void,
    path = '',
  ): void => {
    if (Array.isArray(node)) {
      for (const [i, v] of node.entries()) walk(v, visit, `${path}[${i}]`);
    } else if (node && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) {
        const p = path ? `${path}.${k}` : k;
        visit(k, v, p);
        walk(v, visit, p);
      }
    }
  };
  for (const listener of json.listeners) {
    walk(listener, (key, value, path) => {
      if (key === 'rds' && value && typeof value === 'object') {
        const name = (value as Record<string, unknown>)['route_config_name'];
        if (typeof name === 'string' && !routes.has(name)) {
          errors.push({
            resource: `Listener[${listener['name']}]`,
            path,
            message: `route configuration "${name}" does not exist`,
          });
        }
      }
    });
  }
  for (const rc of json.routes) {
    walk(rc, (key, value, path) => {
      if (key === 'cluster' && typeof value === 'string' && path.includes('route') && !clusters.has(value)) {
        errors.push({
          resource: `RouteConfiguration[${rc['name']}]`,
          path,
          message: `cluster "${value}" does not exist`,
        });
      }
    });
  }
  for (const cluster of json.clusters) {
    if (cluster['type'] === 'EDS') {
      const edsName =
        (cluster['eds_cluster_config'] as Record<string, unknown> | undefined)?.['service_name'] ??
        cluster['name'];
      if (typeof edsName === 'string' && !endpoints.has(edsName)) {
        errors.push({
          resource: `Cluster[${cluster['name']}]`,
          path: 'type',
          message: `EDS cluster has no ClusterLoadAssignment "${edsName}"`,
        });
      }
    }
  }
  return errors;
}
