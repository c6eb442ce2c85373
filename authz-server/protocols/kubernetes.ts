// Kubernetes API requests as policy input, derived from method + path the way kube-apiserver's
// RequestInfoFactory does: verb (get/list/watch/create/update/patch/delete/deletecollection), API group
// and version, namespace, resource, subresource and name. exec, attach and portforward always count as
// `create`, whatever the HTTP method, so a read-only policy cannot be bypassed with a GET upgrade.
import type { ProtocolContext, ProtocolOutcome } from '../input/policy-input.ts';

export interface KubernetesView {
  name: 'kubernetes';
  is_resource_request: boolean;
  verb: string;
  api_group: string | null;
  api_version: string | null;
  namespace: string | null;
  resource: string | null;
  subresource: string | null;
  /** The object's name, when the request addresses one (or a list filtered to one). */
  object_name: string | null;
  path: string;
}

const CONNECT_SUBRESOURCES = new Set(['exec', 'attach', 'portforward']);

/** The path the API server will see: the client's path with the route's prefix rewrite applied. */
function upstreamSegments(ctx: ProtocolContext): readonly string[] {
  if (!ctx.rewrite) return ctx.parsedPath;
  const { pathPrefix: prefix, prefixRewrite: rewrite } = ctx.rewrite;
  const path = `/${ctx.parsedPath.join('/')}`;
  if (!path.startsWith(prefix)) return ctx.parsedPath;
  const rewritten = `${rewrite}${path.slice(prefix.length)}`.replace(/^\/+/, '');
  return rewritten.split('/');
}

export function parseKubernetes(ctx: ProtocolContext): ProtocolOutcome {
  const segs = upstreamSegments(ctx).filter((s, i, a) => !(s === '' && i === a.length - 1));
  const path = `/${segs.join('/')}`;
  const method = ctx.method.toUpperCase();
  const nonResource = (): ProtocolOutcome => ({
    ok: true,
    value: {
      name: 'kubernetes',
      is_resource_request: false,
      verb: method.toLowerCase(),
      api_group: null,
      api_version: null,
      namespace: null,
      resource: null,
      subresource: null,
      object_name: null,
      path,
    } satisfies KubernetesView,
  });
  let group: string;
  let version: string | undefined;
  let rest: string[];
  if (segs[0] === 'api') {
    group = '';
    version = segs[1];
    rest = segs.slice(2);
  } else if (segs[0] === 'apis') {
    group = segs[1] ?? '';
    version = segs[2];
    rest = segs.slice(3);
  } else return nonResource();
  if (!version || rest.length === 0) return nonResource(); // discovery documents

  let verb: string;
  let watchPrefix = false;
  if (rest[0] === 'watch') {
    // Legacy /watch/ prefix: deprecated, still served by kube-apiserver.
    watchPrefix = true;
    rest = rest.slice(1);
  }
  // As kube-apiserver: /namespaces/<ns>/<resource>… addresses a resource in <ns>; /namespaces/<ns>
  // alone is the namespace object (resource "namespaces", name <ns>, namespace <ns>).
  let namespace: string | null = null;
  if (rest[0] === 'namespaces' && rest.length > 1) {
    namespace = rest[1]!;
    if (rest.length > 2) rest = rest.slice(2);
  }
  const resource = rest[0] ?? null;
  let objectName = rest[1] ?? null;
  const subresource = rest.length > 2 ? rest[2]! : null;
  const watchQuery = ['1', 'true'].includes((ctx.parsedQuery['watch']?.[0] ?? '').toLowerCase());
  switch (method) {
    case 'GET':
    case 'HEAD':
      verb = objectName ? 'get' : watchPrefix || watchQuery ? 'watch' : 'list';
      if (objectName && (watchPrefix || watchQuery)) verb = 'watch';
      break;
    case 'POST':
      verb = 'create';
      break;
    case 'PUT':
      verb = 'update';
      break;
    case 'PATCH':
      verb = 'patch';
      break;
    case 'DELETE':
      verb = objectName ? 'delete' : 'deletecollection';
      break;
    default:
      return {
        ok: false,
        code: 'ERR_PROTOCOL_INVALID',
        reason: `Kubernetes: HTTP method ${method} is not an API verb`,
      };
  }
  if ((verb === 'list' || verb === 'watch') && !objectName) {
    for (const sel of ctx.parsedQuery['fieldSelector'] ?? []) {
      for (const term of sel.split(',')) {
        const m = /^metadata\.name(?:=|==)(.+)$/.exec(term.trim());
        if (m) objectName = m[1]!;
      }
    }
  }
  if (subresource && CONNECT_SUBRESOURCES.has(subresource)) verb = 'create';
  return {
    ok: true,
    value: {
      name: 'kubernetes',
      is_resource_request: true,
      verb,
      api_group: group,
      api_version: version,
      namespace,
      resource,
      subresource,
      object_name: objectName,
      path,
    } satisfies KubernetesView,
  };
}
