// Kubernetes request info against kube-apiserver's own test table: the cases of
// k8s.io/apiserver/pkg/endpoints/request/requestinfo_test.go (TestGetAPIRequestInfo,
// TestGetNonAPIRequestInfo, TestSelectorParsing; kubernetes/apiserver at 24a394e5, 2026-07-23),
// ported as data. kube-apiserver writes "" where the view writes null (namespace, resource,
// subresource, name); the API group stays "" for the core group.
import { describe, expect, it } from 'vitest';
import { parseFormEncoded } from '../../authz-server/input/query.ts';
import { kubernetesRequestInfo } from '../../authz-server/protocols/kubernetes.ts';

function info(method: string, url: string) {
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const query = parseFormEncoded(q === -1 ? '' : url.slice(q + 1));
  if (!query.ok) throw new Error(query.reason);
  const r = kubernetesRequestInfo(method, path.split('/').slice(1), query.values);
  if (!r.ok) throw new Error(r.reason);
  return r.value;
}

const orNull = (s: string) => (s === '' ? null : s);

// method, url, verb, apiPrefix, apiGroup, apiVersion, namespace, resource, subresource, name, parts
type Row = [string, string, string, string, string, string, string, string, string, string, string[]];
const GET = 'GET';
const HEAD = 'HEAD';
const PUT = 'PUT';
const PATCH = 'PATCH';
const DELETE = 'DELETE';
const POST = 'POST';

const successCases: Row[] = [
  // resource paths
  [GET, '/api/v1/namespaces', 'list', 'api', '', 'v1', '', 'namespaces', '', '', ['namespaces']],
  [
    GET,
    '/api/v1/namespaces/other',
    'get',
    'api',
    '',
    'v1',
    'other',
    'namespaces',
    '',
    'other',
    ['namespaces', 'other'],
  ],
  [GET, '/api/v1/namespaces/other/pods', 'list', 'api', '', 'v1', 'other', 'pods', '', '', ['pods']],
  [
    GET,
    '/api/v1/namespaces/other/pods/foo',
    'get',
    'api',
    '',
    'v1',
    'other',
    'pods',
    '',
    'foo',
    ['pods', 'foo'],
  ],
  [
    HEAD,
    '/api/v1/namespaces/other/pods/foo',
    'get',
    'api',
    '',
    'v1',
    'other',
    'pods',
    '',
    'foo',
    ['pods', 'foo'],
  ],
  [GET, '/api/v1/pods', 'list', 'api', '', 'v1', '', 'pods', '', '', ['pods']],
  [HEAD, '/api/v1/pods', 'list', 'api', '', 'v1', '', 'pods', '', '', ['pods']],
  [
    GET,
    '/api/v1/namespaces/other/pods/foo',
    'get',
    'api',
    '',
    'v1',
    'other',
    'pods',
    '',
    'foo',
    ['pods', 'foo'],
  ],
  [GET, '/api/v1/namespaces/other/pods', 'list', 'api', '', 'v1', 'other', 'pods', '', '', ['pods']],
  // special verbs
  [
    GET,
    '/api/v1/proxy/namespaces/other/pods/foo',
    'proxy',
    'api',
    '',
    'v1',
    'other',
    'pods',
    '',
    'foo',
    ['pods', 'foo'],
  ],
  [
    GET,
    '/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource',
    'proxy',
    'api',
    '',
    'v1',
    'other',
    'pods',
    '',
    'foo',
    ['pods', 'foo', 'subpath', 'not', 'a', 'subresource'],
  ],
  [GET, '/api/v1/watch/pods', 'watch', 'api', '', 'v1', '', 'pods', '', '', ['pods']],
  [GET, '/api/v1/pods?watch=true', 'watch', 'api', '', 'v1', '', 'pods', '', '', ['pods']],
  [GET, '/api/v1/pods?watch=false', 'list', 'api', '', 'v1', '', 'pods', '', '', ['pods']],
  [GET, '/api/v1/watch/namespaces/other/pods', 'watch', 'api', '', 'v1', 'other', 'pods', '', '', ['pods']],
  [GET, '/api/v1/namespaces/other/pods?watch=1', 'watch', 'api', '', 'v1', 'other', 'pods', '', '', ['pods']],
  [GET, '/api/v1/namespaces/other/pods?watch=0', 'list', 'api', '', 'v1', 'other', 'pods', '', '', ['pods']],
  // subresource identification
  [
    GET,
    '/api/v1/namespaces/other/pods/foo/status',
    'get',
    'api',
    '',
    'v1',
    'other',
    'pods',
    'status',
    'foo',
    ['pods', 'foo', 'status'],
  ],
  [
    GET,
    '/api/v1/namespaces/other/pods/foo/proxy/subpath',
    'get',
    'api',
    '',
    'v1',
    'other',
    'pods',
    'proxy',
    'foo',
    ['pods', 'foo', 'proxy', 'subpath'],
  ],
  [
    PUT,
    '/api/v1/namespaces/other/finalize',
    'update',
    'api',
    '',
    'v1',
    'other',
    'namespaces',
    'finalize',
    'other',
    ['namespaces', 'other', 'finalize'],
  ],
  [
    PUT,
    '/api/v1/namespaces/other/status',
    'update',
    'api',
    '',
    'v1',
    'other',
    'namespaces',
    'status',
    'other',
    ['namespaces', 'other', 'status'],
  ],
  // verb identification
  [
    PATCH,
    '/api/v1/namespaces/other/pods/foo',
    'patch',
    'api',
    '',
    'v1',
    'other',
    'pods',
    '',
    'foo',
    ['pods', 'foo'],
  ],
  [
    DELETE,
    '/api/v1/namespaces/other/pods/foo',
    'delete',
    'api',
    '',
    'v1',
    'other',
    'pods',
    '',
    'foo',
    ['pods', 'foo'],
  ],
  [POST, '/api/v1/namespaces/other/pods', 'create', 'api', '', 'v1', 'other', 'pods', '', '', ['pods']],
  // deletecollection verb identification
  [DELETE, '/api/v1/nodes', 'deletecollection', 'api', '', 'v1', '', 'nodes', '', '', ['nodes']],
  [
    DELETE,
    '/api/v1/namespaces',
    'deletecollection',
    'api',
    '',
    'v1',
    '',
    'namespaces',
    '',
    '',
    ['namespaces'],
  ],
  [
    DELETE,
    '/api/v1/namespaces/other/pods',
    'deletecollection',
    'api',
    '',
    'v1',
    'other',
    'pods',
    '',
    '',
    ['pods'],
  ],
  [
    DELETE,
    '/apis/extensions/v1/namespaces/other/pods',
    'deletecollection',
    'api',
    'extensions',
    'v1',
    'other',
    'pods',
    '',
    '',
    ['pods'],
  ],
  // api group identification
  [
    POST,
    '/apis/extensions/v1/namespaces/other/pods',
    'create',
    'api',
    'extensions',
    'v1',
    'other',
    'pods',
    '',
    '',
    ['pods'],
  ],
  // api version identification
  [
    POST,
    '/apis/extensions/v1beta3/namespaces/other/pods',
    'create',
    'api',
    'extensions',
    'v1beta3',
    'other',
    'pods',
    '',
    '',
    ['pods'],
  ],
];

describe('kube-apiserver TestGetAPIRequestInfo', () => {
  it.each(successCases)(
    '%s %s',
    (method, url, verb, _prefix, group, version, ns, resource, sub, name, parts) => {
      const v = info(method, url);
      expect({
        is_resource_request: v.is_resource_request,
        verb: v.verb,
        api_group: v.api_group,
        api_version: v.api_version,
        namespace: v.namespace,
        resource: v.resource,
        subresource: v.subresource,
        object_name: v.object_name,
        parts: v.parts,
      }).toEqual({
        is_resource_request: true,
        verb,
        api_group: group,
        api_version: version,
        namespace: orNull(ns),
        resource: orNull(resource),
        subresource: orNull(sub),
        object_name: orNull(name),
        parts,
      });
      // kube's expectedAPIPrefix column holds "api" for every row, /apis/ ones included; the prefix
      // itself is the first segment.
      expect(v.api_prefix).toBe(url.split('/')[1]);
    },
  );

  it.each([
    ['no resource path', '/'],
    ['just apiversion', '/api/version/'],
    ['just prefix, group, version', '/apis/group/version/'],
    ['apiversion with no resource', '/api/version/'],
    ['bad prefix', '/badprefix/version/resource'],
    ['missing api group', '/apis/version/resource'],
  ])('error case %s (%s) is not a resource request', (_name, url) => {
    expect(info(GET, url).is_resource_request).toBe(false);
  });
});

describe('kube-apiserver TestGetNonAPIRequestInfo', () => {
  it.each<[string, string, boolean]>([
    ['simple groupless', '/api/version/resource', true],
    ['simple group', '/apis/group/version/resource/name/subresource', true],
    ['more steps', '/api/version/resource/name/subresource', true],
    ['group list', '/apis/batch/v1/job', true],
    ['group get', '/apis/batch/v1/job/foo', true],
    ['group subresource', '/apis/batch/v1/job/foo/scale', true],
    ['bad root', '/not-api/version/resource', false],
    ['group without enough steps', '/apis/extensions/v1beta1', false],
    ['group without enough steps 2', '/apis/extensions/v1beta1/', false],
    ['not enough steps', '/api/version', false],
    ['one step', '/api', false],
    ['zero step', '/', false],
  ])('%s', (_name, url, expected) => {
    expect(info(GET, url).is_resource_request).toBe(expected);
  });
});

describe('kube-apiserver TestSelectorParsing', () => {
  // name, method, url, expectedName, expectedVerb, expectedFieldSelector, expectedLabelSelector
  it.each<[string, string, string, string, string, string, string]>([
    ['no selector', GET, '/apis/group/version/resource', '', 'list', '', ''],
    [
      'metadata.name selector',
      GET,
      '/apis/group/version/resource?fieldSelector=metadata.name=name1',
      'name1',
      'list',
      'metadata.name=name1',
      '',
    ],
    [
      'metadata.name selector with watch',
      GET,
      '/apis/group/version/resource?watch=true&fieldSelector=metadata.name=name1',
      'name1',
      'watch',
      'metadata.name=name1',
      '',
    ],
    [
      'random selector',
      GET,
      '/apis/group/version/resource?fieldSelector=foo=bar&labelSelector=baz=qux',
      '',
      'list',
      'foo=bar',
      'baz=qux',
    ],
    [
      'invalid selector with metadata.name',
      GET,
      '/apis/group/version/resource?fieldSelector=metadata.name=name1,foo',
      '',
      'list',
      'metadata.name=name1,foo',
      '',
    ],
    [
      'invalid selector with metadata.name with watch',
      GET,
      '/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=true',
      '',
      'watch',
      'metadata.name=name1,foo',
      '',
    ],
    [
      'invalid selector with metadata.name with watch false',
      GET,
      '/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=false',
      '',
      'list',
      'metadata.name=name1,foo',
      '',
    ],
    [
      'selector on deletecollection is honored',
      DELETE,
      '/apis/group/version/resource?fieldSelector=foo=bar&labelSelector=baz=qux',
      '',
      'deletecollection',
      'foo=bar',
      'baz=qux',
    ],
    [
      'selector on repeated param matches parsed param',
      GET,
      '/apis/group/version/resource?fieldSelector=metadata.name=foo&fieldSelector=metadata.name=bar&labelSelector=foo=bar&labelSelector=foo=baz',
      'foo',
      'list',
      'metadata.name=foo',
      'foo=bar',
    ],
    [
      'selector on other verb is ignored',
      GET,
      '/apis/group/version/resource/name?fieldSelector=foo=bar&labelSelector=foo=bar',
      'name',
      'get',
      '',
      '',
    ],
    [
      'selector on deprecated root type watch is not parsed',
      GET,
      '/apis/group/version/watch/resource?fieldSelector=metadata.name=foo&labelSelector=foo=bar',
      '',
      'watch',
      '',
      '',
    ],
    [
      'selector on deprecated root item watch is not parsed',
      GET,
      '/apis/group/version/watch/resource/name?fieldSelector=metadata.name=foo&labelSelector=foo=bar',
      'name',
      'watch',
      '',
      '',
    ],
  ])('%s', (_name, method, url, name, verb, fieldSelector, labelSelector) => {
    const v = info(method, url);
    expect({
      object_name: v.object_name,
      verb: v.verb,
      field_selector: v.field_selector,
      label_selector: v.label_selector,
    }).toEqual({
      object_name: orNull(name),
      verb,
      field_selector: orNull(fieldSelector),
      label_selector: orNull(labelSelector),
    });
  });
});

describe('beyond the table: facts of kube-apiserver the table does not spell out', () => {
  it.each<[string, string]>([
    ['/api/v1/pods?watch=', 'watch'],
    ['/api/v1/pods?watch=yes', 'watch'],
    ['/api/v1/pods?watch=FALSE', 'list'],
    ['/api/v1/pods?watch=False&watch=true', 'list'],
    ['/api/v1/pods?watch=2', 'watch'],
  ])('%s → %s (first value; anything but "0"/"false" watches)', (url, verb) => {
    expect(info(GET, url).verb).toBe(verb);
  });

  it.each<[string, string | null]>([
    ['fieldSelector=metadata.name==a', 'a'],
    ['fieldSelector=metadata.name=b,metadata.name=a', 'a'],
    ['fieldSelector=metadata.name!=a', null],
    ['fieldSelector=metadata.name=a%2Fb', null],
    ['fieldSelector=metadata.name=..', null],
    ['fieldSelector=metadata.name=a&limit=abc', null],
    ['fieldSelector=metadata.name=a&limit=%2B5', 'a'],
    ['fieldSelector=metadata.name=a&labelSelector=app%20in%20(x)', null],
    ['fieldSelector=metadata.name=a\\,b', 'a,b'],
  ])('list ?%s names %s', (query, name) => {
    expect(info(GET, `/api/v1/namespaces/dev/pods?${query}`).object_name).toBe(name);
  });

  it('refuses a path verb without a resource and methods that are no API verb', () => {
    expect(kubernetesRequestInfo('GET', ['api', 'v1', 'watch'], {})).toMatchObject({ ok: false });
    expect(kubernetesRequestInfo('OPTIONS', ['api', 'v1', 'pods'], {})).toMatchObject({ ok: false });
  });

  it('counts exec, attach and portforward as create whatever the method', () => {
    for (const sub of ['exec', 'attach', 'portforward'])
      expect(info(GET, `/api/v1/namespaces/dev/pods/web/${sub}`)).toMatchObject({
        verb: 'create',
        subresource: sub,
      });
  });
});
