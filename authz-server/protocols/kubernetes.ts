// Kubernetes API requests as policy input: the request info kube-apiserver itself derives from method,
// path and query (k8s.io/apiserver RequestInfoFactory), so the policy judges what the API server will
// authorize — verb, API group and version, namespace, resource, subresource, name. Our own code, checked
// against kube-apiserver's test table (test/unit/protocols-kubernetes.test.ts). Facts it follows:
// - `/api/<v>/…` is the core group, `/apis/<group>/<v>/…` the others; fewer segments is not a resource;
// - `proxy` and `watch` right after the version are verbs (`/api/v1/watch/pods`);
// - `/namespaces/<ns>/status|finalize` are subresources of the namespace object, not resources in it;
// - a GET without a name is `list`, or `watch` when the first `watch` value is anything but "0" or
//   "false" (any case) — so `watch=` and `watch=yes` watch;
// - a list or watch whose fieldSelector requires `metadata.name=<n>` (first match of the sorted terms)
//   names <n>, unless the query fails to decode (then kube-apiserver drops the selector);
// - a DELETE without a name is `deletecollection`.
// One deliberate difference: exec, attach and portforward always count as `create`, whatever the HTTP
// method, so a read-only policy cannot be bypassed with a GET websocket upgrade (kube-apiserver now
// requires `create` for those upgrades too).
import type { ProtocolContext, ProtocolOutcome } from '../input/policy-input.ts';
import type { FormValues } from '../input/query.ts';
import { upstreamSegments } from './upstream-path.ts';

export interface KubernetesView {
  name: 'kubernetes';
  is_resource_request: boolean;
  verb: string;
  /** `api` or `apis`; null for a non-resource request. */
  api_prefix: string | null;
  /** '' for the core group. */
  api_group: string | null;
  api_version: string | null;
  namespace: string | null;
  resource: string | null;
  subresource: string | null;
  /** The object's name, when the request addresses one (or a list filtered to one). */
  object_name: string | null;
  /** What follows the namespace: resource, name, subresource, and for proxy the rest of the path. */
  parts: string[];
  /** For list, watch and deletecollection: the first fieldSelector / labelSelector as sent. */
  field_selector: string | null;
  label_selector: string | null;
  path: string;
}

const CONNECT_SUBRESOURCES = new Set(['exec', 'attach', 'portforward']);
const PATH_VERBS = new Set(['proxy', 'watch']);
const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);
const SELECTOR_VERBS = new Set(['list', 'watch', 'deletecollection']);
const METHOD_VERBS: Record<string, string> = {
  POST: 'create',
  GET: 'get',
  HEAD: 'get',
  PUT: 'update',
  PATCH: 'patch',
  DELETE: 'delete',
};

/** Go's `strings.Split(strings.Trim(path, "/"), "/")` on an already split path. */
function trimmedParts(segs: readonly string[]): string[] {
  let start = 0;
  let end = segs.length;
  while (start < end && segs[start] === '') start++;
  while (end > start && segs[end - 1] === '') end--;
  return segs.slice(start, end);
}

/** `true` unless the value is "0" or "false" in any case: kube's query-parameter bool conversion. */
function queryBool(values: readonly string[] | undefined): boolean {
  if (!values || values.length === 0) return false;
  const v = values[0]!;
  return !(v === '0' || v.toLowerCase() === 'false');
}

/** fields.ParseSelector: terms split on unescaped ',', sorted; each `field(!=|==|=)value`. */
function parseFieldSelector(selector: string): { field: string; op: string; value: string }[] | null {
  const terms: string[] = [];
  let start = 0;
  let escaped = false;
  for (let i = 0; i < selector.length; i++) {
    const c = selector[i];
    if (escaped) escaped = false;
    else if (c === '\\') escaped = true;
    else if (c === ',') {
      terms.push(selector.slice(start, i));
      start = i + 1;
    }
  }
  if (selector.length > 0) terms.push(selector.slice(start));
  // Go sorts by bytes; JS compares UTF-16 units. They agree except around astral characters, which
  // only reorder terms that do not both name metadata.name.
  terms.sort();
  const out: { field: string; op: string; value: string }[] = [];
  for (const term of terms) {
    if (term === '') continue;
    let split: { field: string; op: string; rest: string } | null = null;
    for (let i = 0; i < term.length && !split; i++) {
      for (const op of ['!=', '==', '=']) {
        if (term.startsWith(op, i)) {
          split = { field: term.slice(0, i), op, rest: term.slice(i + op.length) };
          break;
        }
      }
    }
    if (!split) return null;
    let value = '';
    let slash = false;
    for (const c of split.rest) {
      if (slash) {
        if (c !== '\\' && c !== ',' && c !== '=') return null;
        value += c;
        slash = false;
      } else if (c === '\\') slash = true;
      else if (c === ',' || c === '=') return null;
      else value += c;
    }
    if (slash) return null;
    out.push({ field: split.field, op: split.op, value });
  }
  return out;
}

const LABEL_NAME = '[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?';
const LABEL_KEY = new RegExp(
  `^(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*/)?${LABEL_NAME}$`,
);
const LABEL_VALUE = new RegExp(`^(?:${LABEL_NAME})?$`);

/**
 * A label selector in the plain forms (`k`, `!k`, `k=v`, `k==v`, `k!=v`, comma-separated) that
 * kube-apiserver certainly accepts. Anything else counts as a decoding failure, which only ever widens
 * what the policy sees (the fieldSelector's name is dropped), never narrows it.
 */
function plainLabelSelector(selector: string): boolean {
  if (selector === '') return true;
  return selector.split(',').every((req) => {
    const m = /^(!?)([^=!]+)(?:(==|!=|=)(.*))?$/.exec(req);
    if (!m) return false;
    const key = m[2]!;
    if (!LABEL_KEY.test(key) || (key.includes('/') && key.indexOf('/') > 253)) return false;
    if (m[1] === '!') return m[3] === undefined;
    return m[3] === undefined || LABEL_VALUE.test(m[4]!);
  });
}

function int64(value: string): boolean {
  if (!/^[+-]?\d{1,19}$/.test(value)) return false;
  const n = BigInt(value);
  return n >= -(2n ** 63n) && n < 2n ** 63n;
}

/**
 * Whether kube-apiserver's ListOptions decoding of this query certainly succeeds, and the field
 * selector it yields (null: none). A failure makes kube-apiserver forget the selector.
 */
function decodeListOptions(query: Readonly<FormValues>): {
  ok: boolean;
  fieldSelector: ReturnType<typeof parseFieldSelector>;
} {
  const first = (k: string) => query[k]?.[0];
  for (const k of ['limit', 'timeoutSeconds']) {
    const v = first(k);
    if (v !== undefined && !int64(v)) return { ok: false, fieldSelector: null };
  }
  const labels = first('labelSelector');
  if (labels !== undefined && !plainLabelSelector(labels)) return { ok: false, fieldSelector: null };
  const fields = first('fieldSelector');
  if (fields === undefined) return { ok: true, fieldSelector: null };
  const parsed = parseFieldSelector(fields);
  return parsed ? { ok: true, fieldSelector: parsed } : { ok: false, fieldSelector: null };
}

/** content.IsPathSegmentName: a name that can be a path segment. */
function pathSegmentName(name: string): boolean {
  return name !== '.' && name !== '..' && !name.includes('/') && !name.includes('%');
}

export type RequestInfoOutcome = { ok: true; value: KubernetesView } | { ok: false; reason: string };

/** The view of a request that is not a resource request (kube-apiserver's non-resource info). */
function baseView(method: string, segments: readonly string[]): KubernetesView {
  return {
    name: 'kubernetes',
    is_resource_request: false,
    verb: method.toLowerCase(),
    api_prefix: null,
    api_group: null,
    api_version: null,
    namespace: null,
    resource: null,
    subresource: null,
    object_name: null,
    parts: [],
    field_selector: null,
    label_selector: null,
    path: `/${segments.join('/')}`,
  };
}

interface ApiPath {
  prefix: string;
  group: string;
  version: string;
  /** What follows the version. */
  rest: string[];
}

/** `/api/<version>/…` or `/apis/<group>/<version>/…` with something after the version; null otherwise. */
function apiPath(parts: string[]): ApiPath | null {
  if (parts.length < 3 || (parts[0] !== 'api' && parts[0] !== 'apis')) return null;
  if (parts[0] === 'api') return { prefix: 'api', group: '', version: parts[1]!, rest: parts.slice(2) };
  if (parts.length < 4) return null;
  return { prefix: 'apis', group: parts[1]!, version: parts[2]!, rest: parts.slice(3) };
}

type VerbOutcome =
  | { ok: true; verb: string; fromPath: boolean; rest: string[] }
  | { ok: false; reason: string };

/** The verb: a path verb (`watch`, `proxy`, …) before the resource, else the HTTP method's. */
function verbOf(method: string, parts: string[]): VerbOutcome {
  if (PATH_VERBS.has(parts[0]!)) {
    if (parts.length < 2) return { ok: false, reason: `Kubernetes: ${parts[0]} needs a resource` };
    return { ok: true, verb: parts[0]!, fromPath: true, rest: parts.slice(1) };
  }
  const v = METHOD_VERBS[method.toUpperCase()];
  if (v === undefined) return { ok: false, reason: `Kubernetes: HTTP method ${method} is not an API verb` };
  return { ok: true, verb: v, fromPath: false, rest: parts };
}

/** A nameless get is a list or a watch, named by a `metadata.name` field selector when it can be decoded. */
function listOrWatch(query: Readonly<FormValues>): { verb: string; name: string } {
  const opts = decodeListOptions(query);
  const verb = queryBool(query['watch']) ? 'watch' : 'list';
  const term = opts.ok
    ? opts.fieldSelector?.find((t) => t.field === 'metadata.name' && t.op !== '!=')
    : undefined;
  return { verb, name: term && pathSegmentName(term.value) ? term.value : '' };
}

/** kube-apiserver's RequestInfo for a method, the (upstream) path segments and the query. */
export function kubernetesRequestInfo(
  method: string,
  segments: readonly string[],
  query: Readonly<FormValues>,
): RequestInfoOutcome {
  const view = baseView(method, segments);
  const api = apiPath(trimmedParts(segments));
  if (!api) return { ok: true, value: view };
  const verbed = verbOf(method, api.rest);
  if (!verbed.ok) return verbed;
  let { verb, rest: parts } = verbed;

  let namespace: string | null = null;
  if (parts[0] === 'namespaces' && parts.length > 1) {
    namespace = parts[1]!;
    if (parts.length > 2 && !NAMESPACE_SUBRESOURCES.has(parts[2]!)) parts = parts.slice(2);
  }
  const resource = parts[0] ?? null;
  let name = parts.length >= 2 ? parts[1]! : '';
  const subresource = parts.length >= 3 && verb !== 'proxy' ? parts[2]! : null;

  if (name === '' && verb === 'get') ({ verb, name } = listOrWatch(query));
  if (name === '' && verb === 'delete') verb = 'deletecollection';
  const selectors = !verbed.fromPath && SELECTOR_VERBS.has(verb);
  if (subresource !== null && CONNECT_SUBRESOURCES.has(subresource)) verb = 'create';
  return {
    ok: true,
    value: {
      ...view,
      is_resource_request: true,
      verb,
      api_prefix: api.prefix,
      api_group: api.group,
      api_version: api.version,
      namespace,
      resource,
      subresource,
      object_name: name === '' ? null : name,
      parts,
      field_selector: selectors ? (query['fieldSelector']?.[0] ?? null) : null,
      label_selector: selectors ? (query['labelSelector']?.[0] ?? null) : null,
    },
  };
}

export function parseKubernetes(ctx: ProtocolContext): ProtocolOutcome {
  const info = kubernetesRequestInfo(ctx.method, upstreamSegments(ctx), ctx.parsedQuery);
  if (!info.ok) return { ok: false, code: 'ERR_PROTOCOL_INVALID', reason: info.reason };
  return { ok: true, value: info.value };
}
