// Loads Envoy's API protos from the copy @grpc/grpc-js-xds ships. Loading the whole tree takes
// ~0.2 s, so each option set is loaded once per process and shared.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const require = createRequire(import.meta.url);
const XDS_PKG_DIR = dirname(require.resolve('@grpc/grpc-js-xds/package.json'));

/** Include dirs that resolve every Envoy/xDS/googleapis import. */
export const ENVOY_PROTO_INCLUDE_DIRS = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) =>
  join(XDS_PKG_DIR, 'deps', d),
);

/**
 * Loader options shared by the data-path services. camelCase field names match protojson, which is
 * what OPA-Envoy's input document uses; 64-bit integers become numbers (sizes, timestamps) and bytes
 * stay Buffers (the input builder base64-encodes rawBody itself). Default values are left out, as
 * protojson leaves them out, and oneof virtual fields are not added, so they never leak into input.
 */
export const DATA_PATH_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: false,
  oneofs: false,
  includeDirs: ENVOY_PROTO_INCLUDE_DIRS,
};

const cache = new Map<string, grpc.GrpcObject>();

/** Loads the given .proto files (paths relative to the include dirs) into a grpc object, cached. */
export function loadEnvoyProtos(
  files: string[],
  options: protoLoader.Options = DATA_PATH_LOADER_OPTIONS,
): grpc.GrpcObject {
  const key = JSON.stringify({ files, options: { ...options, longs: String(options.longs) } });
  const hit = cache.get(key);
  if (hit) return hit;
  const definition = protoLoader.loadSync(files, options);
  const loaded = grpc.loadPackageDefinition(definition);
  cache.set(key, loaded);
  return loaded;
}

/** Walks a dotted package path (e.g. 'envoy.service.auth.v3') in a loaded grpc object. */
export function lookup<T = unknown>(root: grpc.GrpcObject, path: string): T {
  let node: unknown = root;
  for (const part of path.split('.')) {
    node = (node as Record<string, unknown> | undefined)?.[part];
    if (node === undefined) throw new Error(`proto symbol ${path} not found (missing at ${part})`);
  }
  return node as T;
}

export const EXT_AUTHZ_PROTO = 'envoy/service/auth/v3/external_auth.proto';
export const HEALTH_PROTO_NOTE = 'grpc.health.v1 is implemented by hand (see authz-server/health.ts)';

// --- protobufjs Root with proto field names (snake_case), for encoding resources written as
// Envoy's JSON/YAML (xDS resources, bootstrap fragments) ---
import { existsSync } from 'node:fs';
import protobuf from 'protobufjs';

let envoyRoot: protobuf.Root | null = null;

/** Well-known and Envoy files every xDS resource needs, resolved against the include dirs. */
export const XDS_RESOURCE_PROTOS = [
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/ext_proc/v3/ext_proc.proto',
  'envoy/extensions/filters/http/header_mutation/v3/header_mutation.proto',
  'envoy/extensions/http/early_header_mutation/header_mutation/v3/header_mutation.proto',
  'envoy/extensions/filters/http/composite/v3/composite.proto',
  'envoy/extensions/common/matching/v3/extension_matcher.proto',
  'envoy/type/matcher/v3/http_inputs.proto',
  'envoy/extensions/access_loggers/grpc/v3/als.proto',
  'envoy/extensions/access_loggers/filters/cel/v3/cel.proto',
  'envoy/extensions/access_loggers/stream/v3/stream.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/config/bootstrap/v3/bootstrap.proto',
];

/** A protobufjs Root over Envoy's protos with keepCase (snake_case) names, loaded once. */
export function loadEnvoyRoot(): protobuf.Root {
  if (envoyRoot) return envoyRoot;
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    for (const dir of ENVOY_PROTO_INCLUDE_DIRS) {
      const candidate = join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    return target;
  };
  root.loadSync(
    XDS_RESOURCE_PROTOS.filter((f) => ENVOY_PROTO_INCLUDE_DIRS.some((d) => existsSync(join(d, f)))),
    { keepCase: true },
  );
  addNewerEnvoyFields(root);
  root.resolveAll();
  envoyRoot = root;
  return root;
}

/**
 * Fields Envoy 1.40 has that the API snapshot bundled in @grpc/grpc-js-xds predates. Each is added
 * exactly as Envoy's own proto declares it (name, number, type), so what we encode is what Envoy decodes;
 * test/e2e/gateway-up.test.ts checks the round trip in a running Envoy's config dump.
 */
function addNewerEnvoyFields(root: protobuf.Root): void {
  // envoy/config/common/mutation_rules/v3/mutation_rules.proto: HeaderMutation.remove_on_match = 3.
  const mutation = root.lookupType('envoy.config.common.mutation_rules.v3.HeaderMutation');
  if (!mutation.fields['remove_on_match']) {
    mutation.add(
      new protobuf.Type('RemoveOnMatch').add(
        new protobuf.Field('key_matcher', 1, '.envoy.type.matcher.v3.StringMatcher'),
      ),
    );
    const field = new protobuf.Field('remove_on_match', 3, 'RemoveOnMatch');
    mutation.add(field);
    mutation.oneofs['action']?.add(field);
  }
}
